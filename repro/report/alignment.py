"""The alignment part of a preference paper's compare.json and report: the held-out numbers of every variant
beside the reference (SFT) policy, and the points of the reward/KL frontier (DPO arXiv 2305.18290 Fig. 2).

Runs whose eval.json has no `kl` (online-RL runs) contribute nothing, so RL reports are unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from repro.report.claims import mean_ci

# eval.json key -> column title, in the order the table shows them
ALIGNMENT_METRICS: dict[str, str] = {
    "gold_reward": "gold reward",
    "win_rate": "win rate vs ref",
    "kl": "KL(π‖π_ref)",
    "sampled_accuracy": "accuracy",
    "preference_accuracy": "held-out pref. acc.",
    "logratio_chosen": "ρ chosen",
    "logratio_rejected": "ρ rejected",
    "judge_win_rate": "judge win rate",
}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def judged_metrics(runs: dict[str, list[Any]]) -> dict[str, str]:
    """`judged.<benchmark>` -> column title, for every judged benchmark (eval.judged_benchmarks) a run scored."""
    names = sorted(
        {name for rs in runs.values() for r in rs if isinstance(r.eval, dict) for name in r.eval.get("judged") or {}}
    )
    return {f"judged.{name}": f"{name} win rate (judge)" for name in names}


def _with_judged(e: dict[str, Any]) -> dict[str, Any]:
    """The eval dict with each judged benchmark's win rate flattened to `judged.<name>`."""
    judged = {f"judged.{n}": j.get("win_rate") for n, j in (e.get("judged") or {}).items() if isinstance(j, dict)}
    return {**e, **judged}


def alignment_summary(runs: dict[str, list[Any]]) -> dict[str, Any] | None:
    """Per variant: mean and seed CI of each alignment metric (the judged benchmarks' win rates included);
    per-seed (KL, gold reward) points; the reference."""
    rows, points = [], {}
    reference: dict[str, list[float]] = {}
    metrics = {**ALIGNMENT_METRICS, **judged_metrics(runs)}
    for variant, variant_runs in runs.items():
        evals = [(r.seed, _with_judged(r.eval)) for r in variant_runs if isinstance(r.eval, dict) and "kl" in r.eval]
        if not evals:
            continue
        row: dict[str, Any] = {"variant": variant, "n_seeds": len(evals)}
        for key in metrics:
            values = [v for _, e in evals if (v := _finite(e.get(key))) is not None]
            row[key] = float(np.mean(values)) if values else None
            row[f"{key}_ci"] = list(ci) if (ci := mean_ci(values)) else None
        rows.append(row)
        points[variant] = [
            {"seed": seed, "kl": _finite(e.get("kl")), "gold_reward": _finite(e.get("gold_reward"))}
            for seed, e in evals
        ]
        for _, e in evals:
            for key, value in (e.get("base") or {}).items():
                if (v := _finite(value)) is not None:
                    reference.setdefault(key, []).append(v)
    if not rows:
        return None
    return {
        "rows": rows,
        "points": points,
        "reference": {k: float(np.mean(v)) for k, v in reference.items()},
        "columns": metrics,  # key -> title, in table order
    }


def _cell(row: dict[str, Any], key: str) -> str:
    """Mean [CI]: three decimals for rates and losses, fewer for counts like steps (decimals there are noise)."""
    value = row.get(key)
    if value is None:
        return "—"
    d = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 3
    ci = row.get(f"{key}_ci")
    return f"{value:.{d}f} [{ci[0]:.{d}f}, {ci[1]:.{d}f}]" if ci else f"{value:.{d}f}"


def alignment_section(summary: dict[str, Any] | None, figure: Path | None, report_dir: Path) -> str:
    if not summary:
        return ""
    columns = summary.get("columns") or ALIGNMENT_METRICS
    keys = [k for k in columns if any(r.get(k) is not None for r in summary["rows"])]
    head = "| variant | seeds | " + " | ".join(columns[k] for k in keys) + " |"
    lines = [
        "## Alignment evaluation (held-out prompts and pairs)",
        "Policy samples on held-out prompts, scored by the gold reward; win rate against the reference policy's "
        "samples with the same seeds (ties ½); KL(π‖π_ref) as the mean of Σ_t log π − log π_ref over the "
        "policy's samples; held-out preference accuracy under the loss's own implicit reward (gold labels, never "
        "flipped); ρ = log π − log π_ref of held-out chosen / rejected completions (likelihood displacement); "
        "a judged benchmark's win rate is the judge's P(policy response ≻ the benchmark's baseline response). "
        "Mean over training seeds [95% CI over seeds]; a column is shown when some run measured it.",
        head,
        "|" + "---|" * (len(keys) + 2),
    ]
    ref = summary.get("reference") or {}
    lines.append(
        "| reference (the starting model) | — | "
        + " | ".join(f"{ref[k]:.3f}" if k in ref else "—" for k in keys)
        + " |"
    )
    for row in summary["rows"]:
        lines.append(f"| {row['variant']} | {row['n_seeds']} | " + " | ".join(_cell(row, k) for k in keys) + " |")
    if figure is not None:
        rel = Path(figure).relative_to(report_dir) if Path(figure).is_relative_to(report_dir) else figure
        lines.append(
            f"![reward/KL frontier]({rel})\n\nReward/KL frontier: each line follows a variant's mean over seeds "
            "of the samples scored during training (`train.eval_every`: a fixed subset of held-out prompts, one "
            "sample each, so noisier than the final evaluation); markers are the final evaluation of each seed; "
            "the star is the reference policy."
        )
    return "\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:])
