"""Identities behind papers/slic_hf that are not claims (issue 24): DPO's logistic loss is never exactly 0, so its
`frac_zero_loss` is 0 at every step by definition, while SLiC-HF's hinge is exactly 0, with no gradient, at βΔ ≥ 1.

The old claim `sigmoid_never_zero` read this off training runs; it could not fail for a correct loss. Here it can:
a logistic loss written as −log(σ(z)) rounds σ(z) to 1 in float32 from z ≈ 17 on, so its loss and gradient become
exactly 0 for well-fitted pairs and `frac_zero_loss` would count them as if DPO had a margin.
"""

from __future__ import annotations

import pytest
import torch

from repro.losses.preference import PREFERENCE_LOSSES, PreferenceLogps, PreferenceParams


def _pairs(margins: torch.Tensor) -> PreferenceLogps:
    """Pairs whose log-ratio margin Δ = ρ_c − ρ_r is `margins` (ρ_r = 0), every completion one token long."""
    zeros = torch.zeros_like(margins)
    ones = torch.ones_like(margins)
    return PreferenceLogps(margins.clone(), zeros.clone(), zeros.clone(), zeros.clone(), ones, ones)


def _loss_and_grad(name: str, margins: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = _pairs(margins)
    chosen = x.chosen.clone().requires_grad_(True)
    y = PreferenceLogps(chosen, x.rejected, x.ref_chosen, x.ref_rejected, x.chosen_lengths, x.rejected_lengths)
    losses = PREFERENCE_LOSSES.get(name).fn(y, PreferenceParams(beta=beta)).losses
    losses.sum().backward()
    return losses.detach(), chosen.grad


def _frac_zero_loss(losses: torch.Tensor) -> float:
    return float((losses == 0).float().mean())  # as repro/trainers/preference.py logs it


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dpo_loss_and_gradient_are_never_zero(dtype: torch.dtype):
    beta = 1.0  # papers/slic_hf's smoke β; z = βΔ swept far past any margin a run reaches (smoke: |Δ| of a few nats)
    margins = torch.linspace(-20.0, 80.0, 1001, dtype=dtype)
    losses, grad = _loss_and_grad("sigmoid", margins, beta)
    assert (losses > 0).all(), margins[losses <= 0][:5]
    assert (grad < 0).all(), margins[grad >= 0][:5]  # every pair still pulls y_c up
    assert _frac_zero_loss(losses) == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hinge_zeroes_exactly_the_pairs_past_the_margin(dtype: torch.dtype):
    beta = 0.5  # margin δ = 1/β = 2 nats
    margins = torch.linspace(-4.0, 6.0, 41, dtype=dtype)  # steps of 0.25: Δ = 2 (βΔ = 1) is on the grid
    losses, grad = _loss_and_grad("hinge", margins, beta)
    past = beta * margins >= 1
    assert past.any() and (~past).any()
    assert (losses[past] == 0).all() and (grad[past] == 0).all()
    assert (losses[~past] > 0).all() and (grad[~past] == -beta).all()
    assert _frac_zero_loss(losses) == pytest.approx(float(past.float().mean()))
    dpo, _ = _loss_and_grad("sigmoid", margins, beta)
    assert _frac_zero_loss(dpo) == 0.0  # the contrast the old claims measured holds on every batch
