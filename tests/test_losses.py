"""Every entry of the loss registries against values worked out by hand on small tensors.

The expected numbers are written as arithmetic (group means, unbiased stds, ratios, clip branches), so a
reader can check each one without running the code under test.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from repro.losses.advantages import ADVANTAGES, STD_EPS, zero_std_groups
from repro.losses.aggregation import AGGREGATORS, AggregationContext
from repro.losses.kl import KL_ESTIMATORS
from repro.losses.policy import PolicyLossSpec, policy_loss
from repro.losses.presets import AXIS_NAMES, PRESETS, LossAxes, expand_preset
from repro.losses.ratio import RATIO_LEVELS
from repro.losses.surrogates import SURROGATES, SurrogateInputs, clip_fractions
from repro.registry import RegistryError

Nested = list[float] | list[list[float]]


def assert_values(actual: torch.Tensor, expected: Nested) -> None:
    torch.testing.assert_close(
        actual.detach().double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6
    )


def ctx(ga: int = 1, spg: int = 1, n_items: float = 1.0, max_len: int = 6, procs: int = 1) -> AggregationContext:
    return AggregationContext(
        grad_accum_steps=ga,
        steps_per_generation=spg,
        num_items_in_batch=n_items,
        max_completion_length=max_len,
        num_processes=procs,
    )


# ----------------------------------------------------------------------------------------------------------------
# Registries list exactly the entries these tests cover
# ----------------------------------------------------------------------------------------------------------------


def test_registries_hold_the_documented_entries() -> None:
    assert ADVANTAGES.names() == ["group", "leave_one_out", "reward"]
    assert RATIO_LEVELS.names() == ["sequence", "sequence_sum", "sequence_token", "token"]
    assert SURROGATES.names() == ["cispo", "ppo_clip"]
    assert AGGREGATORS.names() == ["batch_token_mean", "constant_length", "global_token_mean", "sequence_mean"]
    assert KL_ESTIMATORS.names() == ["k1", "k3"]
    assert PRESETS.names() == [
        "bnpo", "cispo", "dapo", "dr_grpo", "grpo", "gspo", "gspo_token", "reinforce", "rloo"
    ]  # fmt: skip
    from repro.losses.rollout_correction import ROLLOUT_CORRECTIONS

    assert ROLLOUT_CORRECTIONS.names() == ["none", "sequence_mask", "sequence_truncate", "token_mask", "token_truncate"]


# ----------------------------------------------------------------------------------------------------------------
# Advantages
# ----------------------------------------------------------------------------------------------------------------

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])  # G=4: group 0 = [1,0,0,1], group 1 = [1,1,1,1]
SD_G0 = math.sqrt((4 * 0.5**2) / 3)  # group 0: mean 0.5, deviations ±0.5, unbiased var = 1/3
# whole batch: mean 6/8 = 0.75; deviations 0.25 (×6), −0.75 (×2): Σd² = 6·0.0625 + 2·0.5625 = 1.5; var = 1.5/7
SD_BATCH = math.sqrt(1.5 / 7)


def test_group_std_scope_group() -> None:
    a = 0.5 / (SD_G0 + 1e-4)  # ≈ 0.865875
    # group 1 is uniform: (1 − 1)/(0 + 1e-4) = 0
    assert_values(ADVANTAGES.get("group")(REWARDS, 4, "group"), [a, -a, -a, a, 0, 0, 0, 0])
    assert a == pytest.approx(0.865875, abs=1e-6)


def test_group_std_scope_batch_keeps_the_group_mean() -> None:
    a = 0.5 / (SD_BATCH + 1e-4)  # numerator uses the group mean 0.5, not the batch mean 0.75
    assert_values(ADVANTAGES.get("group")(REWARDS, 4, "batch"), [a, -a, -a, a, 0, 0, 0, 0])
    assert SD_BATCH == pytest.approx(0.462910, abs=1e-6)


def test_group_std_scope_none_is_the_centred_reward() -> None:
    assert_values(ADVANTAGES.get("group")(REWARDS, 4, "none"), [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])


def test_group_advantage_on_unequal_groups() -> None:
    r = torch.tensor([3.0, 1.0, 2.0, 0.0, 0.0, 6.0])  # G=3
    # group 0: mean 2, deviations (1, −1, 0), var = 2/2 = 1, std 1
    # group 1: mean 2, deviations (−2, −2, 4), var = (4+4+16)/2 = 12, std = √12
    s1 = math.sqrt(12)
    expected = [
        1 / (1 + STD_EPS),
        -1 / (1 + STD_EPS),
        0.0,
        -2 / (s1 + STD_EPS),
        -2 / (s1 + STD_EPS),
        4 / (s1 + STD_EPS),
    ]
    assert_values(ADVANTAGES.get("group")(r, 3, "group"), expected)
    # batch std over all six: mean 2, Σd² = 1+1+0+4+4+16 = 26, var = 26/5
    sb = math.sqrt(26 / 5)
    assert_values(ADVANTAGES.get("group")(r, 3, "batch"), [d / (sb + STD_EPS) for d in (1, -1, 0, -2, -2, 4)])


def test_leave_one_out_is_reward_minus_mean_of_the_others() -> None:
    # group 0: Â_0 = 1 − (0+0+1)/3 = 2/3, Â_1 = 0 − (1+0+1)/3 = −2/3; group 1: 1 − (1+1+1)/3 = 0
    loo = 2 / 3
    assert_values(ADVANTAGES.get("leave_one_out")(REWARDS, 4, "none"), [loo, -loo, -loo, loo, 0, 0, 0, 0])
    r = torch.tensor([1.0, 0.0, 0.0, 2.0])
    # Â_0 = 1 − 2/3 = 1/3; Â_1 = 0 − 3/3 = −1; Â_3 = 2 − 1/3 = 5/3
    assert_values(ADVANTAGES.get("leave_one_out")(r, 4, "none"), [1 / 3, -1, -1, 5 / 3])


def test_leave_one_out_with_std_scopes() -> None:
    loo = 2 / 3
    g = loo / (SD_G0 + STD_EPS)
    assert_values(ADVANTAGES.get("leave_one_out")(REWARDS, 4, "group"), [g, -g, -g, g, 0, 0, 0, 0])
    # batch: z-score of the LOO advantages themselves (TRL's RLOO normalize_advantages): they are
    # [±2/3 ×4 in group 0, 0 ×4], mean 0, unbiased std sqrt(4·(4/9)/7) = sqrt(16/63)
    b = loo / (math.sqrt(16 / 63) + STD_EPS)
    assert_values(ADVANTAGES.get("leave_one_out")(REWARDS, 4, "batch"), [b, -b, -b, b, 0, 0, 0, 0])


@pytest.mark.parametrize("name", ["group", "leave_one_out"])
def test_advantage_input_errors(name: str) -> None:
    fn = ADVANTAGES.get(name)
    with pytest.raises(ValueError, match="divisible by G=3"):
        fn(REWARDS, 3, "none")
    with pytest.raises(ValueError, match="divisible by G=4"):
        fn(REWARDS.view(2, 4), 4, "none")
    with pytest.raises(ValueError, match="valid: group, batch, none"):
        fn(REWARDS, 4, "groups")


def test_reward_advantage_is_the_raw_reward() -> None:
    # vanilla REINFORCE: no baseline, Â_i = r_i; an unscorable (NaN) reward contributes nothing
    assert_values(ADVANTAGES.get("reward")(REWARDS, 4, "none"), REWARDS.tolist())
    r = torch.tensor([2.0, float("nan"), -1.0, 0.5])
    assert_values(ADVANTAGES.get("reward")(r, 2, "none"), [2.0, 0.0, -1.0, 0.5])
    with pytest.raises(ValueError, match="scale_rewards: none"):
        ADVANTAGES.get("reward")(REWARDS, 4, "group")
    with pytest.raises(ValueError, match="divisible by G=3"):
        ADVANTAGES.get("reward")(REWARDS, 3, "none")


def test_leave_one_out_needs_two_completions() -> None:
    with pytest.raises(ValueError, match="G ≥ 2"):
        ADVANTAGES.get("leave_one_out")(REWARDS, 1, "none")


def test_zero_std_groups_flags_uniform_groups() -> None:
    assert zero_std_groups(REWARDS, 4).tolist() == [False, True]
    assert zero_std_groups(torch.tensor([0.0, 0.0, 2.0, 2.0, 1.0, 0.0]), 2).tolist() == [True, True, False]


# ----------------------------------------------------------------------------------------------------------------
# Importance ratios
# ----------------------------------------------------------------------------------------------------------------

LOGP = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -0.3, -9.0]])
OLD = torch.tensor([[-1.1, -1.8, -0.5], [-0.4, -0.3, -1.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # row 1's last token is padding
# ℓ − ℓ_old = [[0.1, −0.2, 0.0], [0.2, 0.0, −8.0]]
LOG_S = [(0.1 - 0.2 + 0.0) / 3, (0.2 + 0.0) / 2]  # masked −8.0 excluded: [−1/30, 0.1]


def test_token_ratio() -> None:
    assert_values(RATIO_LEVELS.get("token")(LOGP, OLD, MASK), [[0.1, -0.2, 0.0], [0.2, 0.0, -8.0]])


def test_sequence_ratio_is_the_geometric_mean_over_the_mask() -> None:
    assert_values(RATIO_LEVELS.get("sequence")(LOGP, OLD, MASK), [[LOG_S[0]], [LOG_S[1]]])


def test_sequence_ratio_of_an_empty_row_is_zero() -> None:
    mask = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])  # Σ M clamped to 1 → log s = 0 / 1
    assert_values(RATIO_LEVELS.get("sequence")(LOGP, OLD, mask), [[0.0], [0.1]])


def test_sequence_token_ratio_value_is_the_sequence_ratio() -> None:
    log_w = RATIO_LEVELS.get("sequence_token")(LOGP, OLD, MASK)
    assert log_w.shape == (2, 3)
    assert_values(log_w, [[LOG_S[0]] * 3, [LOG_S[1]] * 3])


def test_sequence_token_gradient_is_s_per_token() -> None:
    logp = LOGP.clone().requires_grad_(True)
    torch.exp(RATIO_LEVELS.get("sequence_token")(logp, OLD, MASK)).sum().backward()
    s0, s1 = math.exp(LOG_S[0]), math.exp(LOG_S[1])
    # ∂ w_t / ∂ ℓ_t = s_i on every token (even the padded one: masking happens in the aggregation)
    assert_values(logp.grad, [[s0, s0, s0], [s1, s1, s1]])


@pytest.mark.parametrize("old_shift", [0.0, 0.05, 0.4])  # on-policy, inside the clip band, clipped
def test_gspo_token_equals_gspo_when_each_sequence_has_one_advantage(old_shift: float) -> None:
    """GSPO §4.3: with Â_{i,t} = Â_i the GSPO-token objective, its clipping and its gradient equal GSPO's."""
    adv = torch.tensor([1.0, -0.5])
    old = OLD - old_shift * torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]])
    results = []
    for preset in ("gspo", "gspo_token"):
        logp = LOGP.clone().requires_grad_(True)
        spec = PolicyLossSpec(PRESETS.get(preset), 3e-4, 4e-4)
        out = policy_loss(spec, logp, MASK, adv, ctx(), old_logp=old)
        out.loss.backward()
        results.append((out.loss.item(), logp.grad.clone()))
    (loss_seq, grad_seq), (loss_tok, grad_tok) = results
    assert loss_tok == pytest.approx(loss_seq, abs=1e-7)
    torch.testing.assert_close(grad_tok, grad_seq, rtol=1e-6, atol=1e-7)
    if old_shift == 0.4:  # log s = [0.2, 0.3]: both far above 1 + 4e-4
        assert grad_seq[0].abs().max() == 0.0  # Â > 0: the clipped branch wins, no gradient
        assert grad_seq[1, :2].abs().min() > 0.0  # Â < 0: PPO's pessimistic min keeps the unclipped term


