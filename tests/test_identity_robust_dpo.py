"""Properties of rDPO's loss behind papers/robust_dpo's claims (issue 24), checked here rather than read off runs.

- Unbiasedness (arXiv 2403.00409 §4): averaged over labels flipped with probability ε, the rDPO loss and its
  gradient equal the clean DPO loss and gradient. This is the mechanism the paper's claims rest on; it fails for a
  loss that merely rescales or label-smooths DPO (cDPO), which is what a trainer would silently run if ε were
  applied wrongly.
- The smoke tier's `no_mechanism_test`: at z = βΔ ≈ 0 (β = 0.01, margins of a few nats) rDPO's gradient is a
  constant 5/3 times DPO's for ε = 0.2, which Adam's normalisation removes; only at z = O(1) does the ratio move.
"""

from __future__ import annotations

import pytest
import torch

from repro.losses.preference import PREFERENCE_LOSSES, PreferenceLogps, PreferenceParams


def _loss_and_grad(name: str, margins: torch.Tensor, beta: float, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair loss and d loss / d Δ for pairs with log-ratio margin Δ = `margins` (ρ_r = 0)."""
    delta = margins.clone().requires_grad_(True)
    zeros = torch.zeros_like(margins)
    ones = torch.ones_like(margins)
    x = PreferenceLogps(delta, zeros, zeros.clone(), zeros.clone(), ones, ones)
    losses = PREFERENCE_LOSSES.get(name).fn(x, PreferenceParams(beta=beta, label_smoothing=eps)).losses
    losses.sum().backward()
    return losses.detach(), delta.grad


@pytest.mark.parametrize("eps", [0.1, 0.2, 0.4])
@pytest.mark.parametrize("beta", [0.01, 1.0])
def test_rdpo_is_unbiased_under_flips(eps: float, beta: float):
    margins = torch.linspace(-300.0, 300.0, 61, dtype=torch.float64) * (0.01 / beta)  # z = βΔ from −3 to 3
    kept, g_kept = _loss_and_grad("robust", margins, beta, eps)  # label as given
    flipped, g_flipped = _loss_and_grad("robust", -margins, beta, eps)  # label swapped: the margin changes sign
    clean, g_clean = _loss_and_grad("sigmoid", margins, beta, 0.0)
    torch.testing.assert_close((1 - eps) * kept + eps * flipped, clean)
    # d/dΔ of the flipped pair's loss is −(its gradient in its own margin −Δ)
    torch.testing.assert_close((1 - eps) * g_kept - eps * g_flipped, g_clean)


def test_rdpo_gradient_is_a_constant_multiple_of_dpos_only_near_zero():
    beta, eps = 0.01, 0.2  # papers/robust_dpo: the TRL seed's β, rdpo_noisy's ε
    ratio_at_zero = 1 / (1 - 2 * eps)  # σ(0) weights: [(1−ε)·½ + ε·½]/(1−2ε) ÷ ½ = 5/3
    small = torch.linspace(-1.0, 1.0, 21, dtype=torch.float64)  # Δ within ±1 nat: z within ±0.01, the smoke regime
    _, g_r = _loss_and_grad("robust", small, beta, eps)
    _, g_d = _loss_and_grad("sigmoid", small, beta, 0.0)
    torch.testing.assert_close(g_r / g_d, torch.full_like(small, ratio_at_zero), rtol=3e-3, atol=0)
    large = torch.tensor([100.0, 200.0], dtype=torch.float64)  # z = 1, 2
    _, g_r = _loss_and_grad("robust", large, beta, eps)
    _, g_d = _loss_and_grad("sigmoid", large, beta, 0.0)
    expected = ratio_at_zero * (1 - eps + eps * torch.exp(beta * large))  # σ(z)/σ(−z) = e^z
    torch.testing.assert_close(g_r / g_d, expected)
    assert (g_r / g_d > 1.3 * ratio_at_zero).all()  # the re-weighting rDPO relies on, absent at z ≈ 0
