"""The catalog index, reports/index.md and index.html: every paper folder, and for each tier it was run at, its
mechanism claims by verdict apart from its premises, its targets by status, when it last ran, whether its runs are stale, and a link to its report.

Built from whatever results/<paper>/<tier>/compare.json exist (and results/<paper>/<tier>@<overrides>/ of runs on a
researcher's own model or data, repro/overrides.py): a paper never run is listed as such.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from repro.io import read_json, write_text
from repro.report.html import write_html
from repro.report.plots import save_figure
from repro.report.targets import load_paper_meta
from repro.report.verdicts import MECHANISM_VERDICTS, PREMISE_VERDICTS, discriminates

TIERS = ("smoke", "small", "paper")
VERDICT_COLOURS = {"reproduced": "#2da44e", "not reproduced": "#cf222e", "inconclusive": "#d4a72c",
                   "insufficient seeds": "#afb8c1", "does not discriminate": "#8250df",
                   "not testable": "#57606a"}  # fmt: skip
VERDICT_MARKS = {"reproduced": "✓", "not reproduced": "✗", "inconclusive": "?", "insufficient seeds": "n<3",
                 "does not discriminate": "≡", "not testable": "⊘"}  # fmt: skip
NO_MECHANISM_TEST = "no mechanism test at this tier"


def catalog_rows(root: Path) -> list[dict[str, Any]]:
    """One row per (paper, tier) with a compare.json; one "not run" row for a paper without any."""
    from repro.provenance import code_sha256

    rows, code_now = [], {"code_sha256": code_sha256(root)}
    for paper_dir in sorted((root / "papers").glob("*/paper.yaml")):
        meta = load_paper_meta(paper_dir.parent)
        ran = [t for t in TIERS if (root / "results" / meta.id / t / "compare.json").is_file()]
        ran += sorted(  # runs made with overrides, after the plain tiers
            p.parent.name for tier in TIERS for p in (root / "results" / meta.id).glob(f"{tier}@*/compare.json")
        )
        base = {"paper": meta.id, "title": meta.title, "family": meta.family}
        if not ran:
            rows.append({**base, "tier": None})
        for tier in ran:
            result = read_json(root / "results" / meta.id / tier / "compare.json")
            rows.append({**base, "tier": tier, **_summarise(result, root, meta.id, code_now)})
    return rows


def _summarise(result: dict[str, Any], root: Path, paper: str, code_now: dict[str, Any]) -> dict[str, Any]:
    from repro.report.staleness import stale_runs

    runs = result.get("runs") or []
    stamps = [(r.get("provenance") or {}).get("timestamp_utc") for r in runs]
    label = str(result.get("label") or result.get("tier"))
    folder = paper if label == result.get("tier") else f"{paper}/{label}"  # overrides: reports/<paper>/<label>/
    report = next((p for p in ("report.html", "report.md") if (root / "reports" / folder / p).is_file()), None)
    claims = result.get("claims") or []
    mechanism = [c for c in claims if c.get("kind", "mechanism") == "mechanism"]
    why_none = (result.get("mechanism") or {}).get("no_mechanism_test")
    discriminating = sum(discriminates(c) for c in mechanism)
    return {
        "claims": dict(Counter(c.get("verdict", "?") for c in mechanism)),
        "premises": dict(Counter(c.get("verdict", "?") for c in claims if c.get("kind") == "premise")),
        "discriminating": discriminating,
        "mechanism_test": why_none or (None if discriminating else NO_MECHANISM_TEST),
        "targets": dict(Counter(t.get("status", "?") for t in result.get("targets") or [])),
        "n_runs": len(runs),
        "last_run": max((s for s in stamps if s), default=None),
        "stale_runs": len(stale_runs(result, root / "papers" / paper, code_now, root)),
        "report": f"{folder}/{report}" if report else None,
    }


def render_index(rows: list[dict[str, Any]], figure: str | None) -> str:
    ran = [r for r in rows if r["tier"]]
    totals, premises = Counter(), Counter()
    for r in ran:
        totals.update(r["claims"])
        premises.update(r.get("premises") or {})
    papers = {r["paper"] for r in rows}
    n_mechanism = sum(totals.values())
    untested = sorted({r["paper"] for r in ran if r.get("mechanism_test")})
    lines = [
        "# Claims catalog",
        (
            f"**Mechanism claims reproduced: {totals.get('reproduced', 0)} of {n_mechanism}** over every paper and "
            f"tier run ({len(papers)} paper folders; {len({r['paper'] for r in ran})} with results). A mechanism "
            "claim tests the paper's effect of its method against a control that lacks it, and reads reproduced "
            "only when its placebo (the control in the treatment's place) fails. All mechanism verdicts: "
            + ", ".join(f"{totals.get(v, 0)} {v}" for v in MECHANISM_VERDICTS)
            + ". Premises (conditions under which the mechanism tests mean something): "
            + (", ".join(f"{premises.get(v, 0)} {v}" for v in PREMISE_VERDICTS) if premises else "none")
            + ". A smoke verdict checks a claim's direction on a toy model and task, never the paper's numbers; a run "
            "is stale when the core code or its paper folder's config has changed since it ran."
        ),
    ]
    if untested:
        lines.append(f"No mechanism test at the tier run: {', '.join(f'`{p}`' for p in untested)}.")
    if figure:
        lines.append(f"![mechanism claims by verdict]({figure})")
    marks = " / ".join(VERDICT_MARKS[v] for v in MECHANISM_VERDICTS)
    table = [
        f"| Paper | Family | Tier | Mechanism claims {marks} | Premises | Targets | Runs | Last run (UTC) | Stale "
        "| Report |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"{r['title']} (`{r['paper']}`)"
        if not r["tier"]:
            table.append(f"| {name} | {r['family']} | not run | — | — | — | 0 | — | — | — |")
            continue
        claims = " / ".join(str(r["claims"].get(v, 0)) for v in MECHANISM_VERDICTS)
        if r.get("mechanism_test"):
            claims = f"{NO_MECHANISM_TEST} ({claims})" if r["claims"] else NO_MECHANISM_TEST
        held = ", ".join(f"{n} {v}" for v, n in sorted((r.get("premises") or {}).items())) or "none"
        targets = ", ".join(f"{n} {s}" for s, n in sorted(r["targets"].items())) or "none"
        last = (r["last_run"] or "—").replace("T", " ").replace("+00:00", "")
        stale = f"**{r['stale_runs']} of {r['n_runs']}**" if r["stale_runs"] else "no"
        link = f"[{r['report'].split('/')[-1]}]({r['report']})" if r["report"] else "not rendered"
        table.append(
            f"| {name} | {r['family']} | {r['tier']} | {claims} | {held} | {targets} | {r['n_runs']} | {last} | "
            f"{stale} | {link} |"
        )
    lines.append("\n".join(table))
    lines.append(", ".join(f"{VERDICT_MARKS[v]} {v}" for v in MECHANISM_VERDICTS) + ".")
    return "\n\n".join(lines) + "\n"


def plot_claims(rows: list[dict[str, Any]], out: Path) -> Path | None:
    """Horizontal stacked bars: per paper and tier, its mechanism claims by verdict."""
    ran = [r for r in rows if r["tier"] and r["claims"]]
    if not ran:
        return None
    fig = Figure(figsize=(7.5, 0.3 * len(ran) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    labels = [f"{r['paper']} ({r['tier']})" for r in ran]
    left = [0] * len(ran)
    for verdict in MECHANISM_VERDICTS:
        counts = [r["claims"].get(verdict, 0) for r in ran]
        ax.barh(labels, counts, left=left, color=VERDICT_COLOURS[verdict], label=verdict)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("mechanism claims")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, out)


def write_index(root: Path, out_md: Path) -> tuple[Path, Path]:
    """reports/index.md and index.html (figure embedded) for the checkout at `root`."""
    rows = catalog_rows(root)
    figure = plot_claims(rows, out_md.parent / "figures" / "index_claims.png")
    rel = figure.relative_to(out_md.parent).as_posix() if figure else None
    write_text(out_md, render_index(rows, rel))
    return out_md, write_html(out_md)
