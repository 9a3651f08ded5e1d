"""Loss edge cases (issue 25 item 5): overflowing rollout-correction ratios, NaN rewards under RLOO's
leave-one-out baseline, and RLOO's in-reward KL of a completion masked out as truncated.

Expected numbers are written as arithmetic on small tensors, so each can be checked by hand.
"""

from __future__ import annotations

import math

import pytest
import torch

from repro.config import TrainConfig
from repro.losses.advantages import ADVANTAGES, STD_EPS
from repro.losses.rollout_correction import ROLLOUT_CORRECTIONS
from repro.rollout.base import RolloutBatch
from repro.trainers.online_rl import kl_shaped_rewards, loss_mask

NAN = float("nan")


def assert_values(actual: torch.Tensor, expected: list[float] | list[list[float]]) -> None:
    torch.testing.assert_close(
        actual.detach().double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6
    )


# ----------------------------------------------------------------------------------------------------------------
# Rollout correction: a ratio that overflows float32
# ----------------------------------------------------------------------------------------------------------------

C_MAX = 3.0


def overflowing_sequences() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row 0: ℓ^old 0, ℓ^rollout −16 over 6 tokens, Σ_t Δ_t = 96 and e^96 = inf in float32.
    Row 1: Δ_t = 0.1 per token, Σ = 0.6, e^0.6 ≈ 1.82 within [C_min, C_max]."""
    old = torch.zeros(2, 6)  # [B, T]
    rollout = torch.stack([torch.full((6,), -16.0), torch.full((6,), -0.1)])  # [B, T]
    return old, rollout, torch.ones(2, 6)


def test_overflowing_log_ratio_is_inf_in_float32() -> None:
    old, rollout, _ = overflowing_sequences()
    assert torch.isinf(torch.exp((old - rollout).sum(dim=-1))[0])  # the premise of the tests below


@pytest.mark.parametrize("c_min", [None, 0.5])
def test_sequence_mask_zeroes_an_overflowing_ratio(c_min: float | None) -> None:
    old, rollout, mask = overflowing_sequences()
    rho = ROLLOUT_CORRECTIONS.get("sequence_mask")(old, rollout, mask, c_min, C_MAX)  # [2, 1]
    assert not rho.isnan().any()
    assert rho[0, 0].item() == 0.0  # exactly 0 (inf·0 gave NaN), as TRL masks it
    assert_values(rho[1], [math.exp(0.6)])  # an in-range ratio is kept


@pytest.mark.parametrize("c_min", [None, 0.5])
def test_token_mask_zeroes_an_overflowing_ratio(c_min: float | None) -> None:
    old = torch.zeros(1, 4)
    # Δ_t = 100 (e^100 = inf), 0.5 (in range), 2 (e^2 ≈ 7.4 > C_max), 0 on a padding position
    rollout = torch.tensor([[-100.0, -0.5, -2.0, -50.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    rho = ROLLOUT_CORRECTIONS.get("token_mask")(old, rollout, mask, c_min, C_MAX)  # [1, 4]
    assert not rho.isnan().any()
    assert_values(rho, [[0.0, math.exp(0.5), 0.0, 1.0]])  # padding: Δ = 0, ρ = 1 (the loss mask drops it)


def test_truncate_modes_clamp_an_overflowing_ratio_to_c_max() -> None:
    old, rollout, mask = overflowing_sequences()
    seq = ROLLOUT_CORRECTIONS.get("sequence_truncate")(old, rollout, mask, None, C_MAX)  # [2, 1]
    assert_values(seq, [[C_MAX], [math.exp(0.6)]])
    token = ROLLOUT_CORRECTIONS.get("token_truncate")(torch.zeros(1, 2), torch.tensor([[-100.0, -0.5]]),
                                                       torch.ones(1, 2), 0.5, C_MAX)  # fmt: skip
    assert_values(token, [[C_MAX, math.exp(0.5)]])  # e^100 = inf clamps to C_max


# ----------------------------------------------------------------------------------------------------------------
# RLOO leave-one-out baseline with NaN (unscorable) rewards
# ----------------------------------------------------------------------------------------------------------------


def loo_by_formula(rewards: torch.Tensor, G: int) -> list[float]:
    """A_i = r_i − mean_{j≠i} r_j, written out per completion."""
    out = []
    for g in range(rewards.numel() // G):
        group = rewards[g * G : (g + 1) * G].double().tolist()
        out += [group[i] - sum(group[:i] + group[i + 1 :]) / (G - 1) for i in range(G)]
    return out


def test_leave_one_out_without_nan_is_the_formula() -> None:
    torch.manual_seed(0)
    r = torch.randn(12)  # 3 groups of 4
    adv = loo_by_formula(r, 4)
    loo = ADVANTAGES.get("leave_one_out")
    assert_values(loo(r, 4, "none"), adv)
    stds = r.view(3, 4).double().std(dim=1)  # the group's reward std (unbiased)
    assert_values(loo(r, 4, "group"), [a / (float(stds[i // 4]) + STD_EPS) for i, a in enumerate(adv)])
    a = torch.tensor(adv, dtype=torch.float64)
    assert_values(loo(r, 4, "batch"), ((a - a.mean()) / (a.std() + STD_EPS)).tolist())


# Group 0: one NaN; scorable {1, 0, 2}, n = 3: Â = 1 − (0+2)/2 = 0, 0 − (1+2)/2 = −1.5, 2 − (1+0)/2 = 1.5.
# Group 1: one scorable reward (5): no others to form a baseline, Â = 0. Group 2: all NaN, Â = 0.
NAN_REWARDS = torch.tensor([1.0, NAN, 0.0, 2.0, NAN, NAN, 5.0, NAN, NAN, NAN, NAN, NAN])
NAN_LOO = [0.0, 0.0, -1.5, 1.5] + [0.0] * 8


def test_leave_one_out_treats_nan_rewards_as_absent() -> None:
    adv = ADVANTAGES.get("leave_one_out")(NAN_REWARDS, 4, "none")
    assert not adv.isnan().any()
    assert_values(adv, NAN_LOO)


def test_leave_one_out_with_nan_matches_the_group_estimator_scaled() -> None:
    """With n scorable rewards, r_i − mean_{j≠i} r_j = n/(n−1)·(r_i − mean r): group 0's centred rewards
    from `group_normalised` (which skips NaNs) times 3/2; both give 0 to NaN rows and to a lone reward."""
    centred = ADVANTAGES.get("group")(NAN_REWARDS, 4, "none")
    loo = ADVANTAGES.get("leave_one_out")(NAN_REWARDS, 4, "none")
    assert_values(loo[:4], (1.5 * centred[:4]).tolist())
    assert_values(loo[4:], centred[4:].tolist())


def test_leave_one_out_std_scopes_skip_nan_rewards() -> None:
    loo = ADVANTAGES.get("leave_one_out")
    # group: group 0's scorable rewards {1, 0, 2} have unbiased std 1
    assert_values(loo(NAN_REWARDS, 4, "group"), [a / (1 + STD_EPS) for a in NAN_LOO])
    # batch: only the defined advantages {0, −1.5, 1.5} (mean 0, unbiased std sqrt(4.5/2) = 1.5) are z-scored
    assert_values(loo(NAN_REWARDS, 4, "batch"), [a / (1.5 + STD_EPS) for a in NAN_LOO])


# ----------------------------------------------------------------------------------------------------------------
# RLOO in-reward KL and train.mask_truncated_completions
# ----------------------------------------------------------------------------------------------------------------


def kl_batch() -> RolloutBatch:
    """Row 0 is truncated (no EOS, every position in the completion mask); row 1 ended, its last position is padding."""
    completion_mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # [N, T]
    return RolloutBatch(
        prompt_ids=torch.ones(2, 1, dtype=torch.long),
        prompt_mask=torch.ones(2, 1),
        completion_ids=torch.ones(2, 3, dtype=torch.long),
        completion_mask=completion_mask,
        sampler_logprobs=torch.zeros(2, 3),
        truncated=torch.tensor([True, False]),
        completions=["abc", "ab"],
    )


OLD = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, -2.0, -5.0]])  # ℓ^old [N, T]
REF = torch.tensor([[-2.0, -2.0, -2.0], [-2.0, -3.0, -9.0]])  # ℓ^ref [N, T]
# KL_i = Σ_t M_t(ℓ^old − ℓ^ref): row 0 1+1+1 = 3 while it is in M; row 1 1+1 = 2 (its padded 4 never counts)


def rloo_config(mask_truncated: bool) -> TrainConfig:
    return TrainConfig(max_steps=1, learning_rate=1e-6, loss_type="rloo", beta=0.1, kl_in_reward=True,
                       mask_truncated_completions=mask_truncated)  # fmt: skip


def test_in_reward_kl_skips_a_completion_masked_as_truncated() -> None:
    b = kl_batch()
    assert torch.equal(loss_mask(b, True), torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    rewards, penalty = kl_shaped_rewards(rloo_config(True), torch.tensor([1.0, 1.0]), loss_mask(b, True), OLD, REF)
    assert_values(penalty, [0.0, 2.0])  # row 0's tokens are out of the loss mask: no KL either
    assert_values(rewards, [1.0, 1.0 - 0.1 * 2.0])


def test_in_reward_kl_counts_a_truncated_completion_the_loss_keeps() -> None:
    rewards, penalty = kl_shaped_rewards(
        rloo_config(False), torch.tensor([1.0, 1.0]), loss_mask(kl_batch(), False), OLD, REF
    )
    assert_values(penalty, [3.0, 2.0])
    assert_values(rewards, [1.0 - 0.1 * 3.0, 1.0 - 0.1 * 2.0])


def test_in_reward_kl_off_leaves_the_rewards() -> None:
    r = torch.tensor([1.0, 0.0])
    cfg = TrainConfig(max_steps=1, learning_rate=1e-6, beta=0.1)  # kl_in_reward off: β is a loss term
    rewards, penalty = kl_shaped_rewards(cfg, r, loss_mask(kl_batch(), False), OLD, REF)
    assert penalty is None and torch.equal(rewards, r)
    with pytest.raises(ValueError, match="needs a reference model"):
        kl_shaped_rewards(rloo_config(True), r, loss_mask(kl_batch(), True), OLD, None)
