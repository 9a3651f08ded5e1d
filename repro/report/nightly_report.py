"""reports/nightly.md and .html: what the nightly regression run compared, what regressed, the commits since, and
the trends across nights (repro/report/nightly_trends.py)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from repro.io import read_json, write_text
from repro.nightly import NIGHTLY_TIER, Comparison, NightlyOutcome
from repro.report.html import write_html
from repro.report.nightly_trends import trends_section
from repro.report.render import fmt, md_table


def _mean_sd(mean: float, sd: float) -> str:
    return fmt(mean) if not math.isfinite(sd) or sd == 0.0 else f"{fmt(mean)} ± {fmt(sd)}"


def _wall_minutes(root: Path, seeds: list[int], variants: dict[str, str]) -> float | None:
    """From the earliest nightly training start (summary timestamp − wall time) to this report."""
    starts = []
    for paper, variant in variants.items():
        for seed in seeds:
            summary = root / "results" / paper / NIGHTLY_TIER / variant / f"seed{seed}" / "summary.json"
            if summary.is_file():
                s = read_json(summary)
                stamp = (s.get("provenance") or {}).get("timestamp_utc")
                if stamp and s.get("wall_time_s") is not None:
                    starts.append(datetime.fromisoformat(stamp).timestamp() - float(s["wall_time_s"]))
    return (datetime.now(UTC).timestamp() - min(starts)) / 60.0 if starts else None


def _moved_packages_section(moved: dict[str, list[str]]) -> str:
    """The packages whose versions differ from the baselines' environment, once when every paper shares them."""
    lists = {tuple(m) for m in moved.values() if m}
    if not lists:
        return ""
    if len(lists) == 1:
        items = "\n".join(f"- {m}" for m in next(iter(lists)))
        return f"## Packages moved since the baselines\n\n{items}"
    items = "\n".join(f"- `{p}`: {', '.join(m)}" for p, m in moved.items() if m)
    return f"## Packages moved since the baselines\n\n{items}"


def _how_compared(blockers: list[str], comparisons: list[Comparison]) -> str:
    """'exact', or 'statistical: <why>' with how many metrics kept their bits anyway."""
    if not blockers:
        return "exact"
    same = sum(1 for c in comparisons if c.identical)
    return f"statistical: {'; '.join(blockers)} ({same}/{len(comparisons)} metrics bit-identical)"


