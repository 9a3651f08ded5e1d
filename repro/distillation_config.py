"""The configuration of a distillation run (`trainer: distillation`): GKD, on-policy distillation and GOLD.

A paper config selects it with the top-level key `trainer: distillation`. The `train:` section takes the names
of TRL 1.16's GKDConfig and GOLDConfig (../shared/reference/trl_losses.md §3.6–3.8, §4):

- `lmbda` λ: the probability that a micro-batch is on-policy (student samples); otherwise it is off-policy:
  teacher samples with `seq_kd: true`, else the dataset's completions;
- `beta` β of the generalised JSD (0: forward KL(teacher ‖ student), 1: reverse KL(student ‖ teacher));
- `temperature` (sampling), `top_p`, `top_k`, `max_new_tokens` (GOLD's `max_completion_length` maps here);
- `gold: true`: GOLDTrainer's same-tokenizer configuration, which also divides both logits by `temperature`
  in the loss (GKDTrainer uses T = 1 there); `loss_temperature` states the loss's T explicitly. GOLD 1.16
  stores `seq_kd` but never reads it (its off-policy slices are dataset completions), so `gold` with
  `seq_kd` is refused rather than silently ignored;
- `teacher_model_name_or_path`: a hub id, a local dir, or `prepared:<name>` (a larger tiny model the DAG builds);
- `loss_type`: `jsd` (the generalised JSD) or `sft` (the baseline: plain NLL on the off-policy completions,
  with `seq_kd` the teacher's samples).

The resolved config writes `loss_temperature` explicitly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from repro.config import ModelConfig, ResourcesConfig, check_trl_names, check_truncation_mode
from repro.relevance import check_relevant
from repro.schema import ConfigError, from_dict

SYNTHETIC = "synthetic:"
# TRL fields with no effect here (the tiny and hub models are loaded without dropout changes; the loop owns its
# logging); accepted so a pasted GKDConfig / GOLDConfig loads.
TRL_DISTILLATION_IGNORED = ("disable_dropout", "num_generations", "use_uld_loss", "teacher_model_init_kwargs")


@dataclass(frozen=True)
class DistillationDataConfig:
    prompts: str  # "synthetic:<task>" (fresh problems, held-out ones excluded), a local .jsonl/.parquet, or a hub id
    split: str = "train"
    template: str = "raw"  # repro/data/templates.py
    answer_style: str = "plain"  # how the grader extracts the answer (repro/rewards/grader.py)
    problem_field: str = "problem"
    answer_field: str = "answer"
    max_prompt_length: int | None = None  # longer prompts are cut to this many tokens
    truncation_mode: str = "keep_end"  # which end of a longer prompt is kept (repro/config.py TRUNCATION_MODES)
    limit: int | None = None  # synthetic: how many training problems (default 20,000)
    data_seed: int = 0  # the problems: the same for every variant and training seed


@dataclass(frozen=True)
class DistillationTrainConfig:
    """TRL GKDConfig / GOLDConfig vocabulary."""

    max_steps: int
    learning_rate: float
    teacher_model_name_or_path: str
    loss_type: str = "jsd"  # repro/losses/distillation.py DISTILLATION_LOSSES: jsd | sft
    lmbda: float = 0.5  # λ: share of on-policy micro-batches (GKD/GOLD default 0.5)
    beta: float = 0.5  # β of the generalised JSD (GKD/GOLD default 0.5)
    temperature: float = 0.9  # sampling temperature (GKD/GOLD default 0.9)
    top_p: float = 1.0  # GKD samples with top_p 1; GOLD's default is 0.95
    top_k: int = 0  # 0 = off
    gold: bool = False  # GOLDTrainer's configuration: `temperature` also divides the logits in the loss
    loss_temperature: float | None = None  # T in the loss; None: `temperature` with gold, else 1 (GKD)
    max_new_tokens: int = 128  # GKDConfig's name; GOLDConfig's max_completion_length maps here
    seq_kd: bool = False  # off-policy micro-batches are teacher samples instead of dataset completions
    # batch | per_group: each prompt's sample from its own seed (repro/config.py TrainConfig; data parallel needs it)
    rollout_seeding: str = "batch"
    per_device_train_batch_size: int = 8  # sequences per micro-batch
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    eval_every: int = 0  # every n steps: held-out accuracy and KL to the teacher of the student's samples
    eval_prompts: int = 100  # held-out problems the monitor samples (the first n of the eval set)
    eval_samples: int = 4  # samples per held-out problem in the monitor (avg@k)
    save_steps: int = 50
    num_threads: int | None = None
    report_to: str | list[str] = "none"  # TRL's: trackers each metrics row also goes to (repro/trackers.py)
    # samples.jsonl: this many decoded completions of each optimizer step's micro-batches (prompt, completion,
    # source; TRL's log_completions), picked without touching any random stream; 0 = off.
    log_completions_per_step: int = 4

    @property
    def batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps


@dataclass(frozen=True)
class DistillationEvalConfig:
    """Held-out accuracy of the student, the teacher and the starting student, and per-token KL to the teacher."""

    prompts: str | None = None  # None: the held-out set of data.prompts's synthetic task; else a file or hub id
    split: str = "test"
    n_problems: int = 200
    k: int = 8  # samples per problem (avg@k, pass@k)
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 12
    seed: int = 1234
    # steps_to_target: the first monitored step whose accuracy reaches base + f·(teacher − base)
    target_gap_fraction: float = 0.9
    batch_size: int = 256


@dataclass(frozen=True)
class DistillationRunConfig:
    trainer: Literal["distillation"]
    model: ModelConfig  # the student
    data: DistillationDataConfig
    train: DistillationTrainConfig
    eval: DistillationEvalConfig = field(default_factory=DistillationEvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    description: str = ""

    @property
    def synthetic_task(self) -> str | None:
        p = self.data.prompts
        return p[len(SYNTHETIC) :] if p.startswith(SYNTHETIC) else None


def resolve_distillation(raw: dict[str, Any], where: str) -> DistillationRunConfig:
    raw = dict(raw)
    if raw.pop("rewards", None):
        raise ConfigError(f"{where}: rewards: a distillation run learns from the teacher; remove the rewards section")
    train = dict(raw.get("train") or {})
    if "max_completion_length" in train:  # GOLDConfig's name for GKDConfig's max_new_tokens
        value = train.pop("max_completion_length")
        if "max_new_tokens" in train and train["max_new_tokens"] != value:
            raise ConfigError(
                f"{where}: train.max_completion_length ({value}) and train.max_new_tokens "
                f"({train['max_new_tokens']}) are the same setting; keep one"
            )
        train["max_new_tokens"] = value
    for name in TRL_DISTILLATION_IGNORED:
        train.pop(name, None)
    raw["train"] = train
    check_trl_names(raw, "distillation", DistillationTrainConfig, where)
    cfg = from_dict(DistillationRunConfig, raw, where)
    t = cfg.train
    if t.gold and t.loss_temperature is not None and t.loss_temperature != t.temperature:
        raise ConfigError(
            f"{where}: train.loss_temperature is {t.loss_temperature} but gold: true applies the sampling "
            f"temperature ({t.temperature}) in the loss, as TRL's GOLDTrainer does; drop loss_temperature or gold"
        )
    if t.loss_temperature is None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(t, loss_temperature=t.temperature if t.gold else 1.0))
    _check(cfg, where)
    check_relevant(raw, cfg, "distillation", where)
    return cfg


def _check(cfg: DistillationRunConfig, where: str) -> None:
    """Names, settings that depend on one another, and bounds stricter than a number's own range (repro/schema.py
    BOUNDS, which from_dict has already checked: a plain range is stated there only)."""
    from repro.data.templates import TEMPLATES
    from repro.losses.distillation import DISTILLATION_LOSSES
    from repro.registry import unknown_name_message
    from repro.rewards.grader import ANSWER_STYLES

    t, d, e = cfg.train, cfg.data, cfg.eval

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where}: {key}: {message}")

    if t.loss_type not in DISTILLATION_LOSSES:
        fail(
            "train.loss_type", unknown_name_message("distillation loss_type", t.loss_type, DISTILLATION_LOSSES.names())
        )
    if t.beta > 1.0:  # BOUNDS' train.beta is ≥ 0 (an online-RL KL coefficient); the JSD's mixture weight is ≤ 1 too
        fail("train.beta", f"is {t.beta}; it is a probability / mixture weight and must lie in [0, 1]")
    from repro.config import ROLLOUT_SEEDINGS

    if t.rollout_seeding not in ROLLOUT_SEEDINGS:
        fail("train.rollout_seeding", f"{t.rollout_seeding!r} is not one of {', '.join(ROLLOUT_SEEDINGS)}")
    if not t.teacher_model_name_or_path:
        fail("train.teacher_model_name_or_path", "is empty; name the teacher (hub id, local dir or prepared:<name>)")
    if t.teacher_model_name_or_path == cfg.model.name_or_path:
        fail("train.teacher_model_name_or_path", "is the student itself; distillation needs a different teacher")
    if t.loss_type == "sft" and t.lmbda > 0:
        fail(
            "train.lmbda",
            f"is {t.lmbda} with loss_type sft: that would fit the student's own samples; set lmbda: 0 "
            "(SFT on teacher samples: lmbda 0 with seq_kd true)",
        )
    if t.gold and t.seq_kd:
        fail(
            "train.seq_kd",
            "TRL 1.16's GOLDTrainer stores seq_kd but never uses it (off-policy slices are dataset completions); "
            "drop seq_kd, or drop gold for GKD's teacher-sampled off-policy batches",
        )
    task = cfg.synthetic_task
    if task is not None:
        from repro.data.synthetic import TASKS

        if task not in TASKS:
            fail("data.prompts", unknown_name_message("synthetic task", task, TASKS.names()))
    elif t.lmbda < 1.0 and not t.seq_kd:
        fail(
            "train.seq_kd",
            "off-policy micro-batches (lmbda < 1) need completions: only synthetic tasks carry them here; "
            "set seq_kd: true (teacher samples) or lmbda: 1",
        )
    if e.prompts is None and task is None:
        fail(
            "eval.prompts", "is not set and data.prompts is not synthetic; name the held-out problems (file or hub id)"
        )
    if d.template not in TEMPLATES:
        fail("data.template", unknown_name_message("prompt template", d.template, TEMPLATES.names()))
    if d.answer_style not in ANSWER_STYLES:
        fail("data.answer_style", unknown_name_message("answer style", d.answer_style, list(ANSWER_STYLES)))
    check_truncation_mode(where, d.truncation_mode)
