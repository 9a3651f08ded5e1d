"""Per-token supervised losses (TRL 1.16 `SFTTrainer.compute_loss`, `loss_type` nll | dft) and their normaliser.

With p_t = π_θ(y_t | x, y_<t) the probability of the target token:

    nll:  ℓ_t = −log p_t
    dft:  ℓ_t = −sg(p_t) · log p_t      (Dynamic Fine-Tuning, arXiv 2508.05629 §3: the SFT gradient re-weighted
                                         by the token's own probability, which is not differentiated through)

Positions whose label is −100 (the prompt, padding) contribute 0. A micro-batch's loss is Σ_t ℓ_t / N, where N
counts the label tokens of the whole gradient-accumulation window (TRL's `num_items_in_batch`), so the micro-batch
losses of a window add up to its token mean and no further division by GA happens (reference §3.4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from repro.registry import Registry

IGNORE_INDEX = -100

PerTokenLoss = Callable[[torch.Tensor], torch.Tensor]  # log p_t [B, T] -> ℓ_t [B, T]
SFT_LOSSES: Registry[PerTokenLoss] = Registry("sft loss_type")


@SFT_LOSSES.register("nll")
def nll(logps: torch.Tensor) -> torch.Tensor:
    return -logps  # [B, T]


@SFT_LOSSES.register("dft")
def dft(logps: torch.Tensor) -> torch.Tensor:
    return -logps * logps.detach().exp()  # [B, T] −sg(p)·log p


def target_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p_t [B, L−1], mask [B, L−1]) of each next token under logits [B, L, V] and unshifted labels [B, L].

    Position t predicts labels[:, t+1] (the causal shift HF models apply); log-probs are computed in float32 and
    are 0 where the label is ignored.
    """
    shift_logits = logits[:, :-1].float()  # [B, L−1, V]
    shift_labels = labels[:, 1:]  # [B, L−1]
    mask = shift_labels != IGNORE_INDEX  # [B, L−1]
    safe = shift_labels.clamp(min=0)  # [B, L−1] ignored positions gather a dummy id, zeroed below
    logps = shift_logits.log_softmax(-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # [B, L−1]
    return logps * mask, mask


def sft_loss(per_token: torch.Tensor, mask: torch.Tensor, num_items: int | float) -> torch.Tensor:
    """Σ_t ℓ_t · m_t / N with N = `num_items` (the window's label tokens; clamped at 1 as TRL does)."""
    return (per_token * mask).sum() / max(float(num_items), 1.0)
