"""The nightly report's "Trends across nights": the drift check's flags (repro/nightly_history.py) and, per paper
whose metrics moved, a figure of the metrics that moved most against their baseline band."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from repro.nightly_history import DRIFT_NIGHTS, DRIFT_SHARE, HISTORY, Trend, comparable_nights, trends
from repro.report.plots import save_figure
from repro.report.render import fmt, md_table

PANELS = 4  # metrics per paper's figure
SHOWN_NIGHTS = 60  # the figure's x axis: the latest nights


def trends_section(history: list[dict[str, Any]], skipped: int, out_md: Path) -> tuple[str, list[Trend]]:
    """(the section's markdown, the drifting metrics); figures under out_md's figures/ folder."""
    nights = comparable_nights(history)
    lines = ["## Trends across nights"]
    note = f" ({skipped} line(s) of it did not parse and were skipped)" if skipped else ""
    lines.append(
        f"`{HISTORY.as_posix()}` holds {len(history)} night(s){note}, {len(nights)} of them run with tonight's "
        f"settings. A metric is **drifting** when a least-squares line through its last {DRIFT_NIGHTS} nights has "
        f"a slope that differs from zero at the nightly's α and a fitted change beyond {DRIFT_SHARE:g} × its "
        "tolerance, even when no single night regressed (the method: `repro/nightly_history.py`)."
    )
    by_paper = trends(history)
    drifting = [t for ts in by_paper.values() for t in ts if t.drifting]
    if len(nights) < DRIFT_NIGHTS:
        lines.append(f"The drift check needs {DRIFT_NIGHTS} nights with the same settings; so far {len(nights)}.")
    elif drifting:
        lines.append(f"**Drifting: {len(drifting)} metric(s) in {len({t.paper for t in drifting})} paper(s).**")
        lines.append(_drift_table(drifting))
    else:
        lines.append(f"No metric is drifting over the last {DRIFT_NIGHTS} nights.")
    moved = {p: [t for t in ts if t.spread > 0][:PANELS] for p, ts in by_paper.items()}
    moved = {p: ts for p, ts in moved.items() if ts}
    for paper, shown in moved.items():
        figure = plot_trends(paper, shown, out_md.parent / "figures" / f"nightly_trends_{paper}.png")
        rel = figure.relative_to(out_md.parent).as_posix()
        lines.append(f"### `{paper}`\n\n![trends of {paper} across nights]({rel})")
    if len(nights) > 1 and not moved:
        lines.append("No metric of any paper moved across these nights.")
    return "\n\n".join(lines), drifting


def _drift_table(drifting: list[Trend]) -> str:
    rows = []
    for t in drifting:
        edge = t.nights_to_edge()
        rows.append(
            [
                f"`{t.paper}`",
                t.metric,
                f"{fmt(t.values[-DRIFT_NIGHTS])} → {fmt(t.values[-1])}",
                fmt(t.change, signed=True),
                fmt(t.tolerance),
                f"{t.p:.2g}",
                "—" if edge is None else ("outside" if edge == 0 else f"≈ {edge:.0f}"),
            ]
        )
    header = [
        "Paper",
        "Metric",
        f"Last {DRIFT_NIGHTS} nights",
        "Fitted change",
        "Tolerance",
        "p",
        "Nights to band edge",
    ]
    return md_table(header, rows)


def plot_trends(paper: str, shown: list[Trend], out: Path) -> Path:
    """One panel per metric: its value each night, the baseline and the band baseline ± tolerance as recorded that
    night (it moves when baselines are recorded again); drifting panels titled so."""
    cols = min(len(shown), 2)
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.0 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, t in zip(axes, shown):
        n = min(len(t.values), SHOWN_NIGHTS)
        x = np.arange(n)
        base = np.array([np.nan if b is None else b for b in t.baselines[-n:]], dtype=float)  # [n]
        tol = np.array([np.nan if v is None else v for v in t.tolerances[-n:]], dtype=float)  # [n]
        ax.fill_between(x, base - tol, base + tol, color="#2da44e", alpha=0.15, lw=0, step="mid",
                        label="baseline ± tolerance")  # fmt: skip
        ax.step(x, base, where="mid", color="#2da44e", lw=1.0, ls="--", label="baseline")
        ax.plot(x, t.values[-n:], color="#cf222e" if t.drifting else "#1f77b4", marker="o", ms=3, lw=1.4,
                label="tonight's mean over seeds")  # fmt: skip
        for i in np.flatnonzero(t.recorded[-n:]):
            ax.axvline(i, color="#57606a", lw=0.8, ls=":", label="baselines recorded")
        ax.set_xticks(x, _night_labels(t.dates[-n:]), rotation=45, ha="right", fontsize=7)
        title = f"{t.metric}: DRIFTING (fitted {fmt(t.change, signed=True)})" if t.drifting else t.metric
        ax.set_title(title, fontsize=8, color="#cf222e" if t.drifting else "black")
        ax.grid(alpha=0.3)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    legend = {label: h for ax in axes[: len(shown)] for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=2 * cols, fontsize=7)
    fig.suptitle(f"{paper}: the metrics that moved most across nights (x: night, UTC date)", fontsize=9)
    return save_figure(fig, out)


def _night_labels(dates: list[str]) -> list[str]:
    """MM-DD, with the time where two nights share a day."""
    days = [d[5:10] for d in dates]
    return days if len(set(days)) == len(days) else [f"{d[5:10]} {d[11:16]}" for d in dates]
