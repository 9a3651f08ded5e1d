"""Report figures (PNG, Agg, no pyplot global state): training curves over seeds, ablation bars."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from repro.io import atomic_path

# figure file stem -> (title, metric keys drawn as panels side by side)
CURVE_FIGURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "reward_mean": ("Mean reward", ("reward_mean",)),
    "accuracy": ("Training accuracy", ("accuracy",)),
    "entropy": ("Policy entropy", ("entropy",)),
    "response_length": (
        "Response length (tokens): trained on, and sampled (before GFPO's filter)",
        ("response_length", "response_length_sampled"),
    ),
    "clip_fractions": ("Clipped-token fractions", ("clip_frac_low", "clip_frac_high")),
    "frac_zero_std": ("Share of zero-std groups", ("frac_zero_std",)),
    # drawn only for runs that log them (figures with no data are skipped)
    "length_by_correctness": ("Response length of correct / incorrect answers", ("len_correct", "len_incorrect")),
    "grad_var": ("Split-half gradient variance tr Cov(ĝ)", ("grad_var",)),
    "sampler_gap": ("Sampler vs trainer: |Δ log-prob| and mean IS ratio", ("logprob_gap", "is_ratio_mean")),
    # preference runs (repro/trainers/preference.py)
    "implicit_rewards": (
        "Implicit rewards of chosen / rejected (training pairs)",
        ("rewards_chosen", "rewards_rejected"),
    ),
    "implicit_margin": ("Implicit-reward margin (training pairs)", ("margin",)),
    "log_ratios": (
        "Likelihood displacement: ρ = log π − log π_ref of chosen / rejected (training pairs)",
        ("logratio_chosen", "logratio_rejected"),
    ),
    "unpaired_rewards": (
        "Unpaired rewards of desirable / undesirable rows, and BCO's shift δ",
        ("rewards_desirable", "rewards_undesirable", "delta"),
    ),
    "frontier_terms": (
        "Held-out samples during training: gold reward and KL(π‖π_ref)",
        ("eval_gold_reward", "eval_kl"),
    ),
    # SFT runs (repro/trainers/sft_loop.py); the iterate panels share steps (raw θ_t, EMA, BEMA)
    # ("loss" alone would also match every RL run's loss; SFT's NLL is the number comparable across loss types)
    "sft_loss": ("NLL per target token on training batches (DFT optimises −sg(p)·log p instead)", ("nll",)),
    "target_token_probability": ("Mean probability of the target token (training batches)", ("mean_token_prob",)),
    "heldout_loss_iterates": (
        "Held-out NLL per token of the raw / EMA / BEMA iterates",
        ("eval_loss", "eval_loss_ema", "eval_loss_bema"),
    ),
    "heldout_accuracy_iterates": (
        "Held-out greedy accuracy of the raw / EMA / BEMA iterates",
        ("eval_accuracy", "eval_accuracy_ema", "eval_accuracy_bema"),
    ),
    # distillation runs (repro/trainers/distillation.py)
    "distill_accuracy": (
        "Held-out accuracy of the student's samples (avg@k) and greedy, during training",
        ("eval_sampled_accuracy", "eval_greedy_accuracy"),
    ),
    "distill_kl": (
        "Per-token KL to the teacher on the student's held-out samples: reverse KL(π_s‖π_t), forward KL(π_t‖π_s)",
        ("eval_reverse_kl", "eval_forward_kl"),
    ),
    "distill_train": (
        "Training batches: share on-policy, and reverse KL to the teacher on them",
        ("on_policy_share", "train_reverse_kl"),
    ),
    "distill_flops": ("Cumulative FLOPs (generation, student forward+backward, teacher forward)", ("flops",)),
    # reward-model runs (repro/trainers/reward_model.py)
    "rm_rewards": (
        "Reward model: mean, min and max reward on training batches",
        ("mean_reward", "min_reward", "max_reward"),
    ),
    "rm_loss_terms": (
        "Reward-model loss terms: ranking −log σ(r_c − r_r − m) and centring mean (r_c + r_r)² (before η)",
        ("ranking_loss", "centering_term"),
    ),
    "rm_heldout": (
        "Held-out pairs during training: accuracy, mean reward and gap r_c − r_r",
        ("heldout_accuracy", "heldout_mean_reward", "heldout_reward_gap"),
    ),
}
BAND_DESCRIPTION = "mean over seeds, min–max band, moving average over 2.5% of steps"
SMOOTHING_FRACTION = 0.025  # per-step RL metrics are noisy; a short moving average shows the trend

Curve = list[dict[str, Any]]  # one run's metrics.jsonl rows


@dataclass(frozen=True)
class SeedBand:
    """A metric over steps summarised across seeds."""

    steps: np.ndarray  # [S]
    mean: np.ndarray  # [S]
    low: np.ndarray  # [S] min over seeds
    high: np.ndarray  # [S] max over seeds
    n_seeds: int


def seed_band(curves: Sequence[Curve], key: str) -> SeedBand | None:
    """Align runs by `step` and take mean, min and max of `key` over the seeds present at each step."""
    by_step: dict[float, list[float]] = {}
    n_seeds = 0
    for rows in curves:
        points = [(r.get("step"), r.get(key)) for r in rows]
        points = [(float(s), float(v)) for s, v in points if _is_number(s) and _is_number(v)]
        n_seeds += bool(points)
        for step, value in points:
            by_step.setdefault(step, []).append(value)
    if not by_step:
        return None
    steps = np.array(sorted(by_step))
    values = [by_step[s] for s in steps]
    window = max(1, int(len(steps) * SMOOTHING_FRACTION))
    return SeedBand(
        steps,
        moving_average(np.array([np.mean(v) for v in values]), window),
        moving_average(np.array([np.min(v) for v in values]), window),
        moving_average(np.array([np.max(v) for v in values]), window),
        n_seeds,
    )


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` points (shorter at the start), same length as the input."""
    if window <= 1:
        return values
    cumsum = np.concatenate([[0.0], np.cumsum(values)])  # [S+1]
    ends = np.arange(1, len(values) + 1)  # [S]
    starts = np.maximum(ends - window, 0)  # [S]
    return (cumsum[ends] - cumsum[starts]) / (ends - starts)


