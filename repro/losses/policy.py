"""The clipped policy-gradient loss composed from its axes (one micro-batch).

L = aggregate( ρ · surrogate(log w(ℓ, ℓ_old), Â, ℓ) + β · KL(ℓ, ℓ_ref) )

ρ is the rollout–trainer mismatch correction (repro/losses/rollout_correction.py; 1 when unused).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from repro.losses.aggregation import AGGREGATORS, AggregationContext
from repro.losses.kl import KL_ESTIMATORS
from repro.losses.presets import LossAxes
from repro.losses.ratio import RATIO_LEVELS
from repro.losses.surrogates import SURROGATES, SurrogateInputs, clip_fractions


@dataclass(frozen=True)
class PolicyLossSpec:
    axes: LossAxes
    epsilon_low: float
    epsilon_high: float
    delta: float | None = None
    beta: float = 0.0
    use_bias_correction_kl: bool = True


@dataclass(frozen=True)
class RowShare:
    """Data parallel: this process holds rows [start, start + B) of a micro-batch whose loss mask is `mask` [M, T].
    The loss is then this process's additive part of the whole micro-batch's loss: its per-token terms sit in an
    [M, ·] tensor of zeros and are aggregated with the whole micro-batch's mask, which is exact for every aggregator
    (each is linear in the per-token terms, with a normaliser read from the mask or its shape)."""

    start: int
    mask: torch.Tensor


@dataclass(frozen=True)
class PolicyLossOutput:
    loss: torch.Tensor  # scalar, already divided for gradient accumulation
    metrics: dict[str, float]


def policy_loss(
    spec: PolicyLossSpec,
    logp: torch.Tensor,  # [B, T] current policy, temperature-scaled, with grad
    mask: torch.Tensor,  # [B, T] completion tokens that count (float)
    advantages: torch.Tensor,  # [B]
    ctx: AggregationContext,
    old_logp: torch.Tensor | None = None,  # [B, T]; None = on-policy (ℓ_old = sg(ℓ))
    ref_logp: torch.Tensor | None = None,  # [B, T]; needed when β ≠ 0
    rollout_weight: torch.Tensor | None = None,  # ρ, [B, T] or [B, 1], no grad; None = 1
    share: RowShare | None = None,  # data parallel: these B rows are part of a larger micro-batch
) -> PolicyLossOutput:
    axes = spec.axes
    old = logp.detach() if old_logp is None else old_logp
    log_w = RATIO_LEVELS.get(axes.importance_sampling_level)(logp, old, mask)  # [B, T] or [B, 1]
    adv = advantages.unsqueeze(-1)  # [B, 1]
    x = SurrogateInputs(log_w, adv, logp, spec.epsilon_low, spec.epsilon_high, spec.delta)
    per_token = SURROGATES.get(axes.surrogate)(x)  # [B, T] or [B, 1]
    metrics = clip_fractions(log_w, adv, mask, spec.epsilon_low, spec.epsilon_high, axes.surrogate)
    if rollout_weight is not None:
        per_token = per_token * rollout_weight.detach()  # before the KL term, which is not reweighted (TRL order)
    if spec.beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta ≠ 0 needs reference log-probs (ref_logp)")
        kl = KL_ESTIMATORS.get(axes.kl_estimator)(logp, ref_logp)  # [B, T]
        if spec.use_bias_correction_kl:
            kl = kl * torch.exp(log_w)  # importance-weighted KL, as TRL's use_bias_correction_kl
        per_token = per_token + spec.beta * kl
        metrics["kl"] = float((kl.detach() * mask).sum() / mask.sum().clamp(min=1.0))
    if share is not None:
        M = share.mask.size(0)
        per_token = torch.nn.functional.pad(per_token, (0, 0, share.start, M - share.start - per_token.size(0)))
        mask = share.mask  # [M, T]; per_token is [M, T] or [M, 1], zero outside this process's rows
    loss = AGGREGATORS.get(axes.aggregation)(per_token, mask, ctx)
    return PolicyLossOutput(loss=loss, metrics=metrics)
