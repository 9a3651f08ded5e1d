"""The configuration of an offline preference run (`trainer: preference`): DPO-family and CPO-style losses.

A paper config selects it with the top-level key `trainer: preference`; `repro.config.resolve` then validates
the merged YAML into these frozen dataclasses instead of the online-RL ones. The `train:` section takes the
names of TRL's DPOConfig and CPOConfig (loss_type, beta, label_smoothing, discopop_tau, alpha, simpo_gamma,
precompute_ref_log_probs, max_length, ...), and the fields TRL 1.16 removed (`max_prompt_length`,
`max_completion_length`, `aot_pair`) are accepted and mapped: see the field comments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from repro.config import ModelConfig, ResourcesConfig, check_trl_names
from repro.relevance import check_relevant
from repro.schema import ConfigError, from_dict

# exo_pair's log ε term needs ε > 0 and TRL 1.16 refuses the seed's exo_pair config without it. We default to
# ε = 1e-3, the value the EXO paper's code and TRL's own tests use, and write it into the resolved config.
EXO_DEFAULT_LABEL_SMOOTHING = 1e-3


@dataclass(frozen=True)
class PreferenceDataConfig:
    # "prepared:<name>" (synthetic samples the DAG builds: repro/data/preference_synthetic.py), a local
    # .jsonl/.json/.parquet file, or a hub dataset id (repro/data/preference_loader.py)
    pairs: str
    split: str = "train"
    eval_split: str = "eval"
    limit: int | None = None
    format: Literal["paired", "unpaired"] = "paired"  # unpaired: thumbs up/down rows (BCO)
    # synthetic data only: how labels are drawn from the gold rewards (make_pairs)
    preferences: Literal["bradley_terry", "deterministic"] = "bradley_terry"
    bt_temperature: float = 0.1  # τ in P(y_i ≻ y_j) = σ((r*_i − r*_j)/τ)
    label_flip: float = 0.0  # share of training labels swapped (robust DPO), synthetic or real; held-out never
    thumbs_up_threshold: float = 1.0  # unpaired: desirable when r* ≥ this
    data_seed: int = 0  # the labels' seed: the same for every run variant and training seed
    max_prompt_length: int | None = None  # TRL 1.16 removed it from DPOConfig; prompts keep their last tokens
    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"


@dataclass(frozen=True)
class PreferenceTrainConfig:
    """TRL DPOConfig / CPOConfig vocabulary."""

    max_steps: int
    learning_rate: float
    # a name in repro/losses/preference.py PREFERENCE_LOSSES, or bco_unpaired; or a list of names whose losses are
    # summed with loss_weights (TRL's MPO: [sigmoid, bco_pair, sft]); a one-name list is that name
    loss_type: str | list[str] = "sigmoid"
    loss_weights: list[float] | None = None  # one per loss_type entry; None: 1 each (TRL)
    # CPOConfig's weight of the chosen completions' NLL added to the loss (loss_type simpo: TRL's default 1.0;
    # alphapo: 0, which CPOConfig imposes). None: that default; the resolved config writes it.
    cpo_alpha: float | None = None
    beta: float = 0.1
    label_smoothing: float | None = None  # None: 0, except exo_pair (EXO_DEFAULT_LABEL_SMOOTHING)
    discopop_tau: float = 0.05
    alpha: float = 0.0  # AlphaPO's reward shape (CPOConfig.alpha)
    simpo_gamma: float = 0.5  # target margin γ of SimPO / AlphaPO (CPOConfig.simpo_gamma)
    per_device_train_batch_size: int = 8  # pairs per micro-batch (unpaired: rows)
    gradient_accumulation_steps: int = 1
    precompute_ref_log_probs: bool = True  # one pass with the initial policy before training, as TRL does
    max_length: int | None = None  # prompt + completion tokens, cut from the end (TRL's keep_start)
    max_completion_length: int | None = None  # CPOConfig's field (removed from DPOConfig in TRL 1.16)
    lr_scheduler_type: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    eval_every: int = 0  # every n steps: gold reward and KL of policy samples on eval prompts (frontier points)
    eval_prompts: int = 64
    save_steps: int = 50
    num_threads: int | None = None
    report_to: str | list[str] = "none"  # TRL's: trackers each metrics row also goes to (repro/trackers.py)

    @property
    def batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def loss_names(self) -> list[str]:
        return list(self.loss_type) if isinstance(self.loss_type, list) else [self.loss_type]

    @property
    def loss_terms(self) -> list[tuple[str, float]]:
        """(loss name, weight) of every term of the objective, CPO's NLL term included (losses.combined_loss)."""
        weights = self.loss_weights or [1.0] * len(self.loss_names)
        terms = list(zip(self.loss_names, weights, strict=True))
        return terms + ([("sft", self.cpo_alpha)] if self.cpo_alpha else [])


