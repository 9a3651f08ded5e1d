"""Claim statistics against hand-computed values, and the four verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from repro.registry import RegistryError
from repro.report.claims import (
    REDUCERS,
    TESTS,
    ClaimParams,
    bootstrap_diff,
    mean_ci,
    paired_t,
    satisfies,
    welch_t,
)

T975_DF2 = 4.302652729911275  # Student t 97.5% quantile, 2 degrees of freedom (tables)

TREATMENT = [5.0, 6.0, 7.0]
CONTROL = [1.0, 2.0, 6.0]


def by_seed(values: list[float]) -> dict[int, float]:
    return dict(enumerate(values))


def test_welch_matches_hand_computation() -> None:
    # means 6 and 3; sample variances 1 and 7; se² = 1/3 + 7/3 = 8/3
    se = math.sqrt(8 / 3)
    t_hand = 3 / se  # 1.8371...
    df_hand = (8 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (7 / 3) ** 2 / 2)  # = 2.56
    assert df_hand == pytest.approx(2.56)
    result = welch_t(TREATMENT, CONTROL)
    assert result.effect == pytest.approx(3.0)
    assert result.statistic == pytest.approx(t_hand)
    assert result.df == pytest.approx(2.56)
    assert result.p_greater == pytest.approx(stats.t.sf(t_hand, 2.56))
    assert result.p_less == pytest.approx(1 - stats.t.sf(t_hand, 2.56))
    half = stats.t.ppf(0.975, 2.56) * se
    assert result.ci == pytest.approx((3 - half, 3 + half))


def test_paired_t_matches_hand_computation() -> None:
    # differences 4, 4, 1: mean 3, sample variance 3, se = sqrt(3)/sqrt(3) = 1, t = 3, df = 2
    result = paired_t(TREATMENT, CONTROL)
    assert result.effect == pytest.approx(3.0)
    assert result.statistic == pytest.approx(3.0)
    assert result.df == 2
    # closed form of the t(2) survival function: 0.5 * (1 - t / sqrt(t² + 2))
    assert result.p_greater == pytest.approx(0.5 * (1 - 3 / math.sqrt(11)))
    assert result.ci == pytest.approx((3 - T975_DF2, 3 + T975_DF2))


def test_bootstrap_is_deterministic_and_separates_clear_groups() -> None:
    first = bootstrap_diff([5.0, 6.0, 7.0], [1.0, 2.0, 3.0])
    assert first == bootstrap_diff([5.0, 6.0, 7.0], [1.0, 2.0, 3.0])
    assert first.effect == pytest.approx(4.0)
    # every resample of the treatment mean (≥ 5) exceeds every control mean (≤ 3)
    assert first.p_greater == pytest.approx(1 / 10_001)
    assert first.p_less == pytest.approx(1.0)
    assert 2.0 <= first.ci[0] <= first.ci[1] <= 6.0


def test_mean_ci_and_reducers() -> None:
    lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert (lo, hi) == pytest.approx((2 - T975_DF2 / math.sqrt(3), 2 + T975_DF2 / math.sqrt(3)))
    assert mean_ci([1.0]) is None
    curve = [1.0, 2.0, 3.0, 4.0]
    assert REDUCERS.get("mean_last")(curve, 0.5) == 3.5
    assert REDUCERS.get("mean_last")(curve, 0.3) == 3.5  # ceil(0.3 × 4) = 2 steps
    assert REDUCERS.get("last")(curve, 0.5) == 4.0
    assert REDUCERS.get("max")(curve, 0.5) == 4.0
    assert REDUCERS.get("mean")(curve, 0.5) == 2.5
    assert REDUCERS.get("growth")(curve, 0.5) == 2.0  # (3 + 4)/2 − (1 + 2)/2
    assert REDUCERS.get("growth")(curve, 0.25) == 3.0  # 4 − 1


def test_sigmoid_asymptote_reducer_recovers_a_known_curve() -> None:
    from repro.report.scaling_fit import sigmoid_curve

    steps = np.arange(1, 201, dtype=float)
    curve = sigmoid_curve(steps, A=0.7, B=1.5, C_mid=40.0, R0=0.2)  # noiseless, starts near R0
    curve[:10] = 0.2  # the warm-up the reducer leaves out: R0 is its mean
    assert REDUCERS.get("sigmoid_asymptote")(list(curve), 0.05) == pytest.approx(0.7, abs=1e-3)


HIGH = by_seed([1.0, 1.1, 1.2])
LOW = by_seed([0.5, 0.6, 0.55])


@pytest.mark.parametrize("test", ["welch_t", "paired_t", "bootstrap"])
def test_clear_effect_is_reproduced(test: str) -> None:
    outcome = TESTS.get(test)(HIGH, LOW, ClaimParams("greater"))
    assert outcome.verdict == "reproduced"
    assert outcome.effect == pytest.approx(0.55)
    assert outcome.p_value < 0.05
    assert outcome.ci[0] > 0


@pytest.mark.parametrize("test", ["welch_t", "paired_t", "bootstrap"])
def test_opposite_effect_is_not_reproduced(test: str) -> None:
    outcome = TESTS.get(test)(HIGH, LOW, ClaimParams("less"))
    assert outcome.verdict == "not reproduced"
    assert outcome.p_value > 0.5


def test_overlapping_groups_are_inconclusive() -> None:
    outcome = TESTS.get("welch_t")(by_seed([1.0, 2.0, 3.0]), by_seed([1.5, 2.5, 1.8]), ClaimParams("greater"))
    assert outcome.verdict == "inconclusive"
    assert outcome.ci[0] < 0 < outcome.ci[1]


def test_effect_below_min_effect_is_inconclusive() -> None:
    outcome = TESTS.get("welch_t")(HIGH, LOW, ClaimParams("greater", min_effect=1.0))
    assert outcome.verdict == "inconclusive"
    assert "min_effect" in outcome.note


def test_too_few_seeds_is_insufficient() -> None:
    outcome = TESTS.get("welch_t")(by_seed([1.0, 1.1]), LOW, ClaimParams("greater", min_seeds=3))
    assert outcome.verdict == "insufficient seeds"
    assert outcome.p_value is None
    assert (outcome.n_treatment, outcome.n_control) == (2, 3)


def test_paired_uses_shared_seeds_only() -> None:
    control = {0: 0.5, 1: 0.6, 7: 0.1}
    outcome = TESTS.get("paired_t")(HIGH, control, ClaimParams("greater", min_seeds=3))
    assert outcome.verdict == "insufficient seeds"  # only seeds 0 and 1 pair up


@pytest.mark.parametrize("test", ["welch_t", "paired_t", "bootstrap"])
def test_zero_spread_gives_no_p_value_unless_declared_deterministic(test: str) -> None:
    """Seeds that all agree say nothing about noise: no p = 0, no "reproduced", unless the claim declares the
    quantity exact; then the means compare as they are, and the note says so."""
    ones, zeros = by_seed([1.0] * 3), by_seed([0.0] * 3)
    stochastic = TESTS.get(test)(ones, zeros, ClaimParams("greater"))
    assert stochastic.verdict == "inconclusive" and stochastic.p_value is None
    assert "deterministic: true" in stochastic.note
    exact = TESTS.get(test)(ones, zeros, ClaimParams("greater", deterministic=True))
    assert exact.verdict == "reproduced" and exact.p_value is None and "compared exactly" in exact.note
    assert exact.ci == (1.0, 1.0)
    wrong_way = TESTS.get(test)(zeros, ones, ClaimParams("greater", deterministic=True))
    assert wrong_way.verdict == "not reproduced"
    below_minimum = TESTS.get(test)(ones, zeros, ClaimParams("greater", min_effect=1.0, deterministic=True))
    assert below_minimum.verdict == "inconclusive"


def test_paired_differences_without_spread_are_not_certain() -> None:
    """Every seed's difference equal (treatment = control + 0.1) is zero spread for a paired test."""
    out = TESTS.get("paired_t")(by_seed([0.6, 0.7, 0.8]), by_seed([0.5, 0.6, 0.7]), ClaimParams("greater"))
    assert out.verdict == "inconclusive" and out.p_value is None


