"""The configuration of a supervised fine-tuning run (`trainer: sft`): SFT / DFT, with an optional BEMA average.

A paper config selects it with the top-level key `trainer: sft`; `repro.config.resolve` then validates the merged
YAML into these frozen dataclasses. `train:` takes the names of TRL 1.16's SFTConfig (loss_type nll | dft,
learning_rate, per_device_train_batch_size, gradient_accumulation_steps, max_steps, max_length,
completion_only_loss, packing, lr_scheduler_type, warmup_steps / warmup_ratio, ...); the top-level `bema:` block
takes the arguments of TRL's BEMACallback (update_freq φ, ema_power κ, bias_power η, lag ρ, update_after τ,
multiplier γ, min_ema_multiplier). `bema: null` (the default) trains without it.

Packing (TRL's `packing: true`, several examples per row) is refused with a fix-it error: the tiny models' rows
are a dozen tokens and the loss here is per token anyway, so packing would change nothing but the attention
pattern; a run that needs it sets `packing: false` (the default) instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from repro.config import ModelConfig, ResourcesConfig, check_trl_names
from repro.relevance import check_relevant
from repro.schema import ConfigError, from_dict

SYNTHETIC = "synthetic:"


@dataclass(frozen=True)
class SFTDataConfig:
    # "synthetic:<task>" (repro/data/synthetic.py: prompts and SFT targets made in code), a local
    # .jsonl/.json/.parquet file or a hub dataset id with prompt/completion or conversational rows
    dataset: str
    split: str = "train"
    eval_split: str = "train"  # real data: equal to `split` holds out eval.n_problems rows of it (prompt-disjoint)
    template: str = "raw"  # synthetic prompts: a name in repro/data/templates.py
    answer_style: str = "plain"  # how the grader extracts a synthetic answer (repro/rewards/grader.py)
    # synthetic: a fixed training set of this many problems (epochs over it); null: fresh problems every step
    n_train: int | None = None
    limit: int | None = None  # real data: a seeded subset of the training rows
    data_seed: int = 0  # the training set's seed (fixed set or real-data subset): the same for every run seed
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    messages_field: str = "messages"  # conversational rows: the last assistant turn is the completion


@dataclass(frozen=True)
class SFTTrainConfig:
    """TRL SFTConfig vocabulary."""

    max_steps: int
    learning_rate: float
    loss_type: Literal["nll", "dft"] = "nll"  # dft: −sg(p)·log p per token (arXiv 2508.05629)
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int | None = 1024  # prompt + completion tokens, cut from the end (TRL's truncation_mode keep_start)
    completion_only_loss: bool = True  # False: the prompt's tokens are trained on too
    packing: bool = False  # refused when true (module docstring)
    lr_scheduler_type: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # TRL's name: warm-up as a share of max_steps (used when warmup_steps is 0)
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    eval_every: int = 0  # every n steps (and at the last): held-out loss (and greedy accuracy) of each iterate
    eval_problems: int = 200  # held-out examples scored at those steps
    save_steps: int = 50
    num_threads: int | None = None
    report_to: str | list[str] = "none"  # TRL's: trackers each metrics row also goes to (repro/trackers.py)

    @property
    def batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def warmup(self) -> int:
        """Warm-up steps: warmup_steps, else ⌈warmup_ratio · max_steps⌉ (as transformers' get_warmup_steps)."""
        return self.warmup_steps or math.ceil(self.warmup_ratio * self.max_steps)


@dataclass(frozen=True)
class BemaConfig:
    """TRL 1.16 BEMACallback's arguments and defaults (arXiv 2508.00180's symbols in the comments)."""

    update_freq: int = 400  # φ: update the EMA and BEMA iterates every φ steps
    ema_power: float = 0.5  # κ: β_t = max((ρ + γt)^−κ, min_ema_multiplier)
    bias_power: float = 0.2  # η: α_t = (ρ + γt)^−η
    lag: int = 10  # ρ
    update_after: int = 0  # τ: burn-in; θ₀ and the EMA are re-anchored at step τ
    multiplier: float = 1.0  # γ
    min_ema_multiplier: float = 0.0


@dataclass(frozen=True)
class SFTEvalConfig:
    """Held-out evaluation: accuracy and loss on a synthetic task (and a shifted variant of it), or loss only."""

    task: str | None = None  # synthetic task of the held-out problems (defaults to the training task)
    shifted_task: str | None = None  # a task outside the training support (DFT's generalisation claim)
    n_problems: int = 200
    k: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 8
    seed: int = 1234


@dataclass(frozen=True)
class SFTRunConfig:
    trainer: Literal["sft"]
    model: ModelConfig
    data: SFTDataConfig
    train: SFTTrainConfig
    bema: BemaConfig | None = None
    eval: SFTEvalConfig = field(default_factory=SFTEvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    description: str = ""

    @property
    def synthetic_task(self) -> str | None:
        return self.data.dataset[len(SYNTHETIC) :] if self.data.dataset.startswith(SYNTHETIC) else None

    @property
    def eval_task(self) -> str | None:
        return self.eval.task or self.synthetic_task


def resolve_sft(raw: dict[str, Any], where: str) -> SFTRunConfig:
    raw = dict(raw)
    if raw.pop("rewards", None):
        raise ConfigError(f"{where}: rewards: an SFT run imitates its targets; remove the rewards section")
    check_trl_names(raw, "sft", SFTTrainConfig, where)
    cfg = from_dict(SFTRunConfig, raw, where)
    _check(cfg, where)
    check_relevant(raw, cfg, "sft", where)
    return cfg


def _check(cfg: SFTRunConfig, where: str) -> None:
    """Names, settings that depend on one another, and bounds stricter than a number's own range (repro/schema.py
    BOUNDS, which from_dict has already checked: a plain range is stated there only)."""
    from repro.data.synthetic import HELD_OUT_N, HELD_OUT_SEED, TASKS
    from repro.data.templates import TEMPLATES
    from repro.registry import unknown_name_message

    t, d, e = cfg.train, cfg.data, cfg.eval

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where}: {key}: {message}")

    if t.packing:
        fail("train.packing", "packing is not implemented (repro/sft_config.py says why); set packing: false")
    if d.template not in TEMPLATES:
        fail("data.template", unknown_name_message("prompt template", d.template, TEMPLATES.names()))
    task = cfg.synthetic_task
    if task is not None:
        if task not in TASKS:
            fail("data.dataset", unknown_name_message("synthetic task", task, TASKS.names()))
    elif d.n_train is not None:
        fail("data.n_train", "is for synthetic data only; use data.limit to subset a real dataset")
    for key, name in (("eval.task", e.task), ("eval.shifted_task", e.shifted_task)):
        if name is not None and name not in TASKS:
            fail(key, unknown_name_message("synthetic task", name, TASKS.names()))
    if e.shifted_task is not None and cfg.eval_task is None:
        fail("eval.shifted_task", "needs a synthetic evaluation task too: set eval.task or train on synthetic:<task>")
    if task is not None and (e.seed != HELD_OUT_SEED or e.n_problems > HELD_OUT_N or t.eval_problems > HELD_OUT_N):
        fail(
            "eval",
            f"synthetic evaluation must use seed {HELD_OUT_SEED} and at most {HELD_OUT_N} problems (eval.n_problems, "
            "train.eval_problems): the held-out set training excludes; other values would overlap the training problems",
        )
    if cfg.model.name_or_path == "prepared:":
        fail("model.name_or_path", "`prepared:` needs a base-model name, e.g. prepared:smoke")
