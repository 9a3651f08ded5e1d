"""Keys that mean nothing for the chosen loss or setting are refused, not recorded.

A config that sets `simpo_gamma` beside `loss_type: sigmoid` reads like a SimPO run and trains plain DPO; the
resolved config would record the value and no code would read it. Each rule below names a key, when it takes
effect, and what it belongs to. A key that is set (at any layer, or with --set) to a value other than its default
while its rule says it has no effect is a ConfigError naming the key and the fix. A key spelled out at its default
is harmless (it changes nothing and claims nothing) and passes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from repro.schema import ConfigError


@dataclass(frozen=True)
class Rule:
    key: str  # dotted, e.g. "train.simpo_gamma"
    applies: Callable[[Any], bool]  # (resolved config) -> whether the key takes effect
    belongs_to: str  # what the key is for, e.g. "alphapo's target margin γ"


def _sched(cfg: Any) -> bool:
    return cfg.train.lr_scheduler_type != "constant"


_WARMUP = Rule("train.warmup_steps", _sched, "a warm-up schedule: set lr_scheduler_type: constant_with_warmup")

ONLINE_RL_RULES = (
    _WARMUP,
    Rule("train.delta", lambda c: c.train.surrogate != "cispo", "the PPO-clip surrogate (CISPO caps at epsilon_high)"),
    Rule("train.epsilon", lambda c: c.train.surrogate != "cispo", "the PPO-clip surrogate (CISPO has no low clip)"),
    Rule("train.gfpo_score", lambda c: c.train.gfpo_retain is not None, "GFPO's filter: set train.gfpo_retain"),
    Rule(
        "train.dynamic_sampling_max_tries",
        lambda c: c.train.dynamic_sampling,
        "dynamic sampling: set train.dynamic_sampling: true",
    ),
    Rule(
        "train.rollout_correction_clip_min",
        lambda c: c.train.rollout_correction != "none",
        "the rollout correction: set train.rollout_correction (e.g. token_truncate)",
    ),
    Rule(
        "train.rollout_correction_clip_max",
        lambda c: c.train.rollout_correction != "none",
        "the rollout correction: set train.rollout_correction (e.g. token_truncate)",
    ),
    Rule("train.kl_in_reward", lambda c: c.train.beta > 0, "the KL penalty, which train.beta = 0 switches off"),
    Rule("train.grad_variance_estimators", lambda c: c.train.grad_variance_every > 0, "train.grad_variance_every"),
)

# which preference losses read each coefficient (repro/losses/preference.py)
_SMOOTHED = ("robust", "exo_pair", "aot", "aot_unpaired", "aot_pair", "alphapo", "simpo")
_CPO = ("alphapo", "simpo")


def _losses(cfg: Any) -> tuple[str, ...]:
    loss = cfg.train.loss_type
    return tuple(loss) if isinstance(loss, list | tuple) else (loss,)


def _uses(*names: str) -> Callable[[Any], bool]:
    return lambda cfg: any(name in names for name in _losses(cfg))


PREFERENCE_RULES = (
    _WARMUP,
    Rule("train.label_smoothing", _uses(*_SMOOTHED), f"the losses that smooth labels ({', '.join(_SMOOTHED)})"),
    Rule("train.discopop_tau", _uses("discopop"), "loss_type discopop"),
    Rule("train.alpha", _uses(*_CPO), "AlphaPO's reward shape (loss_type alphapo or simpo)"),
    Rule("train.simpo_gamma", _uses(*_CPO), "the target margin γ of loss_type alphapo / simpo"),
    Rule("train.loss_weights", lambda c: len(_losses(c)) > 1, "a list of loss types (loss_type: [sigmoid, sft])"),
    Rule("train.eval_prompts", lambda c: c.train.eval_every > 0, "the in-training monitor: set train.eval_every"),
    Rule("data.thumbs_up_threshold", lambda c: c.data.format == "unpaired", "unpaired data (data.format: unpaired)"),
    Rule(
        "data.bt_temperature",
        lambda c: c.data.pairs.startswith("prepared:") and c.data.preferences == "bradley_terry",
        "synthetic Bradley-Terry labels (data.pairs: prepared:<name>)",
    ),
)

SFT_RULES = (
    _WARMUP,
    Rule("train.warmup_ratio", _sched, "a warm-up schedule: set lr_scheduler_type: constant_with_warmup"),
    Rule("train.eval_problems", lambda c: c.train.eval_every > 0, "the in-training monitor: set train.eval_every"),
)

DISTILLATION_RULES = (
    _WARMUP,
    Rule("train.beta", lambda c: c.train.loss_type == "jsd", "the generalised JSD (loss_type jsd)"),
    Rule("train.eval_prompts", lambda c: c.train.eval_every > 0, "the in-training monitor: set train.eval_every"),
    Rule("train.eval_samples", lambda c: c.train.eval_every > 0, "the in-training monitor: set train.eval_every"),
)

REWARD_MODEL_RULES = (
    _WARMUP,
    Rule("data.margin_field", lambda c: c.data.margin == "column", "margins read from a column (data.margin: column)"),
)

RULES: dict[str, tuple[Rule, ...]] = {
    "online_rl": ONLINE_RL_RULES,
    "preference": PREFERENCE_RULES,
    "sft": SFT_RULES,
    "distillation": DISTILLATION_RULES,
    "reward_model": REWARD_MODEL_RULES,
}


def check_relevant(raw: dict[str, Any], cfg: Any, kind: str, where: str) -> None:
    """Refuse a key of `raw` (the merged mapping as written) that `cfg` (resolved) would not read."""
    for rule in RULES[kind]:
        section, name = rule.key.split(".")
        given = raw.get(section)
        if not isinstance(given, dict) or given.get(name) is None or rule.applies(cfg):
            continue
        default = _default(getattr(cfg, section), name)
        if given[name] == default or (default is None and given[name] == 0):  # 0 is "off" where None is the default
            continue
        raise ConfigError(
            f"{where}: {rule.key}: is {given[name]!r}, but it has no effect in this config; it is for {rule.belongs_to}."
            " Remove it (a key that is recorded but not used would make the run look like another setting)"
        )


def _default(section: Any, name: str) -> Any:
    for f in dataclasses.fields(section):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return dataclasses.MISSING
