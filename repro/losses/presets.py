"""Presets name combinations of loss axes. A preset fills the axes a config leaves unset.

TRL's single `loss_type` string mixes orthogonal choices; here each choice is its own axis and
`loss_type` only names a combination. Explicit axis values in a config always win over the preset.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.registry import Registry


@dataclass(frozen=True)
class LossAxes:
    advantage_estimator: str
    scale_rewards: str  # std scope: group | batch | none
    importance_sampling_level: str  # token | sequence | sequence_token
    surrogate: str  # ppo_clip | cispo
    aggregation: str  # sequence_mean | batch_token_mean | global_token_mean | constant_length
    kl_estimator: str  # k1 | k3 (used only when beta > 0)


AXIS_NAMES = tuple(LossAxes.__dataclass_fields__)

PRESETS: Registry[LossAxes] = Registry("loss_type preset")

_GRPO = dict(
    advantage_estimator="group",
    scale_rewards="group",
    importance_sampling_level="token",
    surrogate="ppo_clip",
    aggregation="sequence_mean",
    kl_estimator="k3",
)

# GRPO, arXiv 2402.03300: per-sequence token mean, group z-score.
PRESETS.add("grpo", LossAxes(**_GRPO))
# BNPO: token mean over the micro-batch (TRL loss_type="bnpo").
PRESETS.add("bnpo", LossAxes(**{**_GRPO, "aggregation": "batch_token_mean"}))
# Dr. GRPO, arXiv 2503.20783 §3.1: no length normaliser (constant L_max), no std scaling.
# TRL's loss_type="dr_grpo" changes only the aggregation; the paper also drops the std (scale_rewards="none").
PRESETS.add("dr_grpo", LossAxes(**{**_GRPO, "scale_rewards": "none", "aggregation": "constant_length"}))
# DAPO, arXiv 2503.14476 §3.3: token-level loss over the whole batch.
PRESETS.add("dapo", LossAxes(**{**_GRPO, "aggregation": "global_token_mean"}))
# CISPO, MiniMax-M1 arXiv 2506.13585 / ScaleRL arXiv 2510.13786: truncated-IS weighted REINFORCE, token-level.
PRESETS.add("cispo", LossAxes(**{**_GRPO, "surrogate": "cispo", "aggregation": "global_token_mean"}))
# GSPO, arXiv 2507.18071: sequence-level geometric-mean ratio, per-sequence mean (TRL: grpo + sequence level).
PRESETS.add("gspo", LossAxes(**{**_GRPO, "importance_sampling_level": "sequence"}))
# GSPO-token, arXiv 2507.18071 §4.3 Eq. 13: the sequence ratio's value with per-token gradients (token advantages).
PRESETS.add("gspo_token", LossAxes(**{**_GRPO, "importance_sampling_level": "sequence_token"}))

# RLOO (Ahmadian et al. 2024, arXiv 2402.14740; TRL 1.16 RLOOTrainer): leave-one-out baseline, no std, a
# sequence-level PPO clip on the full product ratio, mean over sequences. Its KL is a reward penalty
# (train.kl_in_reward), not a loss term.
PRESETS.add(
    "rloo",
    LossAxes(
        **{
            **_GRPO,
            "advantage_estimator": "leave_one_out",
            "scale_rewards": "none",
            "importance_sampling_level": "sequence_sum",
            "kl_estimator": "k1",
        }
    ),  # fmt: skip
)


# Vanilla REINFORCE (RLOO paper §3.1, "Vanilla PG"): RLOO's loss with no baseline; the variance control.
PRESETS.add("reinforce", LossAxes(**{**PRESETS.get("rloo").__dict__, "advantage_estimator": "reward"}))


def expand_preset(loss_type: str, explicit: dict[str, str | None]) -> LossAxes:
    """The preset's axes, overridden by every explicit (non-None) axis value."""
    preset = PRESETS.get(loss_type)
    chosen = {name: explicit.get(name) or getattr(preset, name) for name in AXIS_NAMES}
    return LossAxes(**chosen)