def render_nightly(out_md: Path, outcome: NightlyOutcome, root: Path) -> tuple[Path, str]:
    """Write the report; returns (its path, a one-line summary for the terminal)."""
    from repro.provenance import cpu_name, git_state

    settings, now, records, comparisons = outcome.settings, outcome.now, outcome.records, outcome.comparisons
    missing, commits, updated, variants = outcome.missing, outcome.commits, outcome.updated, outcome.variants
    sha, dirty = git_state(root)
    n_compared = sum(len(cs) for cs in comparisons.values())
    n_exact = sum(1 for cs in comparisons.values() for c in cs if c.exact)
    blockers, moved_packages = outcome.blockers, outcome.moved_packages
    regressions = {p: [c for c in cs if c.regressed] for p, cs in comparisons.items()}
    regressions = {p: cs for p, cs in regressions.items() if cs}
    wall = _wall_minutes(root, settings.seeds, variants)
    if regressions:
        headline = f"{sum(len(cs) for cs in regressions.values())} regression(s) in {len(regressions)} paper(s)"
    else:
        headline = "No regression." if n_compared else "Nothing compared: no paper has a baseline."
    verdict = f"**{headline}**" + (
        ""
        if n_compared
        else " Record them with `snakemake nightly --config update_baselines=true` and commit results/baselines/."
    )
    lines = [
        f"# Nightly regression — {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        (
            f"Code `{sha[:10]}`{' (dirty working tree)' if dirty else ''}; every paper's default variant at the smoke "
            f"config, {settings.max_steps} steps, seeds {settings.seeds}. {n_compared} metrics compared with the "
            f"baselines, {n_exact} of them exactly: where this run and its baseline share pinned CPU numerics, "
            "code, paper folder, packages, configs and warm-start weights, any seed whose value differs by a bit "
            "regresses. Elsewhere a metric regresses when Welch's test over seeds rejects equal means at α = "
            f"{settings.alpha} / {max(n_compared - n_exact, 1)} and the change exceeds {settings.abs_tol:g} + "
            f"{settings.rel_tol:g}·|baseline|."
            + (f" Wall time since the first training job: {wall:.1f} min." if wall is not None else "")
        ),
        verdict,
    ]
    here = cpu_name()
    baseline_cpus = {p: (records[p].get("provenance") or {}).get("cpu") for p in comparisons if p in records}
    # pinned numerics make the CPU irrelevant where the comparison is exact
    other_cpu = {p: cpu or "not recorded" for p, cpu in baseline_cpus.items() if cpu != here and blockers.get(p)}
    if other_cpu:
        counts = ", ".join(f"{cpu} ({n})" for cpu, n in sorted(Counter(other_cpu.values()).items()))
        lines.append(
            f"**Baselines from another CPU.** This run: {here}; the baselines of {len(other_cpu)} paper(s): {counts}. "
            "Kernels for other vector extensions round differently and training amplifies it, so values can move "
            "with no change in code or packages. Before reading a regression as the code's, run the baseline's "
            "commit on this machine (a worktree at that commit, the same results/base, `snakemake nightly`): if it "
            "gives this run's values, record baselines for this machine (below)."
        )
    if updated:
        lines.append(f"Baselines written for {len(updated)} paper(s) (`git diff results/baselines` shows what moved).")
    rows = []
    for paper in now:
        record = records.get(paper)
        base = f"{record['created_utc'][:10]} `{(record['provenance'].get('git_sha') or '?')[:10]}`" if record else "—"
        if paper in missing:
            status = f"runs missing (seeds {missing[paper]})"
        elif record is None:
            status = "no baseline"
        elif paper in regressions:
            status = f"**REGRESSED** ({len(regressions[paper])})"
        else:
            status = "ok"
        seeds_done = len(next(iter(now[paper].values()), {}))
        how = "—" if record is None else _how_compared(blockers.get(paper, []), comparisons.get(paper, []))
        rows.append(
            [f"`{paper}`", variants[paper], str(seeds_done), base, str(len(comparisons.get(paper, []))), how, status]
        )
    header = ["Paper", "Variant", "Seeds", "Baseline", "Metrics compared", "Comparison", "Status"]
    lines += ["## Papers", md_table(header, rows)]
    moved = _moved_packages_section(moved_packages)
    if moved:
        lines.append(moved)
    if regressions:
        lines.append("## Regressions")
        for paper, cs in regressions.items():
            exact = [c for c in cs if c.exact]
            cs = [c for c in cs if not c.exact]
            exact_table = md_table(
                ["Metric", "Baseline", "Now", "Largest Δ at a seed", "Seeds differing"],
                [[c.metric, _mean_sd(c.baseline_mean, c.baseline_sd), _mean_sd(c.now_mean, c.now_sd),
                  f"{c.largest_seed_delta:.3g}", str(c.seeds_differing)] for c in exact],
            )  # fmt: skip
            exact_text = (
                "Compared exactly: the same code, packages, configs and warm start on pinned numerics gave other "
                f"bits, a reproducibility defect (check `python -m repro numerics` here).\n\n{exact_table}\n\n"
                if exact
                else ""
            )
            table = md_table(
                ["Metric", "Baseline", "Now", "Δ", "Δ %", "p", "Tolerance"],
                [
                    [c.metric, _mean_sd(c.baseline_mean, c.baseline_sd), _mean_sd(c.now_mean, c.now_sd),
                     fmt(c.delta, signed=True),
                     fmt(100 * c.delta / abs(c.baseline_mean), signed=True) if c.baseline_mean else "—",
                     f"{c.p:.2g}", fmt(c.tolerance)]
                    for c in sorted(cs, key=lambda c: -abs(c.delta) / max(c.tolerance, 1e-12))
                ],
            )  # fmt: skip
            log = "\n".join(f"- {line}" for line in commits.get(paper, []))
            cpu = f"\n\nBaseline CPU: {other_cpu[paper]}; this run: {here}." if paper in other_cpu else ""
            packages = "".join(f"\n- {m}" for m in moved_packages.get(paper, []))
            packages = f"\n\nPackages moved since the baseline:\n{packages}" if packages else ""
            table = table if cs else ""
            lines.append(f"### `{paper}`\n\n{exact_text}{table}{cpu}{packages}\n\nCommits since the baseline:\n\n{log}")
    drift = sorted(
        ((p, c) for p, cs in comparisons.items() for c in cs if not c.regressed and not c.exact and c.delta != 0.0),
        key=lambda pc: -abs(pc[1].delta) / max(pc[1].tolerance, 1e-12),
    )[:10]
    if drift:
        lines.append("## Largest moves within tolerance")
        lines.append(
            md_table(
                ["Paper", "Metric", "Baseline", "Now", "Δ / tolerance", "p"],
                [
                    [
                        f"`{p}`",
                        c.metric,
                        fmt(c.baseline_mean),
                        fmt(c.now_mean),
                        fmt(c.delta / c.tolerance, signed=True),
                        f"{c.p:.2g}",
                    ]
                    for p, c in drift
                ],
            )  # fmt: skip
        )
    trend_text, drifting = trends_section(outcome.history, outcome.history_skipped, out_md)
    lines.append(trend_text)
    lines.append(
        "Refresh the baselines after an intended change: `snakemake nightly --config update_baselines=true`, then "
        "review `git diff results/baselines` and commit it."
    )
    write_text(out_md, "\n\n".join(lines) + "\n")
    write_html(out_md)
    summary = (
        headline
        + f" {n_compared} metrics compared over {len(now)} paper(s)"
        + (f"; wall time since the first training job: {wall:.1f} min" if wall is not None else "")
        + (f" (baselines of {len(other_cpu)} paper(s) from another CPU: see the report)" if other_cpu else "")
        + (f"; {len(drifting)} metric(s) drifting across nights: see the report's Trends" if drifting else "")
    )
    return out_md, summary
