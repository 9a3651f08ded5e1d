"""Split-half estimate of the policy-gradient variance at equal samples (RLOO, arXiv 2402.14740 §3).

The groups of one generation are split at random into two halves A and B of equal size. Each half
gives an independent estimate g_A, g_B of the same expected gradient (same parameters, same loss,
half the samples each), so

    E‖g_A − g_B‖² / 2 = tr Cov(ĝ_half)

is an unbiased estimate of the total variance of a half-batch gradient estimator. Comparing it
between two advantage estimators (RLOO's leave-one-out baseline vs vanilla REINFORCE) on the same
number of samples measures the variance reduction the paper argues for, without any reference to a
"true" gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def split_halves(n_groups: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint random sets of floor(n_groups / 2) group indices each (an odd group out is dropped)."""
    if n_groups < 2:
        raise ValueError(f"the split-half variance needs at least 2 groups per generation, got {n_groups}")
    order = torch.randperm(n_groups, generator=generator)  # [n_groups]
    half = n_groups // 2
    return order[:half], order[half : 2 * half]


def flat_grad(model: torch.nn.Module) -> torch.Tensor:
    """Every parameter's .grad concatenated (zeros where a parameter got none)."""
    parts = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
        for p in model.parameters()
        if p.requires_grad
    ]
    return torch.cat(parts)  # [n_params]


def split_half_variance(
    model: torch.nn.Module,
    n_groups: int,
    G: int,
    half_loss: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator,
) -> dict[str, float]:
    """tr Cov of a half-batch gradient estimate, from one split of the generation's groups.

    `half_loss(rows)` returns the loss over the given rows (normalised as that half's own batch). The
    model's .grad must be empty on entry and is left empty on exit.
    """
    grads = []
    for groups in split_halves(n_groups, generator):
        rows = (groups.unsqueeze(1) * G + torch.arange(G)).reshape(-1)  # [half·G] row ids, whole groups
        model.zero_grad(set_to_none=True)
        half_loss(rows).backward()
        grads.append(flat_grad(model))
    model.zero_grad(set_to_none=True)
    g_a, g_b = grads  # [n_params] each
    mean_sq_norm = float(((g_a + g_b) / 2).pow(2).sum())
    return {
        "grad_var": float((g_a - g_b).pow(2).sum() / 2),  # ≈ tr Cov(ĝ_half)
        "grad_mean_sq_norm": mean_sq_norm,  # ‖(g_A + g_B)/2‖², for a signal-to-noise reading
    }