@dataclass(frozen=True)
class PreferenceEvalConfig:
    """Alignment evaluation (repro/eval/alignment.py) and, optionally, math benchmarks through lm-eval."""

    n_prompts: int = 200  # held-out prompts: samples for gold reward, win rate and KL
    samples_per_prompt: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 8
    seed: int = 1234
    gold_reward: str | None = None  # synthetic data: the gold reward name (repro/data/preference_synthetic.py)
    # {kind: reward_model, path: ...} (repro/eval/judge.py); null: none (a tier overlay clears the paper's)
    judge: dict[str, Any] | None = None
    judged_benchmarks: dict[str, dict[str, Any]] | None = None  # name -> overrides (repro/eval/judge_benchmarks/)
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)  # math suites, as in the RL config
    data_dir: str | None = None
    backend: str = "auto"
    batch_size: int = 64


@dataclass(frozen=True)
class PreferenceRunConfig:
    trainer: Literal["preference"]
    model: ModelConfig
    data: PreferenceDataConfig
    train: PreferenceTrainConfig
    eval: PreferenceEvalConfig = field(default_factory=PreferenceEvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    description: str = ""


UNPAIRED_LOSSES = ("bco_unpaired",)  # trained on thumbs up/down rows (data.format: unpaired)
# CPOConfig's cpo_alpha: 1.0 by default (simpo), 0 imposed for alphapo (CPOConfig.__post_init__); DPO losses have none
CPO_ALPHA_DEFAULT = {"simpo": 1.0, "alphapo": 0.0}


def resolve_preference(raw: dict[str, Any], where: str) -> PreferenceRunConfig:
    raw = dict(raw)
    if raw.pop("rewards", None):
        raise ConfigError(f"{where}: rewards: a preference run learns from labelled pairs; remove the rewards section")
    check_trl_names(raw, "preference", PreferenceTrainConfig, where)
    cfg = from_dict(PreferenceRunConfig, raw, where)
    t = cfg.train
    if isinstance(t.loss_type, list) and len(t.loss_type) == 1 and t.loss_weights is None:
        t = dataclasses.replace(t, loss_type=t.loss_type[0])  # TRL's own default form, [sigmoid], is sigmoid
    if t.label_smoothing is None:
        t = dataclasses.replace(t, label_smoothing=EXO_DEFAULT_LABEL_SMOOTHING if "exo_pair" in t.loss_names else 0.0)
    if t.cpo_alpha is None:
        t = dataclasses.replace(
            t, cpo_alpha=CPO_ALPHA_DEFAULT.get(t.loss_type, 0.0) if isinstance(t.loss_type, str) else 0.0
        )
    cfg = dataclasses.replace(cfg, train=t)
    _check(cfg, where)
    check_relevant(raw, cfg, "preference", where)
    return cfg


def _check_loss_list(t: PreferenceTrainConfig, fail: Any) -> None:
    """A loss list (TRL's MPO form) with its weights, and CPO's cpo_alpha where TRL has it."""
    names = t.loss_names
    if isinstance(t.loss_type, list):
        if not names or len(set(names)) != len(names):
            fail("train.loss_type", f"is {t.loss_type!r}; a list names each loss once (e.g. [sigmoid, bco_pair, sft])")
        if set(names) & set(UNPAIRED_LOSSES):
            fail("train.loss_type", "bco_unpaired trains on unpaired rows; it cannot be combined with pair losses")
    if t.loss_weights is not None and len(t.loss_weights) != len(names):
        fail(
            "train.loss_weights",
            f"has {len(t.loss_weights)} weights for {len(names)} loss types; give one per loss_type",
        )
    if t.cpo_alpha and not (isinstance(t.loss_type, str) and t.loss_type == "simpo"):
        why = (
            "TRL's CPOConfig sets it to 0 for loss_type alphapo; use loss_type simpo (with alpha) for the NLL term"
            if t.loss_type == "alphapo"
            else "it is CPOConfig's (loss_type simpo); for a DPO loss add the NLL as a loss: loss_type: [<loss>, sft] "
            "with loss_weights"
        )
        fail("train.cpo_alpha", f"is {t.cpo_alpha}; {why}")


def _check(cfg: PreferenceRunConfig, where: str) -> None:
    """Names, settings that depend on one another, and bounds stricter than a number's own range (repro/schema.py
    BOUNDS, which from_dict has already checked: a plain range is stated there only)."""
    from repro.losses.preference import PREFERENCE_LOSSES
    from repro.registry import unknown_name_message

    t, d = cfg.train, cfg.data

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{where}: {key}: {message}")

    for name in t.loss_names:
        if name not in PREFERENCE_LOSSES and name not in UNPAIRED_LOSSES:
            fail(
                "train.loss_type",
                unknown_name_message("preference loss_type", name, [*PREFERENCE_LOSSES, *UNPAIRED_LOSSES]),
            )
    _check_loss_list(t, fail)
    unpaired = t.loss_type in UNPAIRED_LOSSES
    if unpaired != (d.format == "unpaired"):
        need = "unpaired" if unpaired else "paired"
        fail(
            "data.format",
            f"is {d.format!r} but loss_type {t.loss_type!r} trains on {need} data; set data.format: {need}",
        )
    eps = t.label_smoothing or 0.0
    if "exo_pair" in t.loss_names and not 0.0 < eps < 1.0:
        fail("train.label_smoothing", f"is {eps}; exo_pair needs 0 < ε < 1 (log ε term; EXO uses 1e-3)")
    if "robust" in t.loss_names and not 0.0 <= eps < 0.5:
        fail("train.label_smoothing", f"is {eps}; robust DPO's flip rate ε must be in [0, 0.5)")
    if t.beta <= 0:  # stricter than BOUNDS' train.beta ≥ 0, which an online-RL KL coefficient of 0 needs
        fail("train.beta", f"is {t.beta}; β scales the implicit reward and must be positive")
    if d.format == "unpaired" and d.label_flip:
        fail("data.label_flip", "flips swap a pair's chosen and rejected; unpaired rows have no pair to flip")
    if d.pairs.startswith("prepared:") and not cfg.eval.gold_reward:
        fail("eval.gold_reward", "synthetic pairs need the gold reward to score samples (e.g. digit_match)")
    if cfg.eval.gold_reward:
        from repro.data.preference_synthetic import GOLD_REWARDS

        if cfg.eval.gold_reward not in GOLD_REWARDS:
            fail("eval.gold_reward", unknown_name_message("gold reward", cfg.eval.gold_reward, GOLD_REWARDS.names()))
    if cfg.eval.judged_benchmarks:
        from repro.eval.judge import get_judged_benchmark

        if not cfg.eval.judge:
            fail("eval.judge", "judged_benchmarks need a judge, e.g. {kind: reward_model, path: <RM dir or hub id>}")
        for name, overrides in cfg.eval.judged_benchmarks.items():
            get_judged_benchmark(name).resolve(overrides or {}, f"{where}: eval.judged_benchmarks.{name}")
    if cfg.eval.judge:
        from repro.eval.judge import JUDGES

        kind = cfg.eval.judge.get("kind")
        if kind not in JUDGES:
            fail("eval.judge.kind", unknown_name_message("judge", str(kind), JUDGES.names()))
    if cfg.eval.benchmarks:
        from repro.config import EvalConfig, _check_benchmarks

        _check_benchmarks(
            EvalConfig(benchmarks=cfg.eval.benchmarks, data_dir=cfg.eval.data_dir, backend=cfg.eval.backend), where
        )
