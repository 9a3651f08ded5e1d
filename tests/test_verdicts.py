"""Claim verdicts from runs: placebos, kinds, premises, non-inferiority margins and invalid runs, on planted data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from repro.report.compare import RunData
from repro.report.targets import load_targets
from repro.report.verdicts import claim_rows, mechanism_summary

VARIANTS = ["method", "control", "twin"]  # twin: the control under another name (identical numbers)
SCORE = {"file": "eval", "name": "score"}
SHARE = {"file": "metrics", "name": "share", "reduce": "max"}


def claim(cid: str, treatment: str, control: str | None, metric: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out = {"id": cid, "statement": cid, "source": "§1", "treatment": treatment, "metric": metric, **extra}
    return {**out, "control": control} if control else out


def runs(
    scores: dict[str, list[float]], shares: dict[str, list[float]] | None = None, base: float = 0.2
) -> dict[str, list[RunData]]:
    """Three seeds per variant: eval.json `score` (its base score `base`) and a metrics curve `share`."""
    out: dict[str, list[RunData]] = {}
    for variant, values in scores.items():
        out[variant] = []
        for seed, value in enumerate(values):
            curve = (shares or {}).get(variant, [0.0] * len(values))
            metrics = [{"step": step, "share": curve[seed]} for step in range(4)]
            evaluation = {"score": value, "base": {"score": base + 0.001 * seed}}
            out[variant].append(RunData(variant, seed, Path(f"/runs/{variant}/seed{seed}"), {}, metrics, evaluation))
    return out


def rows(tmp_path: Path, claims: list[dict[str, Any]], data: dict[str, list[RunData]], **top: Any) -> dict[str, Any]:
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"paper": "p", "targets": [], "claims": claims, **top}), encoding="utf-8")
    return {r["id"]: r for r in claim_rows(load_targets(path, VARIANTS), data)}


METHOD = [0.60, 0.62, 0.61]
CONTROL = [0.40, 0.42, 0.41]
LIFT = claim("lift", "method", "control", SCORE, kind="mechanism", direction="greater", test="welch_t")


def test_a_threshold_the_control_meets_too_does_not_discriminate(tmp_path: Path) -> None:
    """Planted: the metric is identical for treatment and control; the threshold holds for both."""
    share = claim("share_zero", "method", "twin", SHARE, kind="mechanism", test="max_equals",
                  threshold={"op": "==", "value": 0.0})  # fmt: skip
    got = rows(tmp_path, [share], runs({"method": METHOD, "twin": METHOD}))["share_zero"]
    assert got["test_verdict"] == "reproduced" and got["verdict"] == "does not discriminate"
    assert got["placebo"]["passes"] and got["placebo"]["treatment_mean"] == 0.0
    # the same claim against a control that fails the threshold discriminates
    data = runs({"method": METHOD, "twin": CONTROL}, shares={"twin": [0.25, 0.5, 0.25]})
    got = rows(tmp_path, [share], data)["share_zero"]
    assert got["verdict"] == "reproduced" and got["placebo"]["test_verdict"] == "not reproduced"
    assert mechanism_summary([got], None)["discriminating"] == 1


def test_noninferiority_with_treatment_equal_to_control_does_not_discriminate(tmp_path: Path) -> None:
    """Planted: the treatment's numbers are the control's, on both the non-inferiority metric and the paired claim
    on the mechanism's direct effect; then the same non-inferiority claim where the mechanism did act."""
    direct = claim("direct", "twin", "control", SHARE, kind="mechanism", direction="less", test="welch_t")
    equal = claim("not_worse", "twin", "control", SCORE, kind="mechanism", direction="greater",
                  test="noninferiority_welch", margin_of_control_gain=0.4, paired_with="direct")  # fmt: skip
    shares = {"control": [0.5, 0.55, 0.52], "twin": [0.5, 0.55, 0.52], "method": [0.1, 0.12, 0.11]}
    got = rows(tmp_path, [direct, equal], runs({"control": CONTROL, "twin": CONTROL}, shares))
    assert got["direct"]["verdict"] == "inconclusive"
    assert got["not_worse"]["test_verdict"] == "reproduced" and got["not_worse"]["verdict"] == "does not discriminate"
    assert got["not_worse"]["gated_by"] == "direct"
    # margin: 0.4 × the control's own gain over its starting model (0.41 − 0.201 on average)
    assert got["not_worse"]["min_effect"] == pytest.approx(0.4 * (0.41 - 0.201))
    # the mechanism acted (the share fell) and the score held: reproduced, and the pair's placebo fails
    acted = [{**direct, "treatment": "method"}, {**equal, "treatment": "method"}]
    got = rows(tmp_path, acted, runs({"control": CONTROL, "method": CONTROL}, shares))
    assert got["direct"]["verdict"] == "reproduced" and got["not_worse"]["verdict"] == "reproduced"
    assert not got["not_worse"]["placebo"]["passes"]
    summary = mechanism_summary(list(got.values()), None)
    assert (summary["mechanism"], summary["discriminating"], summary["vacuous"]) == (2, 2, 0)