def plot_training_curves(
    curves_by_variant: dict[str, list[Curve]],
    out_dir: Path,
    figures: dict[str, tuple[str, tuple[str, ...]]] = CURVE_FIGURES,
) -> dict[str, Path]:
    """One PNG per figure (one line per variant); figures with no data anywhere are skipped."""
    colors = _variant_colors(list(curves_by_variant))
    written: dict[str, Path] = {}
    for stem, (title, keys) in figures.items():
        bands = {
            (variant, key): band
            for key in keys
            for variant, curves in curves_by_variant.items()
            if (band := seed_band(curves, key)) is not None
        }
        if not bands:
            continue
        fig = Figure(figsize=(5.2 * len(keys), 3.6), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(keys)))
        for ax, key in zip(axes, keys):
            for variant in curves_by_variant:
                band = bands.get((variant, key))
                if band is None:
                    continue
                label = f"{variant} (n={band.n_seeds})"
                ax.plot(band.steps, band.mean, color=colors[variant], label=label, lw=1.6)
                ax.fill_between(band.steps, band.low, band.high, color=colors[variant], alpha=0.2, lw=0)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize=7)
        # wrapped to the figure's width (≈ 14 characters per inch at 9 pt): a one-panel figure cuts a long title
        fig.suptitle(textwrap.fill(f"{title} ({BAND_DESCRIPTION})", width=int(14 * 5.2 * len(keys))), fontsize=9)
        written[stem] = save_figure(fig, out_dir / f"curves_{stem}.png")
    return written


def plot_ablation(
    rows: Sequence[dict[str, Any]],
    tier: str,
    unit: str,
    out_path: Path,
    paper_metric: str = "published metric",
    ours_metric: str = "our metric",
) -> Path | None:
    """Published and ours per ablation row, in two panels: the paper's benchmark at its scale and our task at the
    tier's are different quantities, never one axis."""
    if not rows:
        return None
    return paper_vs_ours_bars(
        [r.get("label") or r["variant"] for r in rows],
        [r.get("published") for r in rows],
        [r.get("ours_mean") for r in rows],
        [r.get("ours_ci") for r in rows],
        paper_ylabel=f"{paper_metric} ({unit})",
        ours_ylabel=f"{ours_metric}",
        tier=tier,
        title="Ablation rows: the paper's numbers and ours are different quantities at different scales",
        out_path=out_path,
    )