def test_sequence_gradient_is_shared_over_the_mask() -> None:
    logp = LOGP.clone().requires_grad_(True)
    torch.exp(RATIO_LEVELS.get("sequence")(logp, OLD, MASK)).sum().backward()
    s0, s1 = math.exp(LOG_S[0]), math.exp(LOG_S[1])
    # ∂ s_i / ∂ ℓ_t = s_i · M_t / |y_i|: unlike GSPO-token, each token gets 1/|y_i| of it
    assert_values(logp.grad, [[s0 / 3, s0 / 3, s0 / 3], [s1 / 2, s1 / 2, 0.0]])


# ----------------------------------------------------------------------------------------------------------------
# Surrogates
# ----------------------------------------------------------------------------------------------------------------


def ppo(r: list[float], adv: list[float], eps_low: float, eps_high: float, delta: float | None = None):
    """Per-element PPO loss and its gradient w.r.t. log r, one element per row (T = 1)."""
    log_w = torch.tensor(r).log().unsqueeze(-1).requires_grad_(True)  # [B, 1]
    x = SurrogateInputs(log_w, torch.tensor(adv).unsqueeze(-1), torch.zeros(len(r), 1), eps_low, eps_high, delta)
    loss = SURROGATES.get("ppo_clip")(x)
    loss.sum().backward()
    return loss.detach().squeeze(-1), log_w.grad.squeeze(-1)


