"""Rollout–trainer mismatch correction (TIS / MIS): weight each token's loss by ρ = π_old / π_rollout.

An inference engine samples from a slightly different distribution than the trainer computes
(other kernels, precision, quantisation). With Δ_t = M_t · (ℓ^old_t − ℓ^rollout_t) (log-probs of the
sampled tokens under the trainer's pre-update policy and under the sampler):

    token_truncate     ρ_t = clip(e^{Δ_t}, C_min, C_max)                       (TIS, Yao et al. 2025)
    token_mask         ρ_t = e^{Δ_t} · 1[C_min ≤ e^{Δ_t} ≤ C_max]              (MIS, token level)
    sequence_truncate  ρ_i = clip(exp Σ_t Δ_t, C_min, C_max)                    (product of token ratios)
    sequence_mask      ρ_i = exp(Σ_t Δ_t) · 1[C_min ≤ exp Σ_t Δ_t ≤ C_max]

ρ carries no gradient; the per-token loss is multiplied by it before the KL term is added (TRL 1.16
`GRPOTrainer`, vllm_importance_sampling_mode; reference/trl_losses.md §1.6). C_min None: no lower bound.
A masked-out ρ is exactly 0, also where e^{Δ} overflows to inf (inf·0 would be NaN); a truncated one is C_max.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from repro.registry import Registry

# (ℓ_old [B, T], ℓ_rollout [B, T], mask [B, T], C_min, C_max) -> ρ [B, T] or [B, 1]
CorrectionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float | None, float], torch.Tensor]
ROLLOUT_CORRECTIONS: Registry[CorrectionFn] = Registry("rollout correction")


def _log_delta(old_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    delta = (old_logp - rollout_logp) * mask  # [B, T]; padding contributes 0
    return torch.nan_to_num(delta, nan=0.0).detach()


def _in_range(ratio: torch.Tensor, c_min: float | None, c_max: float) -> torch.Tensor:
    low = ratio >= c_min if c_min is not None else torch.ones_like(ratio, dtype=torch.bool)
    return low & (ratio <= c_max)


def _masked_ratio(ratio: torch.Tensor, c_min: float | None, c_max: float) -> torch.Tensor:
    """ρ·1[C_min ≤ ρ ≤ C_max], selected rather than multiplied: an overflowed ρ = inf is out of range and gives 0,
    not inf·0 = NaN (a long sequence's Σ_t Δ_t of ~90 already overflows float32)."""
    return torch.where(_in_range(ratio, c_min, c_max), ratio, torch.zeros_like(ratio))


@ROLLOUT_CORRECTIONS.register("none")
def no_correction(old_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor,
                  c_min: float | None, c_max: float) -> torch.Tensor:  # fmt: skip
    return torch.ones_like(old_logp[:, :1])  # [B, 1]


@ROLLOUT_CORRECTIONS.register("token_truncate")
def token_truncate(old_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor,
                   c_min: float | None, c_max: float) -> torch.Tensor:  # fmt: skip
    return torch.exp(_log_delta(old_logp, rollout_logp, mask)).clamp(min=c_min, max=c_max)  # [B, T]


@ROLLOUT_CORRECTIONS.register("token_mask")
def token_mask(old_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor,
               c_min: float | None, c_max: float) -> torch.Tensor:  # fmt: skip
    ratio = torch.exp(_log_delta(old_logp, rollout_logp, mask))  # [B, T]
    return _masked_ratio(ratio, c_min, c_max)


@ROLLOUT_CORRECTIONS.register("sequence_truncate")
def sequence_truncate(old_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor,
                      c_min: float | None, c_max: float) -> torch.Tensor:  # fmt: skip
    log_ratio = _log_delta(old_logp, rollout_logp, mask).sum(dim=-1, keepdim=True)  # [B, 1]
    return torch.exp(log_ratio).clamp(min=c_min, max=c_max)


@ROLLOUT_CORRECTIONS.register("sequence_mask")
def sequence_mask(old_logp: torch.Tensor, rollout_logp: torch.Tensor, mask: torch.Tensor,
                  c_min: float | None, c_max: float) -> torch.Tensor:  # fmt: skip
    ratio = torch.exp(_log_delta(old_logp, rollout_logp, mask).sum(dim=-1, keepdim=True))  # [B, 1]
    return _masked_ratio(ratio, c_min, c_max)
