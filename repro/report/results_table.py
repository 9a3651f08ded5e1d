"""The evaluation table of an SFT, reward-model or distillation paper: each variant's eval.json numbers (mean
over seeds with a 95% CI) beside the starting model's, in compare.json (`results_table`) and the report.

A trainer kind's eval.json says which table it belongs to with `"trainer": "<kind>"` and may carry the
starting model's numbers under `"base"`. Runs without a `trainer` key (online RL, preference: those have
their own sections) contribute nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from repro.report.alignment import _cell, _finite
from repro.report.claims import mean_ci


@dataclass(frozen=True)
class ResultTable:
    title: str  # the report section's heading
    description: str  # what the numbers are and how they were measured
    metrics: dict[str, str]  # eval.json key -> column title, in the order the table shows them
    reference_label: str = "starting model"  # the row of eval.json's "base" numbers


# trainer kind (repro/trainer_kinds.py) -> its table
RESULT_TABLES: dict[str, ResultTable] = {
    "sft": ResultTable(
        title="Held-out evaluation (SFT)",
        description=(
            "Each run's last iterate (and, with BEMA, its final EMA and BEMA iterates) on the held-out problems of "
            "the training task and of the shifted task: greedy accuracy, sampled accuracy (avg@k at the eval "
            "temperature) and NLL per completion token; every model scored with the run's sampling seed."
        ),
        metrics={
            "greedy_accuracy": "greedy acc.",
            "sampled_accuracy": "sampled acc.",
            "eval_loss": "held-out NLL",
            "shifted_greedy_accuracy": "shifted greedy acc.",
            "shifted_sampled_accuracy": "shifted sampled acc.",
            "shifted_eval_loss": "shifted NLL",
            "ema_eval_loss": "EMA NLL",
            "bema_eval_loss": "BEMA NLL",
            "ema_sampled_accuracy": "EMA sampled acc.",
            "bema_sampled_accuracy": "BEMA sampled acc.",
        },
    ),
}
RESULT_TABLES["distillation"] = ResultTable(
    title="Distillation: the student against its teacher",
    description=(
        "Held-out synthetic-task accuracy of the distilled student (greedy; avg@k of samples at T = 1), the "
        "teacher's on the same problems and sampling seed, the share of the starting student → teacher gap closed, "
        "the per-token reverse KL(π_s ‖ π_t) and forward KL(π_t ‖ π_s) on the student's own held-out samples, and "
        "the first monitored step (and cumulative FLOPs, generation included) at which the monitor's accuracy "
        "reached base + f·(teacher − base) (censored at max_steps + eval_every when never reached)."
    ),
    metrics={
        "greedy_accuracy": "greedy acc.",
        "sampled_accuracy": "avg@k acc.",
        "teacher_sampled_accuracy": "teacher avg@k",
        "gap_closed": "gap closed",
        "reverse_kl": "reverse KL (nats/token)",
        "forward_kl": "forward KL (nats/token)",
        "steps_to_target": "steps to target",
        "tflops_to_target": "TFLOPs to target",
    },
    reference_label="starting student",
)
RESULT_TABLES["reward_model"] = ResultTable(
    title="Reward model on held-out pairs",
    description=(
        "Pairs of held-out prompts (synthetic: every pair of a prompt's samples with different gold rewards, the "
        "gold-better one chosen) scored by the trained reward model: accuracy (r_c > r_r), the mean and |mean| reward "
        "and its standard deviation over every held-out completion, the mean gap r_c − r_r, and the gap per Llama 2 "
        "rating level (negligibly / slightly / better / significantly better). The reference row is the run's "
        "untrained head (same checkpoint, head drawn from the run seed)."
    ),
    metrics={
        "accuracy": "accuracy",
        "mean_reward": "mean reward",
        "abs_mean_reward": "|mean reward|",
        "reward_std": "reward std",
        "reward_gap": "gap r_c − r_r",
        "gap_negligibly_better": "gap: negligibly",
        "gap_slightly_better": "gap: slightly",
        "gap_better": "gap: better",
        "gap_significantly_better": "gap: significantly",
        "accuracy_significantly_better": "acc.: significantly",
    },
    reference_label="untrained head",
)


def results_table_summary(runs: dict[str, list[Any]]) -> dict[str, Any] | None:
    """Per variant: mean and seed CI of each metric of the runs' table; the mean of their `base` numbers."""
    kinds = {r.eval.get("trainer") for rs in runs.values() for r in rs if isinstance(r.eval, dict)}
    kinds = sorted(k for k in kinds if k in RESULT_TABLES)
    if not kinds:
        return None
    kind = kinds[0]  # a paper's variants share one trainer kind
    table = RESULT_TABLES[kind]
    rows, reference = [], {}
    for variant, variant_runs in runs.items():
        evals = [r.eval for r in variant_runs if isinstance(r.eval, dict) and r.eval.get("trainer") == kind]
        if not evals:
            continue
        row: dict[str, Any] = {"variant": variant, "n_seeds": len(evals)}
        for key in table.metrics:
            values = [v for e in evals if (v := _finite(e.get(key))) is not None]
            row[key] = float(np.mean(values)) if values else None
            row[f"{key}_ci"] = list(ci) if (ci := mean_ci(values)) else None
        rows.append(row)
        for e in evals:
            for key, value in (e.get("base") or {}).items():
                if (v := _finite(value)) is not None:
                    reference.setdefault(key, []).append(v)
    return {"trainer": kind, "rows": rows, "reference": {k: float(np.mean(v)) for k, v in reference.items()}}


def results_table_section(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("trainer") not in RESULT_TABLES:
        return ""
    table = RESULT_TABLES[summary["trainer"]]
    keys = [k for k in table.metrics if any(r.get(k) is not None for r in summary["rows"])]
    lines = [
        f"| variant | seeds | {' | '.join(table.metrics[k] for k in keys)} |",
        "|" + "---|" * (len(keys) + 2),
    ]
    ref = summary.get("reference") or {}
    if any(k in ref for k in keys):
        cells = " | ".join(f"{ref[k]:.3f}" if k in ref else "—" for k in keys)
        lines.append(f"| {table.reference_label} | — | {cells} |")
    for row in summary["rows"]:
        lines.append(f"| {row['variant']} | {row['n_seeds']} | " + " | ".join(_cell(row, k) for k in keys) + " |")
    return f"## {table.title}\n\n{table.description} Mean over training seeds [95% CI over seeds].\n\n" + "\n".join(
        lines
    )