def test_ppo_clip_asymmetric_branches() -> None:
    # ε_low = 0.2 → lower bound 0.8; ε_high = 0.28 → upper bound 1.28
    r = [1.1, 1.5, 1.5, 0.5, 0.5, 1.25]
    a = [2.0, 1.0, -1.0, -1.0, 1.0, 1.0]
    loss, grad = ppo(r, a, 0.2, 0.28)
    expected = [
        -1.1 * 2.0,  # inside [0.8, 1.28]: −r·A
        -1.28 * 1.0,  # r > 1+ε_high and A > 0: clipped to −1.28·A
        1.5,  # r > 1+ε_high but A < 0: −min(−1.5, −1.28) = 1.5, unclipped
        0.8,  # r < 1−ε_low and A < 0: −min(−0.5, −0.8) = 0.8, clipped
        -0.5,  # r < 1−ε_low but A > 0: −min(0.5, 0.8) = −0.5, unclipped
        -1.25,  # 1.25 ≤ 1.28: inside thanks to clip-higher (a symmetric 0.2 would clip it)
    ]
    assert_values(loss, expected)
    # ∂L/∂log r = −r·A where the unclipped term is the minimum, 0 where the clip is active
    assert_values(grad, [-2.2, 0.0, 1.5, 0.0, -0.5, -1.25])


