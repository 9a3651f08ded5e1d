"""The `train` and `eval` verbs for reward-model runs (`trainer: reward_model`); repro/runs.py dispatches here.

Data: synthetic pairs of a prepared sample file (`data.pairs: prepared:<name>`; training pairs from its train
split, held-out pairs from its eval split: other prompts), or a real preference dataset (local file or hub id;
with one file, `eval.n_prompts` prompts are held out of it, as repro/runs_preference.py does).

Evaluation (eval.json) scores the held-out pairs with the trained reward model and with the run's untrained
head (`base`: the same checkpoint and seed-drawn head the run started from): accuracy (r_c > r_r), the reward
distribution (mean, |mean|, std, min, max, |mean|/std), the mean gap r_c − r_r, and accuracy and gap per Llama 2
rating level (`gap_<level>`, `accuracy_<level>`, `n_<level>`) when the pairs are rated.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from repro.data.reward_pairs import LEVEL_NAMES, RewardPair
from repro.distributed import DataParallel
from repro.io import read_json, write_json
from repro.reward_model_config import RewardRunConfig
from repro.schema import ConfigError
from repro.trackers import reporting
from repro.workflow import PREPARED

HEADLINE = ("accuracy", "mean_reward", "abs_mean_reward", "reward_gap", "gap_significantly_better")


def reward_pairs(cfg: RewardRunConfig) -> tuple[list[RewardPair], list[RewardPair]]:
    """(training pairs, held-out pairs); prompts never overlap."""
    from repro.data import reward_pairs as rp

    d = cfg.data
    if d.pairs.startswith(PREPARED):
        from repro.data.preference_synthetic import load_samples, make_pairs
        from repro.runs_preference import prepared_data_dir

        data_dir = prepared_data_dir(d.pairs)
        samples = rp.rescored(load_samples(data_dir, d.split), d.gold_reward)
        labelled = make_pairs(samples, preferences=d.preferences, bt_temperature=d.bt_temperature, seed=d.data_seed)
        train = [rp.from_synthetic(p, d.margin) for p in labelled]
        held_samples = rp.rescored(load_samples(data_dir, d.eval_split)[: cfg.eval.n_prompts], d.gold_reward)
        return (train[: d.limit] if d.limit else train), rp.all_held_out_pairs(held_samples, d.margin)
    options = {
        "mode": d.margin, "margin_field": d.margin_field, "rating_field": d.rating_field,
        "prompt_field": d.prompt_field, "chosen_field": d.chosen_field, "rejected_field": d.rejected_field,
    }  # fmt: skip
    if d.eval_split != d.split:
        train = rp.load_real_pairs(d.pairs, d.split, **options)
        held = rp.load_real_pairs(d.pairs, d.eval_split, **options)
        return rp.subset(train, d.limit, d.data_seed), rp.subset(held, cfg.eval.n_prompts, d.data_seed)
    train, held = rp.hold_out_prompts(rp.load_real_pairs(d.pairs, d.split, **options), cfg.eval.n_prompts, d.data_seed)
    return rp.subset(train, d.limit, d.data_seed), held


def train_reward_model_run(
    cfg: RewardRunConfig, paper: str, tier: str, variant: str, seed: int, out: Path, model_path: str
) -> dict[str, Any]:
    from repro.runs import _save_model, finish_run, seed_everything, use_threads, write_resolved
    from repro.trainers.reward_model import load_reward_model

    started = time.time()
    train, held = reward_pairs(cfg)  # data problems surface before the model loads
    trainer_module = importlib.import_module(f"papers.{paper}.trainer")
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(out, cfg)
    use_threads(cfg.train.num_threads or cfg.resources.threads)
    # several processes under `accelerate launch` (DDP or FSDP, resources.data_parallel); else one
    dp = DataParallel.from_environment(cfg.resources.data_parallel)
    seed_everything(seed)
    model, tokenizer = load_reward_model(model_path, cfg.model.dtype, seed, cfg.model.trust_remote_code)
    trainer = trainer_module.build_trainer(
        cfg, model=model, tokenizer=tokenizer, pairs=train, out_dir=out, seed=seed,
        monitor_pairs=held[: cfg.eval.n_monitor_pairs], dp=dp,
    )  # fmt: skip
    if trainer.n_dropped:
        print(
            f"dropped {trainer.n_dropped} of {len(train)} training pairs longer than max_length={cfg.train.max_length}"
        )
    with reporting(cfg, out, dp.is_main, paper=paper, tier=tier, variant=variant, seed=seed):  # report_to
        rows = trainer.train(progress=True)
    weights = dp.full_state_dict(model) if dp.shards_parameters else None  # FSDP: a collective
    if not dp.is_main:  # the main rank saves the model and writes the summary
        return {}
    _save_model(model, tokenizer, out / "model", weights)  # a sequence-classification model: usable as eval.judge
    identity = {
        "paper": paper, "tier": tier, "variant": variant, "seed": seed, "n_pairs": len(trainer.pairs),
        "n_dropped_long": trainer.n_dropped,
    }  # fmt: skip
    return finish_run(cfg, out, rows, started, **identity)


def reward_metrics(r_c: Any, r_r: Any, levels: list[int | None]) -> dict[str, Any]:
    """Held-out metrics of rewards r_c [N], r_r [N] (tensors) and each pair's rating level (or None)."""
    import torch

    rewards = torch.cat([r_c, r_r])  # [2N] every held-out completion's reward, as TRL's mean_reward
    gap = r_c - r_r  # [N]
    mean, std = float(rewards.mean()), float(rewards.std()) if len(rewards) > 1 else float("nan")
    out: dict[str, Any] = {
        "n_pairs": len(gap),
        "accuracy": float((gap > 0).float().mean()),
        "reward_gap": float(gap.mean()),
        "mean_reward": mean,
        "abs_mean_reward": abs(mean),
        "reward_std": std,
        "abs_mean_over_std": abs(mean) / std if std > 0 else float("nan"),
        "min_reward": float(rewards.min()),
        "max_reward": float(rewards.max()),
        "mean_reward_chosen": float(r_c.mean()),
        "mean_reward_rejected": float(r_r.mean()),
    }
    gaps_by_level = []
    for level, name in enumerate(LEVEL_NAMES):
        mask = torch.tensor([lv == level for lv in levels], dtype=torch.bool)  # [N]
        if not mask.any():
            continue
        out[f"n_{name}"] = int(mask.sum())
        out[f"accuracy_{name}"] = float((gap[mask] > 0).float().mean())
        out[f"gap_{name}"] = float(gap[mask].mean())
        gaps_by_level.append(out[f"gap_{name}"])
    if len(gaps_by_level) >= 2:
        # 1.0 when the mean gap strictly grows with the rating level over the levels present (Llama 2's aim)
        out["gap_monotone"] = float(all(a < b for a, b in zip(gaps_by_level, gaps_by_level[1:], strict=False)))
    if "gap_significantly_better" in out and "gap_negligibly_better" in out:
        out["gap_top_minus_bottom"] = out["gap_significantly_better"] - out["gap_negligibly_better"]
    return out