def test_identical_groups_never_pass_and_their_placebo_is_shown(tmp_path: Path) -> None:
    got = rows(tmp_path, [{**LIFT, "control": "twin"}], runs({"method": CONTROL, "twin": CONTROL}))["lift"]
    assert got["verdict"] == "inconclusive" and got["placebo"]["effect"] == 0.0
    assert got["placebo"]["test_verdict"] == "inconclusive"


def test_a_failed_premise_makes_mechanism_claims_not_testable(tmp_path: Path) -> None:
    moves = claim("moves", "control", "base_model", SCORE, kind="premise", direction="greater", test="paired_t")
    scoped = {**LIFT, "id": "scoped", "requires": []}
    data = runs({"method": METHOD, "control": CONTROL}, base=0.9)  # training lowered the control's score
    got = rows(tmp_path, [LIFT, scoped, moves], data)
    assert got["moves"]["verdict"] == "fails"
    assert got["lift"]["test_verdict"] == "reproduced" and got["lift"]["verdict"] == "not testable"
    assert got["lift"]["gated_by"] == "moves" and "premise moves failed" in got["lift"]["note"]
    assert got["scoped"]["verdict"] == "reproduced"  # `requires: []`: no premise gates it
    held = rows(tmp_path, [LIFT, moves], runs({"method": METHOD, "control": CONTROL}, base=0.1))
    assert (held["moves"]["verdict"], held["lift"]["verdict"]) == ("holds", "reproduced")


def test_noninferiority_needs_a_control_gain(tmp_path: Path) -> None:
    direct = claim("direct", "method", "control", SHARE, kind="mechanism", direction="less", test="welch_t")
    close = claim("close", "method", "control", SCORE, kind="mechanism", direction="greater",
                  test="noninferiority_welch", margin_of_control_gain=0.25, paired_with="direct")  # fmt: skip
    no_gain = rows(tmp_path, [direct, close], runs({"method": CONTROL, "control": CONTROL}, base=0.5))["close"]
    assert "no margin" in no_gain["note"] and no_gain["test_verdict"] == "inconclusive"


def test_a_non_finite_step_makes_the_run_invalid_and_is_named(tmp_path: Path) -> None:
    share = claim("share_low", "method", "control", SHARE, kind="mechanism", test="max_equals",
                  threshold={"op": "<", "value": 0.2})  # fmt: skip
    data = runs({"method": METHOD, "control": CONTROL}, shares={"control": [0.5, 0.5, 0.5]})
    data["method"][1].metrics[2]["share"] = math.nan  # the other steps of seed 1 are fine
    got = rows(tmp_path, [share], data)["share_low"]
    assert got["verdict"] == "not reproduced"  # dropping the NaN step would have passed
    assert got["invalid_runs"] == {"method/seed1": "share is nan at step 2"}
    assert "method/seed1: share is nan at step 2" in got["note"]
    data = runs({"method": METHOD + [0.63], "control": CONTROL})
    data["method"][3].eval["score"] = math.inf
    lift = rows(tmp_path, [LIFT], data)["lift"]
    assert lift["test_verdict"] == "inconclusive" and lift["n_treatment"] == 3
    assert "not counted as reproduced while a run is invalid" in lift["note"]


def test_summary_names_papers_without_a_mechanism_test(tmp_path: Path) -> None:
    moves = claim("moves", "method", "base_model", SCORE, kind="premise", direction="greater", test="paired_t")
    got = rows(tmp_path, [moves], runs({"method": METHOD}), no_mechanism_test={"smoke": "no headroom"})
    summary = mechanism_summary(list(got.values()), "no headroom")
    assert summary["mechanism"] == 0 and summary["no_mechanism_test"] == "no headroom"
    assert summary["premises"] == {"moves": "holds"} and summary["declared"]
    # a tier declared untestable stays so even where a mechanism claim's placebo fails (robust DPO at β = 0.01)
    lift = rows(tmp_path, [LIFT], runs({"method": METHOD, "control": CONTROL}))
    declared = mechanism_summary(list(lift.values()), "rDPO equals DPO here")
    assert declared["discriminating"] == 1 and declared["no_mechanism_test"] == "rDPO equals DPO here"
    assert mechanism_summary(list(lift.values()), None)["no_mechanism_test"] is None