def test_ppo_clip_symmetric_clips_what_clip_higher_keeps() -> None:
    loss, grad = ppo([1.25], [1.0], 0.2, 0.2)
    assert_values(loss, [-1.2])
    assert_values(grad, [0.0])


def test_ppo_clip_delta_caps_the_unclipped_term() -> None:
    r = [2.0, 2.0, 1.4, 0.5]
    a = [-1.0, 1.0, -1.0, -1.0]
    loss, grad = ppo(r, a, 0.2, 0.28, delta=1.5)
    expected = [
        1.5,  # A<0: −min(min(2, δ)·(−1), 1.28·(−1)) = −min(−1.5, −1.28) = 1.5 (no delta: 2.0)
        -1.28,  # A>0: −min(1.5, 1.28) = −1.28
        1.4,  # below δ, A<0: −min(−1.4, −1.28) = 1.4
        0.8,  # δ is irrelevant below 1: −min(−0.5, −0.8) = 0.8
    ]
    assert_values(loss, expected)
    # capped at δ → zero gradient; r = 1.4 < δ keeps −r·A = 1.4
    assert_values(grad, [0.0, 0.0, 1.4, 0.0])
    loss_no_delta, grad_no_delta = ppo([2.0], [-1.0], 0.2, 0.28)
    assert_values(loss_no_delta, [2.0])
    assert_values(grad_no_delta, [2.0])


def test_cispo_value_and_gradient() -> None:
    # ε_high = 5 is the absolute cap on r; r = exp(ℓ − ℓ_old)
    ratios = torch.tensor([[0.5, 3.0, 7.0], [7.0, 0.1, 1.0]])
    adv = torch.tensor([[1.5], [-2.0]])
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -3.0, -1.5]]).requires_grad_(True)
    old = logp.detach() - ratios.log()
    x = SurrogateInputs(logp - old, adv, logp, 0.2, 5.0, None)
    loss = SURROGATES.get("cispo")(x)
    capped = [[0.5, 3.0, 5.0], [5.0, 0.1, 1.0]]  # min(r, 5)
    expected = [
        [-0.5 * 1.5 * -1.0, -3.0 * 1.5 * -2.0, -5.0 * 1.5 * -0.5],
        [-5.0 * -2.0 * -0.2, -0.1 * -2.0 * -3.0, -1.0 * -2.0 * -1.5],
    ]
    assert_values(loss, expected)
    loss.sum().backward()
    # the weight is stop-gradient even though r depends on ℓ: ∂L/∂ℓ_t = −min(r_t, ε_high)·A
    grad = [[-c * a for c in row] for row, a in zip(capped, (1.5, -2.0))]
    assert_values(logp.grad, grad)


def test_clip_fractions() -> None:
    # row 0, A=+1: r = [1.1, 1.5, 0.5] → only 1.5 > 1.2 is clipped (high); 0.5 with A>0 is not
    # row 1, A=−1: r = [0.5, 1.5, 0.7] → 0.5 < 0.8 is clipped (low); 0.7 is padding
    log_w = torch.tensor([[1.1, 1.5, 0.5], [0.5, 1.5, 0.7]]).log()
    adv = torch.tensor([[1.0], [-1.0]])
    fr = clip_fractions(log_w, adv, MASK, 0.2, 0.2)
    assert fr == pytest.approx({"clip_frac_low": 1 / 5, "clip_frac_high": 1 / 5, "clip_frac": 2 / 5})
    # ε_high = 0.6 → 1.5 is inside, only the low clip remains
    fr = clip_fractions(log_w, adv, MASK, 0.2, 0.6)
    assert fr == pytest.approx({"clip_frac_low": 1 / 5, "clip_frac_high": 0.0, "clip_frac": 1 / 5})


def test_clip_fractions_sequence_level_count_sequences() -> None:
    # [B, 1] sequence ratios: one decision per sequence, whatever its length (as TRL logs it)
    log_w = torch.tensor([[1.5], [1.5]]).log()
    fr = clip_fractions(log_w, torch.tensor([[1.0], [-1.0]]), MASK, 0.2, 0.2)
    assert fr == pytest.approx({"clip_frac_low": 0.0, "clip_frac_high": 1 / 2, "clip_frac": 1 / 2})


def test_clip_fractions_cispo_count_the_absolute_cap_only() -> None:
    # CISPO caps the weight at ε_high = 5 (Â > 0) and has no lower clip
    log_w = torch.tensor([[6.0, 0.1, 2.0]]).log()
    fr = clip_fractions(log_w, torch.tensor([[1.0]]), torch.ones(1, 3), 0.2, 5.0, "cispo")
    assert fr == pytest.approx({"clip_frac_low": 0.0, "clip_frac_high": 1 / 3, "clip_frac": 1 / 3})
    fr = clip_fractions(log_w, torch.tensor([[-1.0]]), torch.ones(1, 3), 0.2, 5.0, "cispo")
    assert fr == pytest.approx({"clip_frac_low": 0.0, "clip_frac_high": 0.0, "clip_frac": 0.0})