def eval_reward_model_run(run_dir: Path, cfg: RewardRunConfig, out: Path) -> dict[str, Any]:
    from repro.runs import resolve_model_path, use_threads
    from repro.trainers.reward_model import encode_pairs, load_reward_model, score_pairs

    use_threads(cfg.resources.threads)
    _, held = reward_pairs(cfg)
    summary = read_json(run_dir / "summary.json")
    run_seed = int(summary.get("seed", 0))
    model, tokenizer = load_reward_model(str(run_dir / "model"))
    encoded, dropped = encode_pairs(tokenizer, held, cfg.train.max_length)
    if not encoded:
        raise ConfigError(
            f"{run_dir}: no held-out pairs to score ({len(held)} found, {dropped} longer than train.max_length); "
            "raise eval.n_prompts or train.max_length"
        )
    levels = [p.level for p in encoded]
    pad_id, batch = int(tokenizer.pad_token_id), cfg.eval.batch_size
    result: dict[str, Any] = {
        "trainer": "reward_model",
        **reward_metrics(*score_pairs(model, encoded, pad_id, batch), levels),
    }
    # The run's starting point: the same checkpoint with the head drawn from the run seed, untrained.
    base_model, _ = load_reward_model(resolve_model_path(cfg.model.name_or_path), cfg.model.dtype, run_seed)
    result["base"] = reward_metrics(*score_pairs(base_model, encoded, pad_id, batch), levels)
    result["n_dropped_long"] = dropped
    result["margin"] = cfg.data.margin
    result["center_rewards_coefficient"] = cfg.train.center_rewards_coefficient
    result["headline"] = [k for k in HEADLINE if k in result]
    write_json(out, result)
    return result