def test_declared_deterministic_with_spread_is_tested_and_flagged() -> None:
    out = TESTS.get("welch_t")(HIGH, LOW, ClaimParams("greater", deterministic=True))
    assert out.verdict == "reproduced" and out.p_value is not None and out.p_value < 0.05
    assert "vary across seeds" in out.note


@pytest.mark.parametrize("test", ["welch_t", "paired_t", "bootstrap"])
def test_direction_less_reaches_reproduced_and_respects_min_effect(test: str) -> None:
    """A "less" claim passes when the treatment is significantly lower by more than min_effect, and the sign of
    the effect is what min_effect is checked against (a larger treatment never passes)."""
    low, high = by_seed([0.10, 0.12, 0.11, 0.13]), by_seed([0.50, 0.53, 0.52, 0.51])
    out = TESTS.get(test)(low, high, ClaimParams("less"))
    assert out.verdict == "reproduced" and out.effect == pytest.approx(-0.4) and out.p_value < 0.05
    assert TESTS.get(test)(low, high, ClaimParams("less", min_effect=0.3)).verdict == "reproduced"
    assert TESTS.get(test)(low, high, ClaimParams("less", min_effect=0.5)).verdict == "inconclusive"
    assert TESTS.get(test)(high, low, ClaimParams("less")).verdict == "not reproduced"