# ----------------------------------------------------------------------------------------------------------------
# KL estimators
# ----------------------------------------------------------------------------------------------------------------


def test_kl_estimators() -> None:
    logp = torch.tensor([[-1.0, -2.0, -0.3]])
    ref = torch.tensor([[-1.5, -1.0, -0.3]])
    # k1 = ℓ − ℓ_ref
    assert_values(KL_ESTIMATORS.get("k1")(logp, ref), [[0.5, -1.0, 0.0]])
    # k3 with d = ℓ_ref − ℓ = [−0.5, 1, 0]: e^d − d − 1
    assert_values(
        KL_ESTIMATORS.get("k3")(logp, ref), [[math.exp(-0.5) + 0.5 - 1, math.exp(1.0) - 1.0 - 1, 0.0]]
    )  # [0.106531, 0.718282, 0]


# ----------------------------------------------------------------------------------------------------------------
# Aggregation
# ----------------------------------------------------------------------------------------------------------------

TOKEN_LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # with MASK: active sum = 1+2+3+4+5 = 15, 5 tokens


def aggregate(name: str, c: AggregationContext) -> float:
    return AGGREGATORS.get(name)(TOKEN_LOSS, MASK, c).item()


def test_sequence_mean() -> None:
    # row means 6/3 = 2 and 9/2 = 4.5 (the 6 is padding); mean 3.25; ÷ GA
    assert aggregate("sequence_mean", ctx()) == pytest.approx(3.25)
    assert aggregate("sequence_mean", ctx(ga=2)) == pytest.approx(3.25 / 2)


def test_batch_token_mean() -> None:
    assert aggregate("batch_token_mean", ctx()) == pytest.approx(15 / 5)
    assert aggregate("batch_token_mean", ctx(ga=4)) == pytest.approx(15 / 5 / 4)


def test_global_token_mean() -> None:
    # normaliser = max(N_gen, 1) / P · GA / spg
    assert aggregate("global_token_mean", ctx(n_items=20)) == pytest.approx(15 / 20)
    assert aggregate("global_token_mean", ctx(ga=2, spg=2, n_items=20)) == pytest.approx(15 / 20)
    assert aggregate("global_token_mean", ctx(ga=2, spg=4, n_items=20)) == pytest.approx(15 / (20 * 2 / 4))
    assert aggregate("global_token_mean", ctx(ga=1, spg=4, n_items=20)) == pytest.approx(15 / (20 / 4))
    assert aggregate("global_token_mean", ctx(ga=2, spg=2, n_items=20, procs=2)) == pytest.approx(15 / (20 / 2))
    assert aggregate("global_token_mean", ctx(n_items=0)) == pytest.approx(15 / 1)  # clamped to 1


