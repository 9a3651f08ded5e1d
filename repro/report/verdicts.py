"""Claim verdicts of one paper from its runs: the test, its placebo, the claim's kind and what gates it.

Each claim is tested on one number per seed (repro/report/claims.py). Then, in this order:

1. **Invalid runs.** A run whose metric holds a non-finite value (NaN, ±inf; a JSON null means "not
   applicable" and is skipped) is invalid for the claim: it is left out of the test and named with its step.
   A threshold claim fails on it; a two-group claim with an invalid run cannot read "reproduced".
2. **Placebo.** The same test with the treatment's values replaced by the control's: control against control
   (a non-inferiority claim keeps its margin), or the control's values against a threshold. A claim whose
   placebo passes as well does not discriminate: it reads "does not discriminate", never "reproduced".
3. **Non-inferiority margins** are a share (< ½) of the control's own gain over the starting model, measured
   on the same runs (eval.json against its `base` scores).
4. **Kinds.** A premise (the task has headroom, the mismatch exists, training moves the policy) reads "holds" /
   "fails". A mechanism claim whose premises do not hold is "not testable". A non-inferiority claim passes its
   own placebo by construction; it is a mechanism claim only beside a paired claim on the mechanism's direct
   effect, and reads "does not discriminate" when it passes while that partner did not reproduce.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from repro.report.claims import REDUCERS, TESTS, VERDICTS, ClaimOutcome, ClaimParams
from repro.report.targets import BASE_MODEL, Claim, ClaimMetric, Targets

PASSED = "reproduced"  # what a test returns when its claim passes
DOES_NOT_DISCRIMINATE = "does not discriminate"
NOT_TESTABLE = "not testable"
PREMISE_WORDS = {"reproduced": "holds", "not reproduced": "fails"}  # a premise's verdicts; the rest read alike
MECHANISM_VERDICTS = (*VERDICTS, DOES_NOT_DISCRIMINATE, NOT_TESTABLE)  # a test's verdicts, then the claim's
PREMISE_VERDICTS = ("holds", "fails", "inconclusive", "insufficient seeds", DOES_NOT_DISCRIMINATE)


@dataclass
class SeedValues:
    """One number per seed for a claim, and the seeds whose run is invalid for it (seed -> why)."""

    by_seed: dict[int, float] = field(default_factory=dict)
    invalid: dict[int, str] = field(default_factory=dict)


def lookup(mapping: Any, dotted: str) -> Any:
    """`mapping["a"]["b"]` for "a.b"; None where any step is missing."""
    node = mapping
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def finite_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def seed_values(runs: Sequence[Any], metric: ClaimMetric, base: bool = False) -> SeedValues:
    """Each run's number for `metric` (eval.json, its `base` scores, or a reduced metrics.jsonl curve)."""
    out = SeedValues()
    for run in runs:
        if metric.file == "eval":
            raw = lookup(lookup(run.eval, "base") if base else run.eval, metric.name)
            where = f"eval.json {'base.' if base else ''}{metric.name} is {raw}"
            if _is_non_finite(raw):
                out.invalid[run.seed] = where
            elif (value := finite_or_none(raw)) is not None:
                out.by_seed[run.seed] = value
            continue
        curve = []
        for row in run.metrics:
            raw = row.get(metric.name)
            if _is_non_finite(raw):
                out.invalid[run.seed] = f"{metric.name} is {raw} at step {row.get('step', '?')}"
                break
            if (value := finite_or_none(raw)) is not None:
                curve.append(value)
        if run.seed in out.invalid or not curve:
            continue
        reduced = finite_or_none(REDUCERS.get(metric.reduce or "mean")(curve, metric.frac))  # NaN: too short a curve
        if reduced is not None:
            out.by_seed[run.seed] = reduced
    return out


# --- one claim ------------------------------------------------------------------------------


