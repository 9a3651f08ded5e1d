"""The ablation report, reports/<paper>/ablation.md (+ .html): a paper's ablation table beside ours at the tier run.

Besides each row's value (published; ours with a 95% CI over seeds), it shows what each row *adds*: the change
from the previous row (a progressive table such as DAPO's Table 1 adds one technique per row) and from the first
row, for the paper and for us, ours with a 95% CI paired by seed (every row trains on the same seeds, data order
and initialisation), Welch's where the seeds differ. A row's direction "agrees" when our CI excludes 0 on the
paper's side, is "opposite" when it excludes 0 on the other side, and is "unclear" when it includes 0.
Absolute values are not comparable across scales; directions of the increments are what can carry over.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from repro.io import read_json, write_text
from repro.report.claims import paired_t, welch_t
from repro.report.html import write_html
from repro.report.render import TIER_SCALE, fmt, fmt_with_ci, md_table, placebo_text
from repro.report.staleness import stale_runs
from repro.report.targets import load_paper_meta


def difference(after: dict[str, float], before: dict[str, float]) -> tuple[float | None, list[float] | None, str]:
    """(mean difference, its 95% CI, how it was computed) of two rows' per-seed values."""
    common = sorted(set(after) & set(before))
    if len(common) >= 2:
        stats = paired_t([after[s] for s in common], [before[s] for s in common])
        return stats.effect, list(stats.ci), "paired"
    a, b = list(after.values()), list(before.values())
    if len(a) >= 2 and len(b) >= 2:
        stats = welch_t(a, b)
        return stats.effect, list(stats.ci), "Welch"
    if a and b:
        return float(np.mean(a) - np.mean(b)), None, "one seed"
    return None, None, "no values"


def direction(published_delta: float | None, ci: list[float] | None) -> str:
    if published_delta is None or ci is None or not all(math.isfinite(x) for x in ci):
        return "—"
    if ci[0] <= 0.0 <= ci[1]:
        return "unclear"
    ours_up = ci[0] > 0.0
    if published_delta == 0.0:
        return "paper: no change"
    return "agrees" if ours_up == (published_delta > 0.0) else "opposite"