def test_global_token_mean_sums_to_the_window_token_mean() -> None:
    # GA = spg = 2 micro-batches of the same generation batch: their sum is Σ_all L / Σ_all M
    other_loss, other_mask = torch.tensor([[7.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    c = ctx(ga=2, spg=2, n_items=6)
    total = AGGREGATORS.get("global_token_mean")(TOKEN_LOSS, MASK, c) + AGGREGATORS.get("global_token_mean")(
        other_loss, other_mask, c
    )
    assert total.item() == pytest.approx((15 + 7) / 6)


def test_constant_length() -> None:
    # Σ / (B · L_max) = 15 / (2 · 6), ÷ GA
    assert aggregate("constant_length", ctx(max_len=6)) == pytest.approx(15 / 12)
    assert aggregate("constant_length", ctx(ga=2, max_len=10)) == pytest.approx(15 / 20 / 2)


# ----------------------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------------------

# name: (advantage_estimator, scale_rewards, importance_sampling_level, surrogate, aggregation, kl_estimator)
DOCUMENTED_PRESETS = {
    "grpo": ("group", "group", "token", "ppo_clip", "sequence_mean", "k3"),
    "bnpo": ("group", "group", "token", "ppo_clip", "batch_token_mean", "k3"),
    "dr_grpo": ("group", "none", "token", "ppo_clip", "constant_length", "k3"),
    "dapo": ("group", "group", "token", "ppo_clip", "global_token_mean", "k3"),
    "cispo": ("group", "group", "token", "cispo", "global_token_mean", "k3"),
    "gspo": ("group", "group", "sequence", "ppo_clip", "sequence_mean", "k3"),
    "gspo_token": ("group", "group", "sequence_token", "ppo_clip", "sequence_mean", "k3"),
    "rloo": ("leave_one_out", "none", "sequence_sum", "ppo_clip", "sequence_mean", "k1"),
    "reinforce": ("reward", "none", "sequence_sum", "ppo_clip", "sequence_mean", "k1"),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED_PRESETS))
def test_preset_expands_to_the_documented_axes(name: str) -> None:
    expected = LossAxes(*DOCUMENTED_PRESETS[name])
    assert PRESETS.get(name) == expected
    assert expand_preset(name, {}) == expected
    assert expand_preset(name, dict.fromkeys(AXIS_NAMES)) == expected  # None means "unset"


def test_every_preset_axis_names_a_registered_entry() -> None:
    registries = {
        "advantage_estimator": ADVANTAGES,
        "importance_sampling_level": RATIO_LEVELS,
        "surrogate": SURROGATES,
        "aggregation": AGGREGATORS,
        "kl_estimator": KL_ESTIMATORS,
    }
    for name in PRESETS:
        axes = PRESETS.get(name)
        for axis, registry in registries.items():
            assert getattr(axes, axis) in registry, (name, axis)
        assert axes.scale_rewards in ("group", "batch", "none")


def test_explicit_axes_override_the_preset() -> None:
    axes = expand_preset("dapo", {"scale_rewards": "batch", "importance_sampling_level": "sequence_token"})
    assert axes == LossAxes("group", "batch", "sequence_token", "ppo_clip", "global_token_mean", "k3")
    axes = expand_preset("dr_grpo", {"aggregation": "sequence_mean", "kl_estimator": "k1", "surrogate": None})
    assert axes == LossAxes("group", "none", "token", "ppo_clip", "sequence_mean", "k1")


def test_unknown_preset_suggests_a_close_match() -> None:
    with pytest.raises(RegistryError) as err:
        expand_preset("dapoo", {})
    message = str(err.value)
    assert "Did you mean 'dapo'" in message
    assert "Valid names: bnpo, cispo, dapo, dr_grpo, grpo, gspo, gspo_token, reinforce, rloo" in message
    with pytest.raises(RegistryError, match="Did you mean 'sequence_mean'"):
        AGGREGATORS.get("sequence_means")


# ----------------------------------------------------------------------------------------------------------------
# policy_loss end to end, 2 × 3, by hand
# ----------------------------------------------------------------------------------------------------------------

E_LOGP = [[-1.0, -2.0, -0.5], [-0.2, -0.3, -9.0]]
E_OLD = [[-1.1, -2.3, -0.5], [-0.4, -0.3, -1.0]]  # ℓ − ℓ_old = [[0.1, 0.3, 0], [0.2, 0, −8]]
E_REF = [[-1.2, -2.0, -0.7], [-0.2, -0.5, -2.0]]  # d = ℓ_ref − ℓ = [[−0.2, 0, −0.2], [0, −0.2, 7]]
E_ADV = [1.0, -0.5]


def k3(d: float) -> float:
    return math.exp(d) - d - 1


def hand_grpo_loss(beta: float, bias_correction: bool) -> float:
    """GRPO preset, ε = 0.2, token ratios, k3, sequence_mean, GA = 1, written out token by token."""
    r = [[math.exp(0.1), math.exp(0.3), 1.0], [math.exp(0.2), 1.0]]  # row 1's third token is padding
    surrogate = [
        [-r[0][0] * 1.0, -1.2 * 1.0, -1.0 * 1.0],  # 1.105 inside; 1.350 > 1.2 with A>0 → clipped to 1.2; r=1
        [-(-0.5 * r[1][0]), -(-0.5 * 1.0)],  # A<0: 1.221 > 1.2 is not clipped (−min(−0.611, −0.6) = 0.611); r=1
    ]
    kl = [[k3(-0.2), k3(0.0), k3(-0.2)], [k3(0.0), k3(-0.2)]]
    per_seq = []
    for i in range(2):
        tokens = [
            surrogate[i][t] + beta * kl[i][t] * (r[i][t] if bias_correction else 1.0) for t in range(len(surrogate[i]))
        ]
        per_seq.append(sum(tokens) / len(tokens))
    return sum(per_seq) / 2


def run_policy_loss(
    beta: float, bias_correction: bool, *, on_policy: bool = False, preset: str = "grpo", ga: int = 1
) -> tuple[float, torch.Tensor, dict[str, float]]:
    logp = torch.tensor(E_LOGP, requires_grad=True)
    spec = PolicyLossSpec(PRESETS.get(preset), 0.2, 0.2, beta=beta, use_bias_correction_kl=bias_correction)
    out = policy_loss(
        spec,
        logp,
        MASK,
        torch.tensor(E_ADV),
        ctx(ga=ga, n_items=5.0),
        old_logp=None if on_policy else torch.tensor(E_OLD),
        ref_logp=torch.tensor(E_REF),
    )
    out.loss.backward()
    return out.loss.item(), logp.grad, out.metrics


def test_policy_loss_without_kl() -> None:
    loss, _, metrics = run_policy_loss(0.0, True)
    # row 0: (−1.105171 − 1.2 − 1)/3 = −1.101724; row 1: (0.610701 + 0.5)/2 = 0.555351; mean −0.273187
    assert loss == pytest.approx(hand_grpo_loss(0.0, True), abs=1e-6)
    assert loss == pytest.approx(-0.273187, abs=1e-6)
    assert "kl" not in metrics
    # one high-clipped token (r = e^0.3, A > 0) out of 5; no low clip
    assert metrics == pytest.approx({"clip_frac_low": 0.0, "clip_frac_high": 0.2, "clip_frac": 0.2})


@pytest.mark.parametrize("bias_correction", [True, False])
def test_policy_loss_with_k3_kl(bias_correction: bool) -> None:
    loss, _, metrics = run_policy_loss(0.1, bias_correction)
    assert loss == pytest.approx(hand_grpo_loss(0.1, bias_correction), abs=1e-6)
    k = k3(-0.2)  # 0.018731
    if bias_correction:  # KL_t · r_t: tokens (0,0), (0,2), (1,1) have k3 ≠ 0 with r = e^0.1, 1, 1
        kl_mean = (k * math.exp(0.1) + k + k) / 5
    else:
        kl_mean = 3 * k / 5
    assert metrics["kl"] == pytest.approx(kl_mean, abs=1e-7)
    no_kl, _, _ = run_policy_loss(0.0, bias_correction)
    assert loss - no_kl == pytest.approx(hand_grpo_loss(0.1, bias_correction) - hand_grpo_loss(0.0, True), abs=1e-6)


def test_bias_corrected_kl_changes_the_gradient_on_policy() -> None:
    # on-policy: r = 1 in value, so the loss equals the uncorrected one, but ∇(r·k3) = k3·∇ℓ + ∇k3
    loss_c, grad_c, _ = run_policy_loss(0.1, True, on_policy=True)
    loss_u, grad_u, _ = run_policy_loss(0.1, False, on_policy=True)
    assert loss_c == pytest.approx(loss_u, abs=1e-7)
    # surrogate grad: −A/(|y_i|·B); k3 grad: β(1 − e^d)/(|y_i|·B); correction adds β·k3/(|y_i|·B)
    beta, k = 0.1, k3(-0.2)
    dk = 1 - math.exp(-0.2)  # ∂k3/∂ℓ at d = −0.2
    expected_u = [
        [(-1.0 + beta * dk) / 6, -1.0 / 6, (-1.0 + beta * dk) / 6],
        [0.5 / 4, (0.5 + beta * dk) / 4, 0.0],
    ]
    assert_values(grad_u, expected_u)
    extra = [[beta * k / 6, 0.0, beta * k / 6], [0.0, beta * k / 4, 0.0]]
    assert_values(grad_c - grad_u, extra)


def test_policy_loss_needs_reference_log_probs_when_beta_is_set() -> None:
    spec = PolicyLossSpec(PRESETS.get("grpo"), 0.2, 0.2, beta=0.1)
    with pytest.raises(ValueError, match="reference log-probs"):
        policy_loss(spec, torch.tensor(E_LOGP), MASK, torch.tensor(E_ADV), ctx())


def test_policy_loss_aggregation_follows_the_preset() -> None:
    # same per-token losses (β = 0), different aggregators: token sums row0 −3.305171, row1 1.110701
    row0 = -math.exp(0.1) - 1.2 - 1.0
    row1 = 0.5 * math.exp(0.2) + 0.5
    assert run_policy_loss(0.0, True, preset="bnpo")[0] == pytest.approx((row0 + row1) / 5, abs=1e-6)
    assert run_policy_loss(0.0, True, preset="dapo")[0] == pytest.approx((row0 + row1) / 5, abs=1e-6)
    assert run_policy_loss(0.0, True, preset="dr_grpo")[0] == pytest.approx((row0 + row1) / (2 * 6), abs=1e-6)
    assert run_policy_loss(0.0, True, preset="grpo", ga=2)[0] == pytest.approx((row0 / 3 + row1 / 2) / 2 / 2, abs=1e-6)


# --- rollout–trainer mismatch correction (TIS / MIS) ------------------------------------------


def test_rollout_corrections_by_hand() -> None:
    from repro.losses.rollout_correction import ROLLOUT_CORRECTIONS

    old = torch.log(torch.tensor([[0.5, 0.4, 0.9], [0.2, 0.3, 0.1]]))  # [2, 3]
    rollout = torch.log(torch.tensor([[0.25, 0.4, 0.1], [0.2, 0.6, 0.1]]))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # row 0: last token is padding
    # token ratios: row 0 [2, 1, (padding) 1]; row 1 [1, 0.5, 1]; sequence products: 2 and 0.5
    get = ROLLOUT_CORRECTIONS.get
    assert torch.allclose(
        get("token_truncate")(old, rollout, mask, None, 1.5), torch.tensor([[1.5, 1, 1], [1, 0.5, 1]])
    )
    assert torch.allclose(get("token_truncate")(old, rollout, mask, 0.8, 3.0), torch.tensor([[2, 1, 1], [1, 0.8, 1]]))
    assert torch.allclose(get("token_mask")(old, rollout, mask, 0.8, 1.5), torch.tensor([[0, 1, 1], [1, 0, 1.0]]))
    assert torch.allclose(get("sequence_truncate")(old, rollout, mask, None, 1.5), torch.tensor([[1.5], [0.5]]))
    assert torch.allclose(get("sequence_mask")(old, rollout, mask, 0.6, 3.0), torch.tensor([[2.0], [0.0]]))
    assert torch.equal(get("none")(old, rollout, mask, None, 3.0), torch.ones(2, 1))
    nan_rollout = rollout.clone()
    nan_rollout[0, 2] = float("nan")  # a padding position the sampler left undefined
    assert torch.allclose(get("sequence_truncate")(old, nan_rollout, mask, None, 3.0), torch.tensor([[2.0], [0.5]]))


def test_rollout_weight_scales_the_surrogate_not_the_kl() -> None:
    torch.manual_seed(0)
    logp = torch.randn(2, 3, requires_grad=True)
    mask, adv = torch.ones(2, 3), torch.tensor([1.0, -0.5])
    ref = torch.randn(2, 3)
    spec = PolicyLossSpec(axes=PRESETS.get("dapo"), epsilon_low=0.2, epsilon_high=0.28, beta=0.1)
    ctx = AggregationContext(
        grad_accum_steps=1, steps_per_generation=1, num_items_in_batch=6.0, max_completion_length=3
    )
    base = policy_loss(spec, logp, mask, adv, ctx, ref_logp=ref).loss
    no_kl = dataclasses.replace(spec, beta=0.0)
    surrogate_only = policy_loss(no_kl, logp, mask, adv, ctx).loss
    halved = policy_loss(spec, logp, mask, adv, ctx, ref_logp=ref, rollout_weight=torch.full((2, 1), 0.5)).loss
    assert halved.item() == pytest.approx(base.item() - 0.5 * surrogate_only.item(), rel=1e-6)


def test_rloo_full_product_ratio_and_sequence_kl_penalty_by_hand() -> None:
    from repro.losses.kl import sequence_kl_penalty

    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]])
    old = torch.tensor([[-1.5, -2.5, -1.0], [-0.5, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    # row 0: 0.5 + 0.5 − 2 = −1; row 1: 0 + 0.5 (the padded −8 does not count)
    assert torch.allclose(RATIO_LEVELS.get("sequence_sum")(logp, old, mask), torch.tensor([[-1.0], [0.5]]))
    assert torch.allclose(sequence_kl_penalty(old, logp, mask), torch.tensor([1.0, -0.5]))  # k1: can be negative
    rloo = PRESETS.get("rloo")
    assert (rloo.advantage_estimator, rloo.scale_rewards, rloo.importance_sampling_level) == (
        "leave_one_out", "none", "sequence_sum",
    )  # fmt: skip


@pytest.mark.parametrize("aggregation", sorted(AGGREGATORS.names()))
@pytest.mark.parametrize("level", sorted(RATIO_LEVELS.names()))
def test_row_shares_of_a_micro_batch_add_up_to_its_loss_and_gradient(aggregation: str, level: str) -> None:
    """Data parallel: the losses of a micro-batch's row shares (uneven: 3, 1, 3 rows) sum to the whole micro-batch's
    loss, and their gradients to its gradient, for every aggregator and ratio level."""
    from repro.losses.policy import RowShare

    torch.manual_seed(3)
    B, T = 7, 5
    base = torch.randn(B, T)
    old, ref = base + 0.1 * torch.randn(B, T), base + 0.1 * torch.randn(B, T)
    mask = (torch.rand(B, T) > 0.3).float()
    mask[2] = 0.0  # a row without tokens
    advantages = torch.randn(B)
    axes = dataclasses.replace(PRESETS.get("grpo"), aggregation=aggregation, importance_sampling_level=level)
    spec = PolicyLossSpec(axes, epsilon_low=0.2, epsilon_high=0.28, beta=0.04)
    ctx = AggregationContext(2, 4, float(mask.sum()), max_completion_length=T)

    whole_logp = base.clone().requires_grad_(True)
    whole = policy_loss(spec, whole_logp, mask, advantages, ctx, old_logp=old, ref_logp=ref).loss
    whole.backward()
    shares_logp = base.clone().requires_grad_(True)
    total = torch.zeros(())
    for start, stop in [(0, 3), (3, 4), (4, 7)]:
        rows = slice(start, stop)
        part = policy_loss(
            spec, shares_logp[rows], mask[rows], advantages[rows], ctx, old_logp=old[rows], ref_logp=ref[rows],
            share=RowShare(start, mask),
        ).loss  # fmt: skip
        part.backward()
        total = total + part.detach()
    assert float(total) == pytest.approx(whole.item(), rel=1e-5, abs=1e-7)
    assert torch.allclose(shares_logp.grad, whole_logp.grad, atol=1e-6)
    assert whole_logp.grad.abs().sum() > 0