def paper_vs_ours_bars(
    labels: Sequence[str],
    published: Sequence[float | None],
    ours: Sequence[float | None],
    ours_ci: Sequence[Sequence[float] | None],
    *,
    paper_ylabel: str,
    ours_ylabel: str,
    tier: str,
    title: str,
    out_path: Path,
    zero_line: bool = False,
) -> Path:
    """Two panels over the same rows: the paper's values (grey, its own axis) and ours with 95% CIs (blue, ours)."""
    x = np.arange(len(labels))
    means = [_nan(m) for m in ours]
    errors = np.array(
        [[m - ci[0], ci[1] - m] if ci and not math.isnan(m) else [0.0, 0.0] for ci, m in zip(ours_ci, means)]
    ).T  # [2, rows]
    fig = Figure(figsize=(max(7.0, 1.6 * len(labels) + 3), 3.8), layout="constrained")
    paper_ax, ours_ax = fig.subplots(1, 2)
    paper_ax.bar(x, [_nan(p) for p in published], 0.6, color="#888888")
    paper_ax.set_title("published (the paper's model, benchmark and scale)", fontsize=8)
    paper_ax.set_ylabel(paper_ylabel, fontsize=8)
    ours_ax.bar(x, means, 0.6, yerr=errors, capsize=3, color="#1f77b4")
    ours_ax.set_title(f"ours ({tier} tier, mean and 95% CI over seeds)", fontsize=8)
    ours_ax.set_ylabel(ours_ylabel, fontsize=8)
    for ax in (paper_ax, ours_ax):
        if zero_line:
            ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(x, list(labels), rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, out_path)


def plot_scaling_fits(
    curves_by_variant: dict[str, list[Curve]], fits: Sequence[dict[str, Any]], metric: str, out_path: Path
) -> Path | None:
    """Each variant's per-step metric (mean over seeds, smoothed) with every seed's fitted sigmoid."""
    from repro.report.scaling_fit import sigmoid_curve

    colors = _variant_colors(list(curves_by_variant))
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for row in fits:
        variant = row["variant"]
        band = seed_band(curves_by_variant.get(variant, []), metric)
        if band is None or variant not in colors:
            continue
        ax.plot(band.steps, band.mean, color=colors[variant], alpha=0.35, lw=1.0)
        steps = np.linspace(1.0, float(band.steps.max()), 200)
        for i, f in enumerate(x for x in row["fits"] if "A" in x):
            label = f"{variant}: fits, mean A = {row['A_mean']:.3f}" if i == 0 else None
            ax.plot(steps, sigmoid_curve(steps, f["A"], f["B"], f["C_mid"], f["R0"]), color=colors[variant], lw=1.4,
                    label=label)  # fmt: skip
    if not ax.has_data():
        return None
    ax.set_xlabel("optimizer step (compute)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Sigmoidal compute–performance fits (ScaleRL); faint: the measured curve", fontsize=9)
    return save_figure(fig, out_path)


def plot_frontier(
    curves_by_variant: dict[str, list[Curve]], summary: dict[str, Any] | None, out_path: Path
) -> Path | None:
    """Gold reward against KL(π‖π_ref): each variant's training trajectory (mean over seeds at each evaluated
    step), its final per-seed evaluations as markers, and the reference policy as a star (DPO Fig. 2 left)."""
    if not summary:
        return None
    colors = _variant_colors(list(curves_by_variant))
    fig = Figure(figsize=(5.6, 4.0), layout="constrained")
    ax = fig.subplots()
    for variant, curves in curves_by_variant.items():
        kl, gold = seed_band(curves, "eval_kl"), seed_band(curves, "eval_gold_reward")
        if kl is not None and gold is not None and len(kl.mean) == len(gold.mean):
            ax.plot(
                kl.mean, gold.mean, color=colors[variant], lw=1.2, alpha=0.8, marker=".", label=f"{variant} (training)"
            )
        finals = [
            p
            for p in summary.get("points", {}).get(variant, [])
            if p["kl"] is not None and p["gold_reward"] is not None
        ]
        if finals:
            ax.scatter([p["kl"] for p in finals], [p["gold_reward"] for p in finals], color=colors[variant], marker="o",
                       edgecolor="black", s=36, zorder=3, label=f"{variant} (final, per seed)")  # fmt: skip
    ref = (summary.get("reference") or {}).get("gold_reward")
    if ref is not None:
        ax.scatter([0.0], [ref], marker="*", s=160, color="black", zorder=4, label="reference (starting model)")
    if not ax.has_data():
        return None
    ax.set_xlabel("KL(π‖π_ref) per completion (nats)")
    ax.set_ylabel("gold reward of samples")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle("Reward/KL frontier on held-out prompts", fontsize=9)
    return save_figure(fig, out_path)


def save_figure(fig: Figure, path: Path) -> Path:
    """Write a PNG atomically (a killed render never leaves half a figure)."""
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def _variant_colors(variants: list[str]) -> dict[str, Any]:
    palette = [f"C{i}" for i in range(10)]
    return {v: palette[i % len(palette)] for i, v in enumerate(variants)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _nan(value: Any) -> float:
    return float(value) if _is_number(value) else float("nan")