def row_deltas(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per row after the first: Δ from the previous row and from the first row, the paper's and ours."""
    out = []
    for i in range(1, len(rows)):
        row, prev, first = rows[i], rows[i - 1], rows[0]
        entry: dict[str, Any] = {"variant": row["variant"], "label": row["label"]}
        for name, ref in (("prev", prev), ("first", first)):
            pub = row.get("published"), ref.get("published")
            entry[f"published_{name}"] = pub[0] - pub[1] if None not in pub else None
            mean, ci, how = difference(row.get("ours_by_seed") or {}, ref.get("ours_by_seed") or {})
            entry.update({f"ours_{name}": mean, f"ours_{name}_ci": ci, f"how_{name}": how})
            entry[f"direction_{name}"] = direction(entry[f"published_{name}"], ci)
        out.append(entry)
    return out


def plot_deltas(deltas: list[dict[str, Any]], info: dict[str, Any], tier: str, out_path: Path) -> Path | None:
    """Bars of what each row adds over the previous one: the paper's and ours (with its 95% CI), in two panels."""
    from repro.report.plots import paper_vs_ours_bars

    if not deltas:
        return None
    unit = info.get("unit", "percent")
    return paper_vs_ours_bars(
        [d["label"] for d in deltas],
        [d["published_prev"] for d in deltas],
        [d["ours_prev"] for d in deltas],
        [d["ours_prev_ci"] for d in deltas],
        paper_ylabel=f"Δ {info.get('metric', 'published')} from the previous row ({unit})",
        ours_ylabel=f"Δ {info.get('ours_metric', 'ours')} from the previous row",
        tier=tier,
        title="What each row adds: directions can carry over, sizes cannot",
        out_path=out_path,
        zero_line=True,
    )


def render_ablation_report(
    paper_dir: str | os.PathLike[str], compare_json: str | os.PathLike[str], tier: str, out_md: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Write reports/<paper>/ablation.md, its figures and ablation.html; returns (md, html)."""
    from repro.report import plots

    meta = load_paper_meta(paper_dir)
    if meta.ablation is None:
        raise ValueError(f"{paper_dir}/paper.yaml has no `ablation:` table; add one (see papers/dapo/paper.yaml)")
    result, out = read_json(Path(compare_json)), Path(out_md)
    if result.get("tier") != tier:
        raise ValueError(f"{compare_json} is for tier {result.get('tier')!r}, not {tier!r}")
    rows, info = result.get("ablation") or [], result.get("ablation_meta") or {}
    figures = out.parent / "figures"
    values_fig = plots.plot_ablation(
        rows, tier, info.get("unit", "percent"), figures / "ablation.png", info.get("metric", ""),
        info.get("ours_metric", ""),
    )  # fmt: skip
    deltas = row_deltas(rows)
    deltas_fig = plot_deltas(deltas, info, tier, figures / "ablation_deltas.png")
    stale = stale_runs(result, meta.path)
    lines = [
        f"# {meta.title} — ablation report",
        f"Paper: [{f'arXiv {meta.arxiv}' if meta.arxiv else meta.link}]({meta.link}) · paper id `{meta.id}` · "
        f"tier **{tier}** ({TIER_SCALE.get(tier, tier)})",
        f"**{info.get('title', meta.ablation.title)}** — source: {info.get('source', meta.ablation.source)}. "
        f"Paper's metric vs ours: {info.get('metric', '')}; ours is {info.get('ours_metric', '')}, mean and 95% CI "
        f"over seeds. The paper's values are at its own scale and ours at the {tier} tier: compare the directions "
        "of the increments, not the values.",
    ]
    if stale:
        lines.append(f"**Warning:** {len(stale)} run(s) are stale (core code or config changed since they ran).")
    lines.append("## The table, paper vs ours")
    lines.append(
        md_table(
            ["Row", "Variant", "Published", f"Ours [95% CI] ({tier})", "Seeds"],
            [
                [
                    r["label"],
                    f"`{r['variant']}`",
                    fmt(r.get("published")),
                    fmt_with_ci(r.get("ours_mean"), r.get("ours_ci")),
                    str(r.get("n_seeds", 0)),
                ]
                for r in rows
            ],
        )  # fmt: skip
    )
    if values_fig:
        lines.append(f"![values]({values_fig.relative_to(out.parent).as_posix()})")
    lines.append("## What each row adds")
    lines.append(
        "Δ prev: the change from the row above; Δ first: from the first row. Ours paired by seed where the rows "
        "share seeds. Direction: whether our 95% CI excludes 0 on the paper's side."
    )
    lines.append(
        md_table(
            [
                "Row",
                "Paper Δ prev",
                "Ours Δ prev [95% CI]",
                "Direction",
                "Paper Δ first",
                "Ours Δ first [95% CI]",
                "Direction",
            ],
            [
                [
                    d["label"],
                    fmt(d["published_prev"], signed=True),
                    fmt_with_ci(d["ours_prev"], d["ours_prev_ci"]),
                    d["direction_prev"],
                    fmt(d["published_first"], signed=True),
                    fmt_with_ci(d["ours_first"], d["ours_first_ci"]),
                    d["direction_first"],
                ]
                for d in deltas
            ],
        )  # fmt: skip
    )
    if deltas_fig:
        lines.append(f"![what each row adds]({deltas_fig.relative_to(out.parent).as_posix()})")
    counts = {k: sum(d["direction_prev"] == k for d in deltas) for k in ("agrees", "opposite", "unclear")}
    lines.append(
        f"Of {len(deltas)} increments, ours {counts['agrees']} agree with the paper's direction, "
        f"{counts['opposite']} go the opposite way and {counts['unclear']} are unclear at this tier and seed count."
    )
    lines += claims_on_rows(result.get("claims") or [], {r["variant"] for r in rows})
    write_text(out, "\n\n".join(lines) + "\n")
    return out, write_html(out)


def claims_on_rows(claims: list[dict[str, Any]], variants: set[str]) -> list[str]:
    """The claims whose treatment or control is a row of the table, mechanism claims apart from premises."""
    out = []
    for kind, heading in (("mechanism", "Mechanism claims on these rows"), ("premise", "Premises on these rows")):
        picked = [
            c for c in claims
            if c.get("kind", "mechanism") == kind and {c.get("treatment"), c.get("control")} & variants
        ]  # fmt: skip
        if not picked:
            continue
        out.append(f"## {heading}")
        out.append(
            md_table(
                ["Claim", "Treatment vs control", "Effect [95% CI]", "Placebo (control in place)", "Verdict"],
                [
                    [
                        c["id"],
                        f"{c['treatment']} vs {c.get('control') or '—'}",
                        fmt_with_ci(c.get("effect"), c.get("ci")),
                        placebo_text(c.get("placebo")),
                        f"**{c['verdict']}**",
                    ]
                    for c in picked
                ],
            )  # fmt: skip
        )
    return out
