"""Statistics behind claim verdicts: one-sided tests over seeds, reached by name (DESIGN.md).

A claim compares a treatment variant with a control (another variant or the warm-start model) on
one number per seed. Every test returns the mean difference (treatment − control), its 95% CI and
one-sided p-values in both directions; `judge_difference` turns those into a graded verdict:

- "reproduced": p < α in the stated direction and the effect exceeds `min_effect` that way;
- "not reproduced": p < α for the opposite one-sided test;
- "inconclusive": anything else;
- "insufficient seeds": fewer than `min_seeds` values on either side (pairs, for `paired_t`).

Zero spread (every seed agrees) gives no p-value and reads "inconclusive", unless the claim declares the
quantity deterministic; then the means are compared exactly and the note says so.

`max_equals` checks every seed: each treatment seed must satisfy `op value`. Whether a claim discriminates
(its placebo, the control in the treatment's place) and its kind (mechanism or premise) are decided in
compare.py, from these outcomes.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from repro.registry import Registry

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "insufficient seeds")
DIRECTIONS = ("greater", "less")
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95
SPREAD_RTOL = 1e-9  # a standard error below this share of the values' magnitude is rounding, not noise

ValuesBySeed = Mapping[int, float]


@dataclass(frozen=True)
class DifferenceStats:
    """Mean difference treatment − control with a two-sided 95% CI and one-sided p-values."""

    effect: float
    ci: tuple[float, float]
    p_greater: float  # H1: treatment > control
    p_less: float  # H1: treatment < control
    statistic: float | None = None  # t statistic where the test has one
    df: float | None = None  # degrees of freedom (Welch–Satterthwaite for Welch)
    no_spread: bool = False  # both groups constant (paired: every difference equal): p is undefined


@dataclass(frozen=True)
class ClaimParams:
    """What a test needs from a claim besides the data."""

    direction: str | None = "greater"
    alpha: float = 0.05
    min_effect: float = 0.0
    min_seeds: int = 3
    threshold: tuple[str, float] | None = None  # (op, value), max_equals only
    deterministic: bool = False  # declared: zero spread on both sides compares exactly


@dataclass(frozen=True)
class ClaimOutcome:
    """A claim's numbers and verdict (one row of compare.json "claims", less the claim's text)."""

    n_treatment: int
    n_control: int
    treatment_mean: float | None
    control_mean: float | None
    effect: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    verdict: str
    note: str = ""


# --- the statistics -------------------------------------------------------------------------


def welch_t(treatment: Sequence[float], control: Sequence[float]) -> DifferenceStats:
    """Welch's unequal-variance t-test; CI from the Welch–Satterthwaite degrees of freedom."""
    t, c = _as_array(treatment), _as_array(control)
    _need_two(t, c)
    effect = float(t.mean() - c.mean())
    var_t, var_c = t.var(ddof=1) / len(t), c.var(ddof=1) / len(c)
    se = math.sqrt(var_t + var_c)
    if _negligible(se, t, c):
        return _no_spread(effect)
    df = (var_t + var_c) ** 2 / (var_t**2 / (len(t) - 1) + var_c**2 / (len(c) - 1))
    greater = stats.ttest_ind(t, c, equal_var=False, alternative="greater")
    less = stats.ttest_ind(t, c, equal_var=False, alternative="less")
    return _t_result(effect, se, df, greater, less)


def _t_result(effect: float, se: float, df: float, greater: Any, less: Any) -> DifferenceStats:
    """Effect with its t-interval (CI_LEVEL) and both one-sided p-values of a scipy t-test pair."""
    half = float(stats.t.ppf(0.5 + CI_LEVEL / 2, df)) * se
    return DifferenceStats(
        effect,
        (effect - half, effect + half),
        float(greater.pvalue),
        float(less.pvalue),
        float(greater.statistic),
        float(df),
    )


def paired_t(treatment: Sequence[float], control: Sequence[float]) -> DifferenceStats:
    """Paired t-test on per-seed differences (inputs aligned by seed, equal length)."""
    t, c = _as_array(treatment), _as_array(control)
    if len(t) != len(c):
        raise ValueError(f"paired_t needs equal-length inputs, got {len(t)} and {len(c)}")
    diff = t - c
    if len(diff) < 2:
        raise ValueError("paired_t needs at least 2 pairs")
    effect = float(diff.mean())
    se = float(diff.std(ddof=1)) / math.sqrt(len(diff))
    if _negligible(se, t, c):
        return _no_spread(effect)
    df = len(diff) - 1
    greater = stats.ttest_rel(t, c, alternative="greater")
    less = stats.ttest_rel(t, c, alternative="less")
    return _t_result(effect, se, df, greater, less)


