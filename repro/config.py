"""Run configuration: YAML layers with `base:` overlays, TRL vocabulary, presets, strict validation.

A run of paper P at tier X, variant V is the deep merge of two layer chains (later wins):

    papers/P/configs/X.yaml (and its `base:` chain; tier "paper" is configs/paper.yaml)
    papers/P/configs/variants/V.yaml (and its `base:` chain)

The `train:` section takes TRL's GRPOConfig field names, so a user can paste a TRL config. The
merged mapping is validated into frozen dataclasses before any model is loaded; the preset named by
`loss_type` fills every loss axis the config leaves unset, and the resolved config (every axis
explicit) is written beside each run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from repro.io import read_yaml
from repro.losses.presets import AXIS_NAMES, LossAxes
from repro.overrides import Overrides
from repro.relevance import check_relevant
from repro.schema import ConfigError, check_call_params, from_dict, to_dict
from repro.trainer_kinds import ONLINE_RL, trainer_kind

TIERS = ("smoke", "small", "paper")
NIGHTLY = "nightly"  # not a tier of its own: results/<paper>/nightly/ holds the shortened smoke runs


@dataclass(frozen=True)
class ModelConfig:
    name_or_path: str  # hub id, local dir, or "prepared:<name>" (a base model the DAG builds)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False


@dataclass(frozen=True)
class DataConfig:
    prompts: str  # "synthetic:<task>", a local .jsonl/.parquet path, or a hub dataset id
    split: str = "train"
    template: str = "raw"  # a name in repro.data.templates.TEMPLATES
    answer_style: str = "plain"  # how the grader extracts the answer (repro.rewards.grader)
    problem_field: str = "problem"
    answer_field: str = "answer"
    max_prompt_length: int | None = None  # TRL's removed GRPOConfig field lands here
    truncation_mode: str = "keep_end"  # which end of a longer prompt is kept (TRUNCATION_MODES)
    limit: int | None = None


ROLLOUT_SEEDINGS = ("batch", "per_group")
# How a prompt longer than data.max_prompt_length is cut. TRL 1.16's GRPOConfig has no prompt limit any more, so the
# name and values follow DPOConfig's / SFTConfig's `truncation_mode` (trl/trainer/dpo_config.py, sft_config.py:
# keep_start | keep_end). The default is TRL's for prompts, keep_end (cut from the left): GRPO, RLOO and GKD load
# their processing class with `truncation_side="left"` (trl/trainer/grpo_trainer.py, rloo_trainer.py,
# distillation_trainer.py) and SDPOConfig.max_prompt_length keeps `ids[-max_prompt_length:]`
# (trl/experimental/sdpo/sdpo_trainer.py). DPO/SFT's own default, keep_start, cuts the whole sequence, not a prompt.
TRUNCATION_MODES = ("keep_end", "keep_start")


@dataclass(frozen=True)
class TrainConfig:
    """The online-RL settings in TRL GRPOConfig vocabulary (plus the axes TRL's loss_type hides)."""

    max_steps: int
    learning_rate: float
    loss_type: str = "grpo"  # a preset: fills the axes below that are left unset
    advantage_estimator: str | None = None
    scale_rewards: str | None = None
    importance_sampling_level: str | None = None
    surrogate: str | None = None
    aggregation: str | None = None
    kl_estimator: str | None = None
    epsilon: float = 0.2
    epsilon_high: float | None = None  # None = epsilon (symmetric clip); CISPO: the absolute weight cap
    delta: float | None = None
    beta: float = 0.0
    use_bias_correction_kl: bool = True
    kl_in_reward: bool = False  # RLOO: r_i ← r_i − β·Σ_t(ℓ^old − ℓ^ref) before the baseline; no KL loss term
    num_generations: int = 8
    per_device_train_batch_size: int = 8  # completions per micro-batch, as in TRL
    gradient_accumulation_steps: int = 1
    steps_per_generation: int | None = None  # None = gradient_accumulation_steps
    num_iterations: int = 1
    max_completion_length: int = 256
    mask_truncated_completions: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    lr_scheduler_type: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    # Rollout–trainer mismatch correction (TIS / MIS, repro/losses/rollout_correction.py): ρ = π_old/π_rollout,
    # truncated or masked at [clip_min, clip_max]; TRL's vllm_importance_sampling_* names map here.
    rollout_correction: str = "none"
    rollout_correction_clip_min: float | None = None
    rollout_correction_clip_max: float = 3.0
    # GFPO (arXiv 2508.09726): of the num_generations sampled per prompt, train on the gfpo_retain best by
    # gfpo_score (repro/trainers/group_filter.py RETAIN_SCORES); advantages use the retained group only.
    gfpo_retain: int | None = None
    gfpo_score: str = "length"
    dynamic_sampling: bool = False  # DAPO §3.2: drop groups whose rewards are all equal, refill the batch
    dynamic_sampling_max_tries: int = 8  # generation rounds per batch before training on what was kept
    rollout_backend: str = "hf"  # hf | hf_mismatch (a perturbed sampler copy: repro/rollout/hf.py)
    rollout_options: dict[str, Any] = field(default_factory=dict)  # keyword options of the backend
    # batch: one RNG stream through each generation batch (a row's samples depend on its batch); per_group: each
    # prompt's G samples from a seed of (run seed, draw number), whatever the batching or the process that drew it;
    # what a data-parallel run needs (it then samples what one process would).
    rollout_seeding: str = "batch"
    # RLOO §3 variance claim: every n optimizer steps, tr Cov of a half-batch gradient estimate from a random
    # split of the generation's groups (repro/trainers/grad_variance.py); 0 = off. Does not change training.
    grad_variance_every: int = 0
    # ... and the same measurement for these advantage estimators (std scope none) on the same samples, weights
    # and split, logged as grad_var_<name>: the estimator's variance without the trajectory as a confound.
    grad_variance_estimators: list[str] = field(default_factory=list)
    # ScaleRL §3.2 (TRL's name): the LM head and its input in float32 while the rest runs in model.dtype.
    cast_lm_head_to_fp32: bool = False
    # PAPO (arXiv 2507.06448; TRL's experimental PAPOConfig names), vision-language policies only:
    # L += −γ·min(KL_prcp, c) + η1·H + η2·H^mask (repro/losses/perception.py), KL between π_θ on the original
    # and on the masked image. γ = η1 = η2 = 0 is plain GRPO; a VL run then still logs perception_kl.
    perception_loss_weight: float = 0.0  # γ (TRL's default 0.1 is not used: 0 keeps GRPO unchanged)
    mask_ratio: float = 0.6  # probability that a patch is blackened (PAPO: 0.6)
    mask_type: str = "random"  # repro/losses/perception.py IMAGE_MASKS: random (patches), pixel
    mask_patch_size: int | None = None  # None = the vision tower's patch size
    perception_kl_clip: float = 10.0  # c: upper bound on the per-token KL (PAPO's low_var_kl bound)
    der_loss_weight1: float = 0.0  # η1: double entropy loss, original image
    der_loss_weight2: float = 0.0  # η2: double entropy loss, masked image
    gradient_checkpointing: bool = False
    save_steps: int = 50
    num_threads: int | None = None
    # samples.jsonl: this many decoded completions of each optimizer step's generation (prompt, completion, reward;
    # TRL's log_completions), picked without touching any random stream; 0 = off.
    log_completions_per_step: int = 4
    # TRL's report_to: where each metrics.jsonl row is also streamed (none | tensorboard | wandb | trackio | a list |
    # all), with the run's identity and resolved config (repro/trackers.py)
    report_to: str | list[str] = "none"

    @property
    def spg(self) -> int:
        return self.steps_per_generation or self.gradient_accumulation_steps

    @property
    def generation_batch_size(self) -> int:
        """Completions per generation that reach the loss (GFPO samples num_generations / gfpo_retain times more)."""
        return self.per_device_train_batch_size * self.spg

    @property
    def prompts_per_generation(self) -> int:
        return self.generation_batch_size // self.update_group_size

    @property
    def update_group_size(self) -> int:
        """Completions per prompt that reach the update: GFPO's retained k, else num_generations."""
        return self.gfpo_retain or self.num_generations

    @property
    def epsilon_low(self) -> float:
        return self.epsilon

    @property
    def epsilon_high_value(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    @property
    def loss_axes(self) -> LossAxes:
        """The resolved loss axes (every one set once the preset has been expanded)."""
        return LossAxes(**{name: getattr(self, name) for name in AXIS_NAMES})


@dataclass(frozen=True)
class EvalConfig:
    # The held-out problems of `repro eval` (greedy, avg@k, pass@k, maj@k, graded by the one grader): a synthetic
    # task (smoke tier), or `prompts`, a local .jsonl/.json/.parquet file or a hub dataset id (small, paper tiers).
    task: str | None = None
    prompts: str | None = None
    split: str = "test"  # of `prompts`
    problem_field: str | None = None  # of `prompts`; None: data.problem_field
    answer_field: str | None = None  # None: data.answer_field
    n_problems: int = 200
    k: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 8
    seed: int = 1234
    # Math benchmarks run through lm-eval (repro/eval/benchmarks/<name>.yaml): name -> protocol overrides
    # on the benchmark's default protocol (template, answer_style, metric, n, k, temperature, top_p,
    # top_k, max_tokens, limit, seed). The DAG adds the benchmarks targets name; one not listed here runs
    # its default protocol, or at smoke tier its `smoke` block (runs.benchmark_overrides).
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_dir: str | None = None  # local benchmark JSONL directory (the shipped data/math); None: the hub
    backend: str = "auto"  # lm-eval model backend: auto (vLLM on GPU when installed, else HF), hf, vllm
    batch_size: int = 64


@dataclass(frozen=True)
class ResourcesConfig:
    """What one training job asks of the scheduler (Snakemake resources)."""

    gpus: int = 0
    nodes: int = 1
    threads: int = 1
    mem_mb: int = 4000
    runtime_min: int = 30
    # Several processes: ddp (a whole replica per rank) or fsdp (weights, gradients and optimizer state sharded,
    # PyTorch FSDP2; for models whose replica and AdamW state do not fit one device). repro/distributed.py
    data_parallel: Literal["ddp", "fsdp"] = "ddp"


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    eval: EvalConfig = field(default_factory=EvalConfig)
    rewards: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {weight, **params}
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    description: str = ""


# TRL names that moved or were renamed: old name -> (section, new name, note).
TRL_ALIASES: dict[str, tuple[str, str, str]] = {
    "num_completions": ("train", "num_generations", "the TRL index's name for num_generations"),
    "max_prompt_length": ("data", "max_prompt_length", "removed from TRL 1.16's GRPOConfig; prompts are cut here"),
    "vllm_importance_sampling_mode": ("train", "rollout_correction", "TIS/MIS mode; applied whatever the backend"),
    "vllm_importance_sampling_clip_max": ("train", "rollout_correction_clip_max", "C_max of the TIS/MIS ratio"),
    "vllm_importance_sampling_cap": ("train", "rollout_correction_clip_max", "deprecated in TRL 1.16: its clip_max"),
    "vllm_importance_sampling_clip_min": ("train", "rollout_correction_clip_min", "C_min of the TIS/MIS ratio"),
}
# TRL turns the correction on with a flag (default mode sequence_mask in 1.16, applied only with use_vllm);
# here the flag picks that default mode when no mode is given, and false switches the correction off.
TRL_CORRECTION_FLAG = "vllm_importance_sampling_correction"
TRL_DEFAULT_CORRECTION = "sequence_mask"
# TRL's use_vllm: true picks the vLLM rollout backend (repro/rollout/vllm.py); a tier overlay may swap it.
TRL_VLLM_FLAG = "use_vllm"
# TRL fields whose only value that means anything here is the harness's own behaviour: that value is accepted (a
# pasted config loads), any other is refused with what to do instead, never recorded and ignored.
TRL_FIXED: dict[str, tuple[tuple[Any, ...], str]] = {
    "bf16": (
        (False,),
        "TRL's bf16 is mixed-precision autocast, not done here; set model.dtype: bfloat16 for bf16 weights",
    ),
    "fp16": (
        (False,),
        "TRL's fp16 is mixed-precision autocast, not done here; set model.dtype: float16 for fp16 weights",
    ),
    "use_cpu": ((False,), "the device is the machine's (a GPU when there is one); remove it"),
    "logging_steps": ((1,), "every optimizer step is logged; remove it or set 1"),
    "save_strategy": (("steps",), "checkpoints follow train.save_steps; remove it or set steps"),
    "output_dir": ((), "the DAG chooses the run directory (results/<paper>/<tier>/<variant>/seed<n>); remove it"),
}


def check_trl_names(raw: dict[str, Any], kind: str, train_cls: type, where: str) -> None:
    """A TRL name in `train:` that this kind does not implement is refused as such (with what to do instead), not
    answered with a did-you-mean to another setting; a TRL loss_type the harness lacks likewise; report_to's names
    are checked (repro/trackers.py)."""
    from repro.trl_vocabulary import CONFIG_FIELDS, HINTS, LOSS_TYPES, TRAINING_ARGUMENTS, TRL_VERSION

    train = raw.get("train")
    if not isinstance(train, dict):
        return
    own = {f.name for f in dataclasses.fields(train_cls)}
    if "report_to" in train and "report_to" in own:
        from repro.trackers import check_report_to

        check_report_to(train["report_to"], where)
    for key in train:
        if key in own:
            continue
        hint = HINTS.get(key, "remove it")
        if key in CONFIG_FIELDS.get(kind, ()) or key in TRAINING_ARGUMENTS:
            raise ConfigError(
                f"{where}: train.{key}: a TRL {TRL_VERSION} setting that is not implemented in this harness; {hint}"
            )
        for other, names in CONFIG_FIELDS.items():
            if key in names:
                raise ConfigError(
                    f"{where}: train.{key}: TRL's name for a {other} setting; it means nothing to a {kind} run "
                    f"(this config's trainer kind); remove it"
                )
    loss = train.get("loss_type")
    names = [loss] if isinstance(loss, str) else loss if isinstance(loss, list) else []
    for name in names:
        if isinstance(name, str) and name in LOSS_TYPES.get(kind, ()) and not _implemented_loss(kind, name):
            raise ConfigError(
                f"{where}: train.loss_type: {name!r} is a TRL {TRL_VERSION} loss that is not implemented in this "
                f"harness; see `python -m repro list` for the loss types it has"
            )


def _implemented_loss(kind: str, name: str) -> bool:
    if kind == ONLINE_RL:
        from repro.losses.presets import PRESETS

        return name in PRESETS
    if kind == "preference":
        from repro.losses.preference import PREFERENCE_LOSSES

        return name in PREFERENCE_LOSSES
    return True  # a Literal loss_type: from_dict lists the implemented ones


# ----------------------------------------------------------------------------- layers


def read_layer(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One YAML file merged over its `base:` chain (paths relative to the file)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: `base:` cycle through {' -> '.join(str(p) for p in seen)}")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping at the top level")
    merged: dict[str, Any] = {}
    for base in base_names(data.pop("base", None), path):
        merged = deep_merge(merged, read_layer(path.parent / base, (*seen, path)))
    return deep_merge(merged, _apply_trl_aliases(data, path))


def layer_files(path: Path) -> list[Path]:
    """The file and every file in its `base:` chain (what a DAG job depends on)."""
    data = read_yaml(path) or {}
    files: list[Path] = []
    for base in base_names(data.get("base") if isinstance(data, dict) else None, path):
        files += layer_files(path.parent / base)
    return [*files, path]


def base_names(bases: Any, path: Path) -> list[str]:
    """A layer's `base:` as a list of file names (one name or a list of them, relative to the layer's folder)."""
    names = [bases] if isinstance(bases, str) else bases
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(
            f"{path}: base: is {bases!r}; it must name the YAML file(s) this one overlays, e.g. `base: ../smoke.yaml` "
            "or a list of such names"
        )
    return names


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_trl_aliases(data: dict[str, Any], path: Path) -> dict[str, Any]:
    train = data.get("train")
    if not isinstance(train, dict):
        return data
    data = {**data, "train": dict(train)}
    for old, (section, new, _note) in TRL_ALIASES.items():
        if old in data["train"]:
            value = data["train"].pop(old)
            target = data.setdefault(section, {}) if section != "train" else data["train"]
            if section != "train":
                data[section] = target = dict(target)
            if new in target and target[new] != value:
                raise ConfigError(f"{path}: train.{old} and {section}.{new} are both set; keep one")
            target[new] = value
    if TRL_CORRECTION_FLAG in data["train"]:
        enabled = data["train"].pop(TRL_CORRECTION_FLAG)
        if not enabled:
            data["train"]["rollout_correction"] = "none"
        else:
            data["train"].setdefault("rollout_correction", TRL_DEFAULT_CORRECTION)
    if data["train"].pop(TRL_VLLM_FLAG, False):  # use_vllm: false keeps the configured backend
        data["train"].setdefault("rollout_backend", "vllm")
    for name, (accepted, instead) in TRL_FIXED.items():
        if name in data["train"]:
            value = data["train"].pop(name)
            if (tuple(value) if isinstance(value, list) else value) not in accepted:
                raise ConfigError(f"{path}: train.{name}: is {value!r}; {instead}")
    return data


def paper_layer_paths(paper_dir: Path, tier: str, variant: str) -> tuple[Path, Path]:
    from repro.registry import unknown_name_message

    if not (paper_dir / "paper.yaml").is_file():
        papers = sorted(p.parent.name for p in paper_dir.parent.glob("*/paper.yaml"))
        raise ConfigError(unknown_name_message("paper", paper_dir.name, papers))
    if tier not in (*TIERS, NIGHTLY):
        raise ConfigError(unknown_name_message("tier", tier, list(TIERS)))
    # the nightly regression run (configs/nightly.yaml) uses the smoke config; only its steps and seeds differ
    tier_file = paper_dir / "configs" / f"{'smoke' if tier == NIGHTLY else tier}.yaml"
    variant_file = paper_dir / "configs" / "variants" / f"{variant}.yaml"
    if not variant_file.is_file():
        names = sorted(p.stem for p in (paper_dir / "configs" / "variants").glob("*.yaml"))
        raise ConfigError(unknown_name_message(f"variant of {paper_dir.name}", variant, names))
    return tier_file, variant_file


def merged_paper_config(paper_dir: Path, tier: str, variant: str, overrides: Overrides | None = None) -> dict[str, Any]:
    """The tier's layers, then the variant's, then the variant's `tiers: {<tier>: ...}` block for this tier (what a
    variant sets differently at one tier, e.g. a per-device batch that the paper tier splits over its GPUs), then
    the run's overrides (`model=`, `data_dir=`, `--set`: repro/overrides.py)."""
    tier_file, variant_file = paper_layer_paths(paper_dir, tier, variant)
    variant_layer = read_layer(variant_file)
    by_tier = variant_layer.pop("tiers", None) or {}
    if not isinstance(by_tier, dict) or set(by_tier) - set(TIERS):
        raise ConfigError(
            f"{variant_file}: tiers: must map tier names ({', '.join(TIERS)}) to settings; got {by_tier!r}"
        )
    own = by_tier.get("smoke" if tier == NIGHTLY else tier) or {}
    if not isinstance(own, dict):
        raise ConfigError(f"{variant_file}: tiers.{tier}: must be a mapping of settings; got {own!r}")
    merged = deep_merge(deep_merge(read_layer(tier_file), variant_layer), own)
    return overrides.apply(merged, f"{paper_dir.name} tier={tier}") if overrides else merged


# ----------------------------------------------------------------------------- validation


def load_paper_config(paper_dir: str | Path, tier: str, variant: str, overrides: Overrides | None = None) -> Any:
    """The validated config of one run: a RunConfig, or another trainer kind's (repro/trainer_kinds.py)."""
    paper_dir = Path(paper_dir)
    return resolve(
        merged_paper_config(paper_dir, tier, variant, overrides), paper_where(paper_dir.name, tier, variant, overrides)
    )


def paper_where(paper: str, tier: str, variant: str, overrides: Overrides | None = None) -> str:
    """How errors name one run's config: paper, tier, variant and the overrides on it."""
    return f"{paper} tier={tier} variant={variant}" + (f" ({overrides.describe()})" if overrides else "")


def load_config_file(path: str | Path) -> Any:
    return resolve(read_layer(Path(path)), str(path))


def load_resolved(path: Path) -> Any:
    """A run's config.resolved.yaml back into its dataclasses (every field explicit, so no preset expansion)."""
    raw = read_yaml(path)
    if isinstance(raw, dict) and raw.get("trainer", ONLINE_RL) != ONLINE_RL:
        return from_dict(trainer_kind(str(raw["trainer"]), str(path)).load("config"), raw, str(path))
    return from_dict(RunConfig, raw, str(path))


def resolve(raw: dict[str, Any], where: str) -> Any:
    """Validate a merged mapping and expand the preset; raises ConfigError with a fix-it message.

    `trainer: <kind>` selects another kind's config (repro/trainer_kinds.py, e.g. `preference`); without it
    the run is online RL (RunConfig).
    """
    raw = dict(raw)
    trainer = raw.pop("trainer", ONLINE_RL)
    if trainer != ONLINE_RL:
        return trainer_kind(str(trainer), where).load("resolve")({**raw, "trainer": trainer}, where)
    rewards = raw.get("rewards") or {}
    if not isinstance(rewards, dict):
        raise ConfigError(f"{where}: rewards must be a mapping of reward name -> {{weight, params}}")
    # `name: null` or `name: false` in an overlay removes a reward set by a lower layer.
    for name, spec in rewards.items():
        if spec not in (None, False) and not isinstance(spec, dict):
            raise ConfigError(f"{where}: rewards.{name} must be a mapping like {{weight: 1.0}}, got {spec!r}")
    raw["rewards"] = {name: dict(spec) for name, spec in rewards.items() if spec not in (None, False)}
    check_trl_names(raw, ONLINE_RL, TrainConfig, where)
    cfg = from_dict(RunConfig, raw, where)
    cfg = dataclasses.replace(cfg, train=_expand_axes(cfg.train, where))
    _check(cfg, where)
    check_relevant(raw, cfg, ONLINE_RL, where)
    return cfg


def _expand_axes(train: TrainConfig, where: str) -> TrainConfig:
    from repro.losses.presets import PRESETS, expand_preset

    if train.loss_type not in PRESETS:
        from repro.registry import unknown_name_message

        raise ConfigError(
            f"{where}: train.loss_type: " + unknown_name_message("loss_type", train.loss_type, PRESETS.names())
        )
    axes = expand_preset(train.loss_type, {name: getattr(train, name) for name in AXIS_NAMES})
    return dataclasses.replace(train, **dataclasses.asdict(axes))


def _check_name(where: str, key: str, value: str, registry: Any) -> None:
    if value not in registry:
        from repro.registry import unknown_name_message

        raise ConfigError(f"{where}: {key}: " + unknown_name_message(registry.kind, value, registry.names()))


def _check(cfg: RunConfig, where: str) -> None:
    """Names, settings that depend on one another, and bounds stricter than a number's own range (repro/schema.py
    BOUNDS, which from_dict has already checked: a plain range is stated there only)."""
    from repro.data.templates import TEMPLATES
    from repro.losses.advantages import ADVANTAGES, STD_SCOPES
    from repro.losses.aggregation import AGGREGATORS
    from repro.losses.kl import KL_ESTIMATORS
    from repro.losses.ratio import RATIO_LEVELS
    from repro.losses.surrogates import SURROGATES
    from repro.rewards.functions import REWARDS

    t = cfg.train

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where}: {key}: {message}")

    _check_name(where, "train.advantage_estimator", t.advantage_estimator or "", ADVANTAGES)
    _check_name(where, "train.importance_sampling_level", t.importance_sampling_level or "", RATIO_LEVELS)
    _check_name(where, "train.surrogate", t.surrogate or "", SURROGATES)
    _check_name(where, "train.aggregation", t.aggregation or "", AGGREGATORS)
    _check_name(where, "train.kl_estimator", t.kl_estimator or "", KL_ESTIMATORS)
    _check_name(where, "data.template", cfg.data.template, TEMPLATES)
    from repro.losses.rollout_correction import ROLLOUT_CORRECTIONS

    _check_name(where, "train.rollout_correction", t.rollout_correction, ROLLOUT_CORRECTIONS)
    from repro.rollout.hf import BACKENDS, backend_options

    _check_name(where, "train.rollout_backend", t.rollout_backend, BACKENDS)
    accepted = backend_options(t.rollout_backend)
    unknown = sorted(set(t.rollout_options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "no options"
        fail("train.rollout_options", f"{t.rollout_backend} takes {takes}, not {', '.join(unknown)}")
    check_call_params(where, "train.rollout_options", t.rollout_options, BACKENDS.get(t.rollout_backend).__init__)
    if t.rollout_seeding not in ROLLOUT_SEEDINGS:
        fail("train.rollout_seeding", f"{t.rollout_seeding!r} is not one of {', '.join(ROLLOUT_SEEDINGS)}")
    low, high = t.rollout_correction_clip_min, t.rollout_correction_clip_max
    if low is not None and low >= high:
        fail("train.rollout_correction_clip_max", f"need 0 <= clip_min < clip_max (got {low}, {high})")
    _check_benchmarks(cfg.eval, where)
    from repro.trainers.group_filter import RETAIN_SCORES

    _check_name(where, "train.gfpo_score", t.gfpo_score, RETAIN_SCORES)
    if t.gfpo_retain is not None and t.gfpo_retain > t.num_generations:
        fail("train.gfpo_retain", f"keeps {t.gfpo_retain} of num_generations={t.num_generations}; need 2 <= k <= G")
    for name in t.grad_variance_estimators:
        _check_name(where, "train.grad_variance_estimators", name, ADVANTAGES)
    from repro.losses.perception import IMAGE_MASKS

    _check_name(where, "train.mask_type", t.mask_type, IMAGE_MASKS)
    if t.grad_variance_estimators and not t.grad_variance_every:
        fail("train.grad_variance_estimators", "set train.grad_variance_every too (how often to measure)")
    if t.grad_variance_every and t.prompts_per_generation < 2:
        fail("train.grad_variance_every", "the split-half gradient variance needs at least 2 prompts per generation")
    if t.scale_rewards not in STD_SCOPES:
        fail("train.scale_rewards", f"{t.scale_rewards!r} is not one of {', '.join(STD_SCOPES)}")
    if t.num_generations < 2:
        fail(
            "train.num_generations", f"is {t.num_generations}; group advantages need at least 2 completions per prompt"
        )
    if t.generation_batch_size % t.update_group_size:
        G = "gfpo_retain" if t.gfpo_retain else "num_generations"
        fail(
            "train.per_device_train_batch_size",
            f"the generation batch (per_device_train_batch_size × steps_per_generation = "
            f"{t.per_device_train_batch_size} × {t.spg} = {t.generation_batch_size}) must be divisible by "
            f"{G}={t.update_group_size}; make per_device_train_batch_size a multiple of it",
        )
    if t.spg % t.gradient_accumulation_steps and t.gradient_accumulation_steps % t.spg:
        fail(
            "train.steps_per_generation",
            f"{t.spg} and gradient_accumulation_steps={t.gradient_accumulation_steps} must divide one another, "
            "so an optimizer step covers whole windows of one generation or whole generations",
        )
    check_truncation_mode(where, cfg.data.truncation_mode)
    if t.surrogate == "cispo" and t.epsilon_high is None:
        fail("train.epsilon_high", "CISPO needs epsilon_high: the absolute cap on the IS weight (ScaleRL uses 5.0)")
    if not cfg.rewards:
        fail("rewards", "no reward function is set; add e.g. `correctness: {weight: 1.0}`")
    for name, spec in cfg.rewards.items():
        _check_name(where, f"rewards.{name}", name, REWARDS)
        params = {k: v for k, v in spec.items() if k != "weight"}
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            fail(f"rewards.{name}.weight", f"is {weight!r}; it must be a number")
        check_call_params(where, f"rewards.{name}", params, REWARDS.get(name))
        accepted = inspect.signature(REWARDS.get(name)).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        for param in params:
            if param not in accepted and not takes_any:
                valid = [p for p in accepted if p not in ("completions", "completion_lengths", "answers")]
                fail(f"rewards.{name}.{param}", f"unknown parameter; valid: weight, {', '.join(valid)}")
    if cfg.eval.task and cfg.eval.prompts:
        fail("eval.prompts", "set either eval.task (a synthetic task) or eval.prompts (a problem file), not both")
    if cfg.eval.prompts and cfg.eval.prompts == cfg.data.prompts and cfg.eval.split == cfg.data.split:
        fail(
            "eval.prompts", f"is the training data ({cfg.data.prompts}, split {cfg.data.split}); name held-out problems"
        )
    if cfg.data.prompts.startswith("synthetic:") and cfg.eval.task:
        from repro.data.synthetic import HELD_OUT_N, HELD_OUT_SEED

        # Training excludes exactly the default held-out set; any other evaluation set could overlap it.
        if cfg.eval.seed != HELD_OUT_SEED or cfg.eval.n_problems > HELD_OUT_N:
            fail(
                "eval",
                f"synthetic evaluation must use seed {HELD_OUT_SEED} and n_problems ≤ {HELD_OUT_N} "
                "(the held-out set training excludes); other values would overlap the training problems",
            )
    overlong = cfg.rewards.get("soft_overlong_punishment")
    if overlong is not None:
        max_len = overlong.get("max_completion_length") or t.max_completion_length
        cache = overlong.get("cache")
        if not isinstance(cache, int) or not 0 <= cache < max_len:
            fail(
                "rewards.soft_overlong_punishment.cache",
                f"is {cache!r}; it must be an integer in [0, {max_len}) (L_cache < L_max)",
            )
    if cfg.model.name_or_path.startswith("prepared:") and not cfg.model.name_or_path[len("prepared:") :]:
        fail("model.name_or_path", "`prepared:` needs a base-model name, e.g. prepared:smoke")


def check_truncation_mode(where: str, truncation_mode: str) -> None:
    """data.truncation_mode is one of TRUNCATION_MODES (data.max_prompt_length's range is in schema.BOUNDS)."""
    if truncation_mode not in TRUNCATION_MODES:
        raise ConfigError(
            f"{where}: data.truncation_mode: is {truncation_mode!r}; it must be keep_end (a longer prompt keeps its "
            "last tokens, TRL's default for prompts) or keep_start (it keeps its first tokens)"
        )


def _check_benchmarks(ev: EvalConfig, where: str) -> None:
    from repro.eval.benchmark import get_benchmark

    if ev.backend not in ("auto", "hf", "vllm"):
        raise ConfigError(f"{where}: eval.backend: {ev.backend!r} is not one of auto, hf, vllm")
    for name, overrides in ev.benchmarks.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}: eval.benchmarks.{name} must be a mapping of protocol overrides (or {{}})")
        try:
            bench = get_benchmark(name)
        except ConfigError as err:
            raise ConfigError(f"{where}: eval.benchmarks: {err}") from None
        bench.resolve(overrides, where)  # unknown key, impossible protocol
    if ev.benchmarks:  # a missing local copy must fail now, not after hours of training
        from repro.eval.benchmark import data_dir

        try:
            local = data_dir(ev.data_dir)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        missing = [
            f for n in ev.benchmarks if local and not (local / (f := get_benchmark(n).dataset.local_file)).is_file()
        ]
        if missing:
            raise ConfigError(
                f"{where}: eval.data_dir {local} lacks {', '.join(missing)} (the shipped copies: data/math, data/SOURCES.md)"
            )


def reward_params(cfg: RunConfig, name: str) -> dict[str, Any]:
    """A reward's params, with soft-overlong lengths defaulting to the training lengths (DAPO Eq. 13)."""
    params = {k: v for k, v in cfg.rewards[name].items() if k != "weight"}
    if name == "soft_overlong_punishment" and params.get("max_completion_length") is None:
        params["max_completion_length"] = cfg.train.max_completion_length
    return params


def config_hash(cfg: Any) -> str:
    return hashlib.sha256(dump(cfg).encode()).hexdigest()[:16]


def dump(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
