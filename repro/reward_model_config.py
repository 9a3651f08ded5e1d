"""The configuration of a reward-model run (`trainer: reward_model`): TRL 1.16's RewardConfig vocabulary.

A paper config selects it with the top-level key `trainer: reward_model`; `repro.config.resolve` then validates the
merged YAML into these frozen dataclasses. `train:` takes RewardConfig's names (center_rewards_coefficient,
learning_rate, per_device_train_batch_size, gradient_accumulation_steps, max_steps, max_length, lr_scheduler_type,
warmup_steps, save_steps, ...). `data:` names the pairs as the preference family does (`prepared:<name>` synthetic
pairs, a local file or a hub id) and how each pair's margin m is made (`data.margin`, below).

Margins (the loss's m, repro/losses/reward_model.py):
- `none`: no margin (TRL without a `margin` column);
- `llama2_small` / `llama2_large`: Llama 2's two tables of m by preference rating (arXiv 2307.09288 App. A.3.3,
  Table 27): significantly better / better / slightly better / negligibly better or unsure → 1, 2/3, 1/3, 0 (small)
  or 3, 2, 1, 0 (large). Synthetic pairs are rated from their gold-reward gap
  (repro/data/preference_synthetic.py::rating_margin); real pairs need `data.rating_field`;
- `column`: the number in the data's `data.margin_field` column, as TRL reads its `margin` column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from repro.config import ModelConfig, ResourcesConfig, check_trl_names
from repro.relevance import check_relevant
from repro.schema import ConfigError, from_dict

MARGIN_MODES = ("none", "llama2_small", "llama2_large", "column")


@dataclass(frozen=True)
class RewardDataConfig:
    # "prepared:<name>" (synthetic samples the DAG builds: repro/data/preference_synthetic.py), a local
    # .jsonl/.json/.parquet file, or a hub dataset id (repro/data/preference_loader.py)
    pairs: str
    split: str = "train"
    eval_split: str = "eval"  # equal to `split` (one local file): eval.n_prompts prompts are held out of it
    limit: int | None = None
    # synthetic data only: how training labels are drawn from the gold rewards (make_pairs); held-out pairs are
    # always labelled by the gold reward (the higher one is chosen)
    preferences: Literal["bradley_terry", "deterministic"] = "bradley_terry"
    bt_temperature: float = 0.1  # τ in P(y_i ≻ y_j) = σ((r*_i − r*_j)/τ)
    # synthetic data only: rescore the samples with this gold reward (repro/data/preference_synthetic.py
    # GOLD_REWARDS) before pairing and rating; null: the rewards stored when the samples were prepared
    gold_reward: str | None = None
    data_seed: int = 0  # the labels' seed: the same for every run variant and training seed
    margin: Literal["none", "llama2_small", "llama2_large", "column"] = "none"
    margin_field: str = "margin"  # margin: column — the column holding m (TRL's `margin`)
    # real data: the column holding each pair's 4-level rating (a Llama 2 rating name or its level 0–3, 3 =
    # significantly better); gives per-level held-out metrics, and m under llama2_*
    rating_field: str | None = None
    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"


@dataclass(frozen=True)
class RewardTrainConfig:
    """TRL RewardConfig vocabulary."""

    max_steps: int
    learning_rate: float = 1e-4  # RewardConfig's default
    center_rewards_coefficient: float | None = None  # η of the centring term; None (TRL's default): off
    per_device_train_batch_size: int = 8  # pairs per micro-batch
    gradient_accumulation_steps: int = 1
    max_length: int | None = 1024  # RewardConfig's default: longer pairs are dropped (counted), not truncated
    lr_scheduler_type: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    eval_every: int = 0  # every n steps: accuracy and mean reward on held-out pairs (eval.n_monitor_pairs of them)
    save_steps: int = 50
    num_threads: int | None = None
    report_to: str | list[str] = "none"  # TRL's: trackers each metrics row also goes to (repro/trackers.py)

    @property
    def batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps


@dataclass(frozen=True)
class RewardEvalConfig:
    """Held-out pairs (held out by prompt) scored by the trained reward model and by its untrained head."""

    n_prompts: int = 200  # held-out prompts (synthetic: the first n of the eval split; one real file: drawn)
    n_monitor_pairs: int = 256  # held-out pairs scored during training with train.eval_every
    batch_size: int = 64


@dataclass(frozen=True)
class RewardRunConfig:
    trainer: Literal["reward_model"]
    model: ModelConfig
    data: RewardDataConfig
    train: RewardTrainConfig
    eval: RewardEvalConfig = field(default_factory=RewardEvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    description: str = ""


def resolve_reward_model(raw: dict[str, Any], where: str) -> RewardRunConfig:
    raw = dict(raw)
    if raw.pop("rewards", None):
        raise ConfigError(f"{where}: rewards: a reward model learns from labelled pairs; remove the rewards section")
    check_trl_names(raw, "reward_model", RewardTrainConfig, where)
    cfg = from_dict(RewardRunConfig, raw, where)
    _check(cfg, where)
    check_relevant(raw, cfg, "reward_model", where)
    return cfg


def _check(cfg: RewardRunConfig, where: str) -> None:
    """Names, settings that depend on one another, and bounds stricter than a number's own range (repro/schema.py
    BOUNDS, which from_dict has already checked: a plain range is stated there only)."""
    d = cfg.data

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where}: {key}: {message}")

    synthetic = d.pairs.startswith("prepared:")
    if d.margin in ("llama2_small", "llama2_large") and not synthetic and not d.rating_field:
        fail(
            "data.rating_field",
            f"margin {d.margin!r} maps each pair's preference rating to m (Llama 2 Table 27), but {d.pairs!r} is not "
            "synthetic: set data.rating_field to the column holding the rating, or use margin: column with "
            "data.margin_field for numeric margins",
        )
    if d.gold_reward is not None:
        from repro.data.preference_synthetic import GOLD_REWARDS
        from repro.registry import unknown_name_message

        if not synthetic:
            fail("data.gold_reward", "rescoring needs synthetic samples (data.pairs: prepared:<name>); remove it")
        if d.gold_reward not in GOLD_REWARDS:
            fail("data.gold_reward", unknown_name_message("gold reward", d.gold_reward, GOLD_REWARDS.names()))
    if synthetic and (d.margin == "column" or d.rating_field):
        fail(
            "data.margin",
            "synthetic pairs have no data columns: their rating comes from the gold-reward gap; "
            "use margin: none, llama2_small or llama2_large (and no rating_field)",
        )