def bootstrap_diff(
    treatment: Sequence[float],
    control: Sequence[float],
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> DifferenceStats:
    """Bootstrap of the difference in means, each group resampled on its own (fixed rng seed).

    CI: percentile interval. One-sided p: share of resampled differences on the wrong side of 0, ties (a
    difference of exactly 0) counted against H1 in both directions, with the +1 correction so that p is never
    exactly 0.
    """
    t, c = _as_array(treatment), _as_array(control)
    _need_two(t, c)
    if _negligible(float(np.ptp(t)) + float(np.ptp(c)), t, c):
        return _no_spread(float(t.mean() - c.mean()))  # every resample would agree: no evidence of certainty
    rng = np.random.default_rng(seed)
    t_means = rng.choice(t, size=(n_resamples, len(t)), replace=True).mean(axis=1)
    c_means = rng.choice(c, size=(n_resamples, len(c)), replace=True).mean(axis=1)
    diffs = t_means - c_means  # [n_resamples]
    tail = (1 - CI_LEVEL) / 2
    lo, hi = np.quantile(diffs, [tail, 1 - tail])
    p_greater = (np.count_nonzero(diffs <= 0) + 1) / (n_resamples + 1)
    p_less = (np.count_nonzero(diffs >= 0) + 1) / (n_resamples + 1)
    return DifferenceStats(float(t.mean() - c.mean()), (float(lo), float(hi)), p_greater, p_less)


THRESHOLD_OPS: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


def satisfies(value: float, op: str, bound: float) -> bool:
    """Whether `value op bound` holds (`==` with a float tolerance of 1e-12)."""
    return THRESHOLD_OPS[op](value, bound)


def mean_ci(values: Sequence[float]) -> tuple[float, float] | None:
    """Two-sided 95% t-interval for the mean over seeds; None with fewer than 2 values."""
    x = _as_array(values)
    if len(x) < 2:
        return None
    half = float(stats.t.ppf(0.5 + CI_LEVEL / 2, len(x) - 1)) * float(x.std(ddof=1))
    half /= math.sqrt(len(x))
    return (float(x.mean()) - half, float(x.mean()) + half)


# --- from statistics to verdicts -----------------------------------------------------------


def judge_difference(diff: DifferenceStats, params: ClaimParams) -> tuple[str, float | None, str]:
    """(verdict, p-value in the stated direction, note) for a two-group test.

    Zero spread gives no p-value: seeds that all agree say nothing about noise unless the quantity is exact
    by construction, which a claim declares (`deterministic: true`); only then are the means compared as they are.
    """
    sign = 1.0 if params.direction == "greater" else -1.0
    if diff.no_spread:
        return _judge_exact(sign * diff.effect, params)
    spread_note = "declared deterministic, yet the values vary across seeds" if params.deterministic else ""
    verdict, p, note = _judge_p(diff, params, sign)
    return verdict, p, _join(note, spread_note)


def _judge_exact(signed_effect: float, params: ClaimParams) -> tuple[str, None, str]:
    if not params.deterministic:
        note = (
            "zero spread across seeds: no noise estimate, hence no p-value; if the quantity is exact by "
            "construction, declare `deterministic: true`"
        )
        return "inconclusive", None, note
    if signed_effect > params.min_effect:
        return "reproduced", None, "deterministic: compared exactly (zero spread on both sides)"
    if signed_effect < 0:
        return "not reproduced", None, "deterministic: compared exactly; the difference is the other way"
    return "inconclusive", None, f"deterministic: compared exactly; |effect| ≤ min_effect {params.min_effect}"


def _judge_p(diff: DifferenceStats, params: ClaimParams, sign: float) -> tuple[str, float, str]:
    p_stated = diff.p_greater if sign > 0 else diff.p_less
    p_opposite = diff.p_less if sign > 0 else diff.p_greater
    if p_stated < params.alpha and sign * diff.effect > params.min_effect:
        return "reproduced", p_stated, ""
    if p_opposite < params.alpha:
        return ("not reproduced", p_stated, f"significant effect the other way (p={p_opposite:.3g})")
    if p_stated < params.alpha:
        note = f"significant, but |effect| {abs(diff.effect):.3g} ≤ min_effect {params.min_effect}"
        return "inconclusive", p_stated, note
    return "inconclusive", p_stated, f"p={p_stated:.3g} ≥ α={params.alpha}"


TestFn = Callable[[ValuesBySeed, ValuesBySeed | None, ClaimParams], ClaimOutcome]
TESTS: Registry[TestFn] = Registry("claim test")


def _two_group_test(stat: Callable[[Sequence[float], Sequence[float]], DifferenceStats], paired: bool) -> TestFn:
    def run(treatment: ValuesBySeed, control: ValuesBySeed | None, params: ClaimParams) -> ClaimOutcome:
        control = control or {}
        if paired:
            shared = sorted(set(treatment) & set(control))
            t_vals = [treatment[s] for s in shared]
            c_vals = [control[s] for s in shared]
        else:
            t_vals, c_vals = list(treatment.values()), list(control.values())
        n_t, n_c = len(t_vals), len(c_vals)
        t_mean, c_mean = _mean(t_vals), _mean(c_vals)
        effect = t_mean - c_mean if t_mean is not None and c_mean is not None else None
        need = max(params.min_seeds, 2)
        if n_t < need or n_c < need:
            what = "seed pairs" if paired else "seeds"
            note = f"need ≥{need} {what} per side, have treatment {n_t}, control {n_c}"
            return ClaimOutcome(n_t, n_c, t_mean, c_mean, effect, None, None, "insufficient seeds", note)
        diff = stat(t_vals, c_vals)
        verdict, p, note = judge_difference(diff, params)
        if paired and (len(treatment) != n_t or len(control) != n_c):
            note = _join(note, f"paired on {n_t} shared seeds")
        return ClaimOutcome(n_t, n_c, t_mean, c_mean, diff.effect, diff.ci, p, verdict, note)

    return run


TESTS.add("welch_t", _two_group_test(welch_t, paired=False))
TESTS.add("paired_t", _two_group_test(paired_t, paired=True))
TESTS.add("bootstrap", _two_group_test(bootstrap_diff, paired=False))


@TESTS.register("noninferiority_welch")
def noninferiority_welch(treatment: ValuesBySeed, control: ValuesBySeed | None, params: ClaimParams) -> ClaimOutcome:
    """Non-inferiority with margin m = min_effect (e.g. GFPO "no significant accuracy loss"): Welch's test of
    H1: sign·(treatment − control) > −m, i.e. the treatment is not worse than the control by m or more.

    "reproduced": p < α for that one-sided test; "not reproduced": the treatment is significantly worse
    than the margin allows (p < α the other way); "inconclusive" otherwise. Effect and CI are unshifted.
    """
    sign = 1.0 if params.direction == "greater" else -1.0
    m = params.min_effect
    shifted = {seed: v - sign * m for seed, v in (control or {}).items()}  # the margin moves the null
    plain = dataclasses.replace(params, min_effect=-math.inf)  # no minimum effect beyond the margin
    out = TESTS.get("welch_t")(treatment, shifted, plain)
    if out.effect is None:
        return out
    control_mean = out.control_mean + sign * m if out.control_mean is not None else None
    effect = out.effect - sign * m
    ci = (out.ci[0] - sign * m, out.ci[1] - sign * m) if out.ci else None
    what = "worse" if sign > 0 else "larger"
    note = _join(f"non-inferiority margin {m:g}: H1 = treatment not {what} than the control by ≥ {m:g}", out.note)
    return dataclasses.replace(out, control_mean=control_mean, effect=effect, ci=ci, note=note)


@TESTS.register("max_equals")
def max_equals(treatment: ValuesBySeed, control: ValuesBySeed | None, params: ClaimParams) -> ClaimOutcome:
    """Deterministic check: every treatment seed satisfies the threshold; the control is shown only."""
    if params.threshold is None:
        raise ValueError("max_equals needs a threshold (op, value)")
    op, bound = params.threshold
    control = control or {}
    t_mean, c_mean = _mean(list(treatment.values())), _mean(list(control.values()))
    effect = t_mean - c_mean if t_mean is not None and c_mean is not None else None
    n_t, n_c = len(treatment), len(control)
    if n_t < params.min_seeds:
        note = f"need ≥{params.min_seeds} treatment seeds, have {n_t}"
        return ClaimOutcome(n_t, n_c, t_mean, c_mean, effect, None, None, "insufficient seeds", note)
    failing = sorted(s for s, v in treatment.items() if not satisfies(v, op, bound))
    note = f"treatment must satisfy value {op} {bound:g} on every seed"
    if control:
        held = sum(satisfies(v, op, bound) for v in control.values())
        note = _join(note, f"control satisfies it on {held}/{n_c} seeds")
    if failing:
        shown = ", ".join(f"seed {s}: {treatment[s]:.4g}" for s in failing)
        return ClaimOutcome(
            n_t, n_c, t_mean, c_mean, effect, None, None, "not reproduced", _join(note, f"fails on {shown}")
        )
    return ClaimOutcome(n_t, n_c, t_mean, c_mean, effect, None, None, "reproduced", note)


# --- reducing a metrics.jsonl curve to one number per seed ---------------------------------

Reducer = Callable[[Sequence[float], float], float]
REDUCERS: Registry[Reducer] = Registry("metric reduce")


@REDUCERS.register("mean_last")
def mean_last(values: Sequence[float], frac: float) -> float:
    """Mean over the last `frac` of the steps (at least one step)."""
    n = max(1, math.ceil(frac * len(values)))
    return float(np.mean(values[-n:]))


@REDUCERS.register("growth")
def growth(values: Sequence[float], frac: float) -> float:
    """Mean over the last `frac` of the steps minus the mean over the first `frac` (e.g. length drift)."""
    n = max(1, math.ceil(frac * len(values)))
    return float(np.mean(values[-n:]) - np.mean(values[:n]))


@REDUCERS.register("mean_first")
def mean_first(values: Sequence[float], frac: float) -> float:
    """Mean over the first `frac` of the steps (at least one step): e.g. an averaged iterate's lag early on."""
    n = max(1, math.ceil(frac * len(values)))
    return float(np.mean(values[:n]))


@REDUCERS.register("fluctuation")
def fluctuation(values: Sequence[float], frac: float) -> float:
    """Standard deviation of the step-to-step changes over the last `frac` of the steps (at least three points,
    else NaN: no value for the seed): the noise of a curve without its trend (BEMA's variance claim)."""
    n = max(3, math.ceil(frac * len(values)))
    tail = np.asarray(values[-n:], dtype=float)  # [n]
    return float(np.std(np.diff(tail), ddof=1)) if len(tail) >= 3 else math.nan


@REDUCERS.register("sigmoid_asymptote")
def sigmoid_asymptote(values: Sequence[float], frac: float) -> float:
    """ScaleRL's fitted asymptote A of R(C) with C = optimizer steps (repro/report/scaling_fit.py).

    The first `frac` of the steps is the warm-up the paper leaves out of the fit; R₀ is its mean
    (one noisy first step would otherwise pin the curve's start).
    """
    from repro.report.scaling_fit import fit_sigmoid

    n = max(1, math.ceil(frac * len(values)))
    steps = np.arange(1, len(values) + 1, dtype=float)  # [n_steps]
    return fit_sigmoid(steps, np.asarray(values, dtype=float), R0=float(np.mean(values[:n])), fit_from=float(n)).A


REDUCERS.add("last", lambda values, frac: float(values[-1]))
REDUCERS.add("max", lambda values, frac: float(np.max(values)))
REDUCERS.add("min", lambda values, frac: float(np.min(values)))
REDUCERS.add("mean", lambda values, frac: float(np.mean(values)))


# --- helpers -------------------------------------------------------------------------------


def _as_array(values: Sequence[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=float)


def _need_two(t: np.ndarray, c: np.ndarray) -> None:
    if len(t) < 2 or len(c) < 2:
        raise ValueError(f"need at least 2 values per group, got {len(t)} and {len(c)}")


def _negligible(spread: float, *groups: np.ndarray) -> bool:
    """A spread at the level of float rounding of the values (0.6 − 0.5 vs 0.7 − 0.6) is no spread."""
    scale = max(float(np.max(np.abs(g))) for g in groups)
    return spread <= SPREAD_RTOL * scale


def _no_spread(effect: float) -> DifferenceStats:
    """No spread to estimate noise from: no p-value, a point CI (judge_difference decides what that means)."""
    return DifferenceStats(effect, (effect, effect), math.nan, math.nan, None, None, no_spread=True)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