def test_bootstrap_counts_ties_against_the_claim() -> None:
    """Treatment [1, 1, 0] against a constant 0: a resample of three zeros (probability 1/27) gives a difference
    of exactly 0, which counts against H1 "greater"; p is that share, not the 1/(n+1) floor."""
    out = bootstrap_diff([1.0, 1.0, 0.0], [0.0, 0.0, 0.0])
    assert out.p_greater == pytest.approx(1 / 27, abs=0.006)
    assert out.p_less == pytest.approx(1.0)  # every difference is ≥ 0: ties count against "less" as well
    tie_only = bootstrap_diff([1.0, 0.0], [1.0, 0.0])  # differences symmetric around 0, many exactly 0
    assert tie_only.p_greater > 0.5 and tie_only.p_less > 0.5


def test_max_equals_threshold() -> None:
    params = ClaimParams(None, threshold=("==", 0.0))
    zeros = by_seed([0.0, 0.0, 0.0])
    assert TESTS.get("max_equals")(zeros, by_seed([0.2, 0.3, 0.1]), params).verdict == "reproduced"
    failed = TESTS.get("max_equals")(by_seed([0.0, 0.1, 0.0]), None, params)
    assert failed.verdict == "not reproduced"
    assert "seed 1" in failed.note
    assert TESTS.get("max_equals")(by_seed([0.0]), None, params).verdict == "insufficient seeds"
    assert satisfies(1e-15, "==", 0.0) and satisfies(0.3, "<=", 0.5) and not satisfies(0.5, "<", 0.5)


def test_unknown_test_name_suggests_the_closest() -> None:
    with pytest.raises(RegistryError, match="welch_t"):
        TESTS.get("welch")


def test_noninferiority_by_hand() -> None:
    """Margin m: Welch's one-sided test of treatment − control > −m, written out with the control shifted."""
    treatment, control = by_seed([0.50, 0.52, 0.51]), by_seed([0.52, 0.53, 0.51])  # effect −0.01
    out = TESTS.get("noninferiority_welch")(treatment, control, ClaimParams("greater", min_effect=0.05))
    hand = welch_t([0.50, 0.52, 0.51], [0.52 - 0.05, 0.53 - 0.05, 0.51 - 0.05])
    assert out.verdict == "reproduced" and out.p_value == pytest.approx(hand.p_greater)
    assert out.effect == pytest.approx(-0.01) and out.control_mean == pytest.approx(0.52)
    assert out.ci == pytest.approx((hand.ci[0] - 0.05, hand.ci[1] - 0.05))
    assert "margin 0.05" in out.note
    # a clearly worse treatment (−0.2) is not reproduced; a tight margin on noisy data is inconclusive
    worse = TESTS.get("noninferiority_welch")(
        by_seed([0.30, 0.32, 0.31]), control, ClaimParams("greater", min_effect=0.05)
    )
    assert worse.verdict == "not reproduced"
    noisy = TESTS.get("noninferiority_welch")(
        by_seed([0.3, 0.6, 0.45]), control, ClaimParams("greater", min_effect=0.01)
    )
    assert noisy.verdict == "inconclusive"
    # "less": the treatment is not larger than the control by m or more (e.g. a length that must not grow)
    assert (
        TESTS.get("noninferiority_welch")(control, treatment, ClaimParams("less", min_effect=0.05)).verdict
        == "reproduced"
    )
