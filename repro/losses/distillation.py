"""Distillation losses: pure functions of student and teacher logits over a completion mask.

The generalised Jensen–Shannon divergence of GKD (Agarwal et al., arXiv 2306.13649, Eq. 1), as TRL 1.16's
`GKDTrainer.generalized_jsd_loss` and GOLD's same-tokenizer path compute it (../shared/reference/trl_losses.md
§3.6, §3.8), with P_s = softmax(z_s/τ), P_t = softmax(z_t/τ) and M = β·P_t + (1 − β)·P_s:

    β = 0:       KL(P_t ‖ P_s)                        forward KL (mode-covering)
    β = 1:       KL(P_s ‖ P_t)                        reverse KL (mode-seeking; on-policy distillation)
    0 < β < 1:   β·KL(P_t ‖ M) + (1 − β)·KL(P_s ‖ M)

The endpoints are special-cased exactly as TRL does, so the divergence is discontinuous there: as β → 0 the
mixture M → P_s and the value → 0, but at β = 0 it is the full forward KL (likewise β → 1 vs β = 1).
Reduction (TRL's): the sum over vocabulary and valid positions divided by `num_items` when given (the token
count of the whole optimizer step, which makes gradient accumulation exact), else by the number of valid
positions (at least 1).

`sft` is the plain baseline: the negative log-likelihood of the completion tokens under the student, with the
same reduction (SFT on teacher samples when the completions come from the teacher).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from repro.registry import Registry


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per position, summed over the vocabulary: Σ_v p_v (log p_v − log q_v). [..., V] -> [...]"""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def token_divergence(
    student_logits: torch.Tensor,  # [B, T, V]
    teacher_logits: torch.Tensor,  # [B, T, V]
    beta: float,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The generalised JSD_β at every position, summed over the vocabulary: [B, T]."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    log_ps = torch.log_softmax(student_logits.float() / temperature, dim=-1)  # [B, T, V] log P_s
    log_pt = torch.log_softmax(teacher_logits.float() / temperature, dim=-1)  # [B, T, V] log P_t
    if beta == 0.0:
        return _kl(log_pt, log_ps)  # [B, T] forward KL(P_t ‖ P_s)
    if beta == 1.0:
        return _kl(log_ps, log_pt)  # [B, T] reverse KL(P_s ‖ P_t)
    log_m = torch.logsumexp(
        torch.stack([log_ps + math.log1p(-beta), log_pt + math.log(beta)]), dim=0
    )  # [B, T, V] log M, M = β·P_t + (1 − β)·P_s
    return beta * _kl(log_pt, log_m) + (1.0 - beta) * _kl(log_ps, log_m)  # [B, T]


def masked_reduce(values: torch.Tensor, mask: torch.Tensor, num_items: float | None = None) -> torch.Tensor:
    """Σ over valid positions / num_items (or / the valid count, at least 1). values, mask: [B, T]."""
    total = (values * mask.to(values.dtype)).sum()
    denominator = num_items if num_items is not None else mask.sum().clamp_min(1).to(values.dtype)
    return total / denominator


def generalized_jsd(
    student_logits: torch.Tensor,  # [B, T, V]
    teacher_logits: torch.Tensor,  # [B, T, V]
    mask: torch.Tensor,  # [B, T] 1 where the position is a completion token (TRL: labels != -100)
    beta: float,
    temperature: float = 1.0,
    num_items: float | None = None,
) -> torch.Tensor:
    """GKD's loss: JSD_β summed over vocabulary and valid positions, over `num_items` or the valid count."""
    return masked_reduce(token_divergence(student_logits, teacher_logits, beta, temperature), mask, num_items)


def token_nll(student_logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """−log P_s(y_t) at every position: [B, T] (labels [B, T] are the tokens the logits predict)."""
    log_ps = torch.log_softmax(student_logits.float() / temperature, dim=-1)  # [B, T, V]
    return -log_ps.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # [B, T]


@dataclass(frozen=True)
class DistillationParams:
    beta: float  # β of the generalised JSD
    temperature: float = 1.0  # τ in the loss (GKD: 1; GOLD / the stable DistillationTrainer: the sampling τ)


@dataclass(frozen=True)
class DistillationLoss:
    # (student logits [B,T,V], teacher logits [B,T,V] or None, completion ids [B,T], mask [B,T], params,
    #  num_items) -> scalar loss
    fn: Callable[..., torch.Tensor]
    needs_teacher_logits: bool  # False: the teacher only samples (SFT on its samples), no teacher forward


DISTILLATION_LOSSES: Registry[DistillationLoss] = Registry("distillation loss_type")


def _jsd(student_logits, teacher_logits, labels, mask, params: DistillationParams, num_items=None) -> torch.Tensor:
    return generalized_jsd(student_logits, teacher_logits, mask, params.beta, params.temperature, num_items)


def _sft(student_logits, teacher_logits, labels, mask, params: DistillationParams, num_items=None) -> torch.Tensor:
    return masked_reduce(token_nll(student_logits, labels), mask, num_items)  # T = 1: plain NLL


DISTILLATION_LOSSES.add("jsd", DistillationLoss(_jsd, needs_teacher_logits=True))
DISTILLATION_LOSSES.add("sft", DistillationLoss(_sft, needs_teacher_logits=False))
