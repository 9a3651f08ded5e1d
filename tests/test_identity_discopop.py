"""DiscoPOP / LRML (arXiv 2406.08414 §6.1): the loss-shape facts that used to be the claim
`discopop/lrml_pushes_margin_negative_first`. They follow from the loss's definition, so they are pinned here on the
GRADIENT (a value check would not see a wrong gate temperature or a swapped mix), not tested over training runs.

ℓ(z) = (1 − σ(z/τ))·log(1 + e^{−z}) + σ(z/τ)·e^{−z}, z = β(ρ_c − ρ_r). At π_θ = π_ref (z = 0):
dℓ/dz = (1 − log 2)/(4τ) − 3/4 = +0.784 at τ = 0.05 (DPO's: −1/2), so a descent step LOWERS the margin; the slope is
negative again on both sides (a local minimum left of 0, a barrier right of it: the paper's "non-convex segment and
negative gradients at the starting point ρ = 0").
"""

from __future__ import annotations

import math

import pytest
import torch

from repro.losses.preference import PREFERENCE_LOSSES, PreferenceLogps, PreferenceParams

BETA, TAU = 0.05, 0.05  # the paper's recipe (and papers/discopop's configs)


def margin_slope(name: str, z: float, beta: float = BETA, tau: float = TAU) -> tuple[float, float]:
    """(∂ℓ/∂log π(y_c), ∂ℓ/∂log π(y_r)) of one pair whose margin is z = β(ρ_c − ρ_r), ρ_r = 0."""
    ref_c, ref_r = torch.tensor([-6.0], dtype=torch.float64), torch.tensor([-7.0], dtype=torch.float64)
    chosen = (ref_c + z / beta).requires_grad_(True)
    rejected = ref_r.clone().requires_grad_(True)
    lengths = torch.tensor([4.0], dtype=torch.float64)
    x = PreferenceLogps(chosen, rejected, ref_c, ref_r, lengths, lengths)
    PREFERENCE_LOSSES.get(name).fn(x, PreferenceParams(beta=beta, discopop_tau=tau)).losses.sum().backward()
    return float(chosen.grad), float(rejected.grad)


def test_lrml_slope_at_the_reference_lowers_the_margin():
    gc, gr = margin_slope("discopop", 0.0)
    expected = BETA * ((1 - math.log(2)) / (4 * TAU) - 0.75)  # β·dℓ/dz at z = 0
    assert gc == pytest.approx(expected, rel=1e-9) and expected > 0  # descent lowers log π(y_c) ...
    assert gr == pytest.approx(-expected, rel=1e-9)  # ... and raises log π(y_r)
    dc, dr = margin_slope("sigmoid", 0.0)  # DPO at the same point: the other way, −β/2
    assert dc == pytest.approx(-BETA / 2) and dr == pytest.approx(BETA / 2)


def test_lrml_is_non_convex_around_the_reference():
    # slope − , + , − : a local minimum at some z < 0 and a barrier at some z > 0 (where the exponential takes over)
    left, _ = margin_slope("discopop", -0.5)
    mid, _ = margin_slope("discopop", 0.0)
    right, _ = margin_slope("discopop", 0.5)
    assert left < 0 < mid and right < 0


def test_lrml_gate_temperature_matters():
    # with a wide gate (τ = 1) the slope at 0 is DPO-like (negative): the sign above comes from τ = 0.05
    gc, _ = margin_slope("discopop", 0.0, tau=1.0)
    assert gc < 0
