"""Paired BCO (TRL `bco_pair`) against DPO (`sigmoid`): why `bco/bco_pair_close_to_dpo_pref_acc` was retired as a
claim. ℓ_bco = −logσ(βρ_c) − logσ(−βρ_r) and ℓ_dpo = −logσ(β(ρ_c − ρ_r)) have the SAME gradient at π_θ = π_ref
(−β/2 on log π(y_c), +β/2 on log π(y_r)), and at the smoke tier's β = 0.01 they stay within a few per cent of each
other over the whole range of log-ratios the runs reach, so the two variants follow nearly the same path and a
comparison between them cannot fail. Away from that regime (β·|ρ| of order 1) they differ, which is pinned too, so
this test fails if `bco_pair` were ever an alias of DPO's loss.
"""

from __future__ import annotations

import pytest
import torch

from repro.losses.preference import PREFERENCE_LOSSES, PreferenceLogps, PreferenceParams


def grads(name: str, rho_c: float, rho_r: float, beta: float) -> tuple[float, float]:
    ref_c, ref_r = torch.tensor([-5.0], dtype=torch.float64), torch.tensor([-6.0], dtype=torch.float64)
    chosen = (ref_c + rho_c).requires_grad_(True)
    rejected = (ref_r + rho_r).requires_grad_(True)
    lengths = torch.tensor([4.0], dtype=torch.float64)
    x = PreferenceLogps(chosen, rejected, ref_c, ref_r, lengths, lengths)
    PREFERENCE_LOSSES.get(name).fn(x, PreferenceParams(beta=beta)).losses.sum().backward()
    return float(chosen.grad), float(rejected.grad)


@pytest.mark.parametrize("beta", [0.01, 0.1, 1.0])
def test_same_gradient_at_the_reference(beta):
    assert grads("bco_pair", 0.0, 0.0, beta) == pytest.approx(grads("sigmoid", 0.0, 0.0, beta), rel=1e-12)
    assert grads("bco_pair", 0.0, 0.0, beta) == pytest.approx((-beta / 2, beta / 2), rel=1e-12)


def test_nearly_dpo_at_the_smoke_beta():
    # the smoke runs' held-out log-ratios stay within a few nats (ρ_c ≈ −0.2, ρ_r ≈ −1.6 after 150 steps)
    for rho_c, rho_r in [(-0.2, -1.6), (1.0, -3.0), (-3.0, 1.0)]:
        bc, br = grads("bco_pair", rho_c, rho_r, 0.01)
        dc, dr = grads("sigmoid", rho_c, rho_r, 0.01)
        assert bc == pytest.approx(dc, rel=0.05) and br == pytest.approx(dr, rel=0.05)


def test_differs_from_dpo_when_beta_rho_is_of_order_one():
    bc, br = grads("bco_pair", 2.0, -1.0, 1.0)
    dc, dr = grads("sigmoid", 2.0, -1.0, 1.0)
    assert abs(bc - dc) > 0.05 and abs(br - dr) > 0.05