def claim_rows(targets: Targets, runs: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """compare.json "claims": every claim tested, its placebo beside it, then gated by kind."""
    rows = [claim_row(claim, runs) for claim in targets.claims]
    by_id = {row["id"]: row for row in rows}
    premises = [c.id for c in targets.claims if c.kind == "premise"]
    order = sorted(targets.claims, key=lambda c: c.paired_with is not None)  # partners are settled first
    for claim in order:
        row = by_id[claim.id]
        if claim.paired_with is not None:
            _judge_with_partner(row, by_id[claim.paired_with])
        if claim.kind != "mechanism" or row["verdict"] in (DOES_NOT_DISCRIMINATE, "insufficient seeds"):
            continue
        blocking = [p for p in (claim.requires if claim.requires is not None else premises)
                    if by_id[p]["verdict"] != "holds"]  # fmt: skip
        if blocking:
            why = by_id[blocking[0]]["verdict"]
            why = f"premise {blocking[0]} {'failed' if why == 'fails' else why}"
            row.update(verdict=NOT_TESTABLE, gated_by=blocking[0], note=_join(f"{NOT_TESTABLE}: {why}", row["note"]))
    return rows


def _judge_with_partner(row: dict[str, Any], partner: dict[str, Any]) -> None:
    """A non-inferiority claim passes its own placebo by construction (the control is not worse than itself), so it
    discriminates only through its partner on the mechanism's direct effect: its placebo passes when both placebos
    do, and a pass reads "reproduced" only when the partner reproduced."""
    placebo = row["placebo"]
    if placebo is not None:
        placebo["passes"] = bool(placebo["passes"] and (partner["placebo"] or {}).get("passes"))
        placebo["note"] = _join(placebo["note"], f"judged with its paired claim {partner['id']}")
    if row["test_verdict"] == PASSED and partner["verdict"] != PASSED:
        row["verdict"] = DOES_NOT_DISCRIMINATE
        row["gated_by"] = partner["id"]
        row["note"] = _join(
            f"passes, as the control would in its place; its paired claim {partner['id']} reads "
            f"{partner['verdict']}, so nothing shows the mechanism acted",
            row["note"],
        )


def claim_row(claim: Claim, runs: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """One claim's test, placebo and verdict in its kind's words (before gating by premises)."""
    treatment = seed_values(runs[claim.treatment], claim.metric)
    control = _control_values(claim, runs)
    params, margin_note = _params(claim, runs, control)
    outcome = _test(claim, treatment.by_seed, control, params)
    placebo = _placebo(claim, control, params)
    invalid = {f"{claim.treatment}/seed{s}": why for s, why in sorted(treatment.invalid.items())}
    if control is not None:
        name = claim.treatment if claim.control == BASE_MODEL else claim.control
        invalid.update({f"{name}/seed{s}": why for s, why in sorted(control.invalid.items())})
    verdict, notes = outcome.verdict, [margin_note, outcome.note]
    if treatment.invalid and claim.test == "max_equals":
        verdict = "not reproduced"  # every seed must satisfy the threshold; a diverged one does not
    if invalid:
        notes.append("invalid run(s), left out: " + "; ".join(f"{k}: {v}" for k, v in invalid.items()))
        if verdict == PASSED and claim.test != "max_equals":
            verdict = "inconclusive"
            notes.append("not counted as reproduced while a run is invalid")
    missing = len(runs[claim.treatment]) - len(treatment.by_seed) - len(treatment.invalid)
    if missing:
        notes.append(f"{missing} treatment run(s) without a value")
    test_verdict = verdict
    alone = claim.paired_with is None  # a paired non-inferiority claim is judged with its partner (claim_rows)
    if alone and verdict == PASSED and placebo is not None and placebo["passes"]:
        verdict = DOES_NOT_DISCRIMINATE
        notes.append("its placebo (the control in the treatment's place) passes too")
    if claim.kind == "premise":
        verdict = PREMISE_WORDS.get(verdict, verdict)
    return {
        "id": claim.id,
        "kind": claim.kind,
        "statement": claim.statement,
        "source": claim.source,
        "treatment": claim.treatment,
        "control": claim.control,
        "metric": claim.metric.describe() + (f" vs {claim.control_metric.describe()}" if claim.control_metric else ""),
        "test": claim.test,
        "direction": claim.direction,
        "threshold": list(claim.threshold) if claim.threshold else None,
        "alpha": claim.alpha,
        "min_effect": params.min_effect,
        "deterministic": claim.deterministic,
        "n_treatment": outcome.n_treatment,
        "n_control": outcome.n_control,
        "treatment_mean": outcome.treatment_mean,
        "control_mean": outcome.control_mean,
        "effect": outcome.effect,
        "ci": list(outcome.ci) if outcome.ci else None,
        "p_value": outcome.p_value,
        "test_verdict": test_verdict,
        "verdict": verdict,
        "placebo": placebo,
        "invalid_runs": invalid,
        "gated_by": None,
        "note": _join(*notes),
    }


def _control_values(claim: Claim, runs: Mapping[str, Sequence[Any]]) -> SeedValues | None:
    if claim.control == BASE_MODEL:
        return seed_values(runs[claim.treatment], claim.metric, base=True)
    if claim.control is None:
        return None
    return seed_values(runs[claim.control], claim.control_metric or claim.metric)


def _test(claim: Claim, treatment: dict[int, float], control: SeedValues | None, params: ClaimParams) -> ClaimOutcome:
    if claim.test == "noninferiority_welch" and not params.min_effect > 0:  # no margin could be set
        n_c = len(control.by_seed) if control else 0
        return ClaimOutcome(len(treatment), n_c, None, None, None, None, None, "inconclusive")
    return TESTS.get(claim.test)(treatment, control.by_seed if control else None, params)


def _placebo(claim: Claim, control: SeedValues | None, params: ClaimParams) -> dict[str, Any] | None:
    """The claim's test with the control's values in the treatment's place; None without a control."""
    if control is None:
        return None
    values = control.by_seed
    out = _test(claim, values, None if claim.test == "max_equals" else control, params)
    return {
        "treatment_mean": out.treatment_mean,
        "control_mean": out.control_mean if claim.test != "max_equals" else None,
        "effect": out.effect,
        "ci": list(out.ci) if out.ci else None,
        "p_value": out.p_value,
        "test_verdict": out.verdict,
        "passes": out.verdict == PASSED,
        "note": out.note,
    }


def _params(claim: Claim, runs: Mapping[str, Sequence[Any]], control: SeedValues | None) -> tuple[ClaimParams, str]:
    """The claim's test parameters; a non-inferiority margin stated as a share of the control's own gain over the
    starting model becomes an absolute margin here (0 when there is no gain to take a share of)."""
    params = claim.params()
    share = claim.margin_of_control_gain
    if share is None or control is None or claim.control == BASE_MODEL:
        return params, ""
    trained = control.by_seed  # the control's trained scores, as the test reads them
    start = seed_values(runs[claim.control], claim.metric, base=True).by_seed
    shared = sorted(set(trained) & set(start))
    if not shared:
        return dataclasses.replace(params, min_effect=0.0), (
            f"no margin: the control's runs have no eval.json base {claim.metric.name} to measure its gain from"
        )
    sign = 1.0 if claim.direction == "greater" else -1.0
    gain = sign * sum(trained[s] - start[s] for s in shared) / len(shared)  # the control's own effect
    if gain <= 0:
        return dataclasses.replace(params, min_effect=0.0), (
            f"no margin: the control gained {gain:.3g} over the starting model, so non-inferiority to it says nothing"
        )
    margin = share * gain
    return dataclasses.replace(params, min_effect=margin), (
        f"margin {margin:.3g} = {share:g} × the control's own gain {gain:.3g} over the starting model"
    )


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# --- a paper's summary ---------------------------------------------------------------------


def discriminates(claim: dict[str, Any]) -> bool:
    """The claim's placebo was tested and did not pass (too few seeds tells nothing either way)."""
    placebo = claim.get("placebo") or {}
    return placebo.get("test_verdict") not in (None, "insufficient seeds") and not placebo.get("passes")


def vacuous(claim: dict[str, Any]) -> bool:
    """The claim's placebo passes: put the control in the treatment's place and it still "reproduces"."""
    return bool((claim.get("placebo") or {}).get("passes"))


def mechanism_summary(claims: Sequence[dict[str, Any]], no_mechanism_test: str | None) -> dict[str, Any]:
    """What the catalog shows of a paper's claims at one tier: mechanism verdicts apart from premises."""
    mechanism = [c for c in claims if c.get("kind", "mechanism") == "mechanism"]
    discriminating = [c for c in mechanism if discriminates(c)]
    return {
        "mechanism": len(mechanism),
        "reproduced": sum(c.get("verdict") == PASSED for c in mechanism),
        "discriminating": len(discriminating),
        "vacuous": sum(vacuous(c) for c in mechanism),
        "premises": {c["id"]: c.get("verdict") for c in claims if c.get("kind") == "premise"},
        "declared": no_mechanism_test is not None,
        # declared in targets.yaml for this tier, or none of its mechanism claims discriminates
        "no_mechanism_test": no_mechanism_test or (None if discriminating else "no discriminating mechanism claim"),
    }
