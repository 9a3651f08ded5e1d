"""Strict loading of targets.yaml and paper.yaml: every error names the file and the key path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from repro.report.targets import BASE_MODEL, TargetsError, load_paper_meta, load_targets

VARIANTS = ["naive_grpo", "overlong_filtering", "clip_higher", "dapo"]

TARGETS: dict[str, Any] = {
    "paper": "dapo",
    "targets": [
        {
            "id": "aime24_dapo",
            "variant": "dapo",
            "description": "Full DAPO on Qwen2.5-32B base",
            "model": "Qwen2.5-32B",
            "benchmark": "aime24",
            "protocol": {"metric": "avg@k", "k": 32, "temperature": 1.0, "top_p": 0.7, "max_tokens": 20480},
            "value": 50,
            "unit": "percent",
            "baseline": {"name": "DeepSeek-R1-Zero-Qwen-32B", "value": 47.0},
            "source": {"table": "Table 1", "arxiv": "2503.14476v1", "section": "4.2"},
            "tolerance": 3.0,
            "tier": "paper",
        }
    ],
    "claims": [
        {
            "id": "clip_higher_entropy",
            "statement": "Clip-higher keeps policy entropy above symmetric clipping",
            "source": "DAPO §3.1, Fig. 2b",
            "treatment": "clip_higher",
            "control": "overlong_filtering",
            "metric": {"file": "metrics", "name": "entropy", "reduce": "mean_last", "frac": 0.5},
            "direction": "greater",
            "test": "welch_t",
            "alpha": 0.05,
            "min_effect": 0.0,
            "min_seeds": 3,
            "kind": "mechanism",
        },
        {
            "id": "no_zero_std_updates",
            "statement": "Dynamic sampling leaves no zero-variance group in an update",
            "source": "DAPO §3.3",
            "treatment": "dapo",
            "metric": {"file": "metrics", "name": "frac_zero_std_update", "reduce": "max"},
            "test": "max_equals",
            "threshold": {"op": "==", "value": 0},
            "kind": "premise",
        },
        {
            "id": "beats_base",
            "statement": "RL improves on the warm start",
            "source": "DAPO Fig. 1",
            "treatment": "dapo",
            "control": "base_model",
            "metric": {"file": "eval", "name": "sampled_accuracy"},
            "direction": "greater",
            "test": "paired_t",
            "kind": "premise",
        },
    ],
}

PAPER: dict[str, Any] = {
    "id": "dapo",
    "title": "DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
    "arxiv": "2503.14476v1",
    "family": "grpo",
    "variants": VARIANTS,
    "default_variant": "dapo",
    "ablation": {
        "title": "Progressive techniques",
        "source": "Table 1",
        "metric": "AIME24 avg@32",
        "rows": [{"variant": "naive_grpo", "label": "Naive GRPO", "published": 30}],
    },
    "settings_table": [{"key": "optim.lr", "paper": 1.0e-6, "source": "§4.1"}],
}


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def targets_error(tmp_path: Path, data: dict[str, Any]) -> str:
    with pytest.raises(TargetsError) as info:
        load_targets(write(tmp_path, "targets.yaml", data), VARIANTS)
    message = str(info.value)
    assert "targets.yaml" in message
    return message


def edited(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(TARGETS)
    change(data)
    return data


def test_valid_targets_load(tmp_path: Path) -> None:
    loaded = load_targets(write(tmp_path, "targets.yaml", TARGETS), VARIANTS)
    target = loaded.targets[0]
    assert loaded.paper == "dapo"
    assert (target.value, target.tolerance, target.tier) == (50.0, 3.0, "paper")
    assert target.protocol.as_dict() == TARGETS["targets"][0]["protocol"]
    assert target.baseline is not None and target.baseline.value == 47.0
    assert "Table 1" in target.source.describe() and "2503.14476v1" in target.source.describe()
    entropy, zero_std, base = loaded.claims
    assert entropy.params().direction == "greater" and entropy.metric.describe().startswith("entropy")
    assert zero_std.threshold == ("==", 0.0) and zero_std.control is None
    assert base.control == BASE_MODEL and base.min_seeds == 3 and base.alpha == 0.05
    assert loaded.references == ()  # optional
    assert [c.kind for c in loaded.claims] == ["mechanism", "premise", "premise"]
    assert loaded.no_mechanism_test == {}


def test_no_mechanism_test_and_unverified_sources_load(tmp_path: Path) -> None:
    data = edited(lambda d: d["claims"][0].update(kind="premise"))
    data["no_mechanism_test"] = {"smoke": "the toy task has no length variance to filter"}
    data["targets"][0]["source"] = {"arxiv": "2503.14476v1", "unverified": True, "note": "seen on a blog"}
    loaded = load_targets(write(tmp_path, "targets.yaml", data), VARIANTS)
    assert loaded.no_mechanism_test == {"smoke": "the toy task has no length variance to filter"}
    assert loaded.targets[0].source.describe().startswith("UNVERIFIED (seen on a blog)")


def test_references_load_and_are_checked(tmp_path: Path) -> None:
    ref = {"id": "a_fit", "model": "8B dense", "metric": "fitted asymptote A", "value": 0.61,
           "source": {"arxiv": "2510.13786v1", "figure": "Fig. 5b"}, "why_not_run": "Polaris held-out split"}  # fmt: skip
    loaded = load_targets(write(tmp_path, "targets.yaml", {**TARGETS, "references": [ref]}), VARIANTS)
    (got,) = loaded.references
    assert (got.value, got.baseline, got.source.describe()) == ("0.61", "", "Fig. 5b, arXiv 2510.13786v1")
    message = targets_error(tmp_path, {**TARGETS, "references": [{**ref, "why": "x"}]})
    assert "references[0]" in message and "why" in message
    message = targets_error(tmp_path, {**TARGETS, "references": [ref, ref]})
    assert "a_fit" in message


def test_typo_key_names_path_and_suggests_fix(tmp_path: Path) -> None:
    message = targets_error(
        tmp_path, edited(lambda d: d["targets"][0].update(tolerence=d["targets"][0].pop("tolerance")))
    )
    assert "targets[0].tolerence" in message
    assert "Did you mean 'tolerance'" in message


def test_nested_typo_key(tmp_path: Path) -> None:
    message = targets_error(tmp_path, edited(lambda d: d["targets"][0]["protocol"].update(temprature=1.0)))
    assert "targets[0].protocol.temprature" in message and "'temperature'" in message


def test_missing_required_key(tmp_path: Path) -> None:
    message = targets_error(tmp_path, edited(lambda d: d["targets"][0].pop("value")))
    assert "targets[0]" in message and "missing required key `value`" in message


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (lambda d: d["targets"][0].update(value="fifty"), "targets[0].value", "expected"),
        (lambda d: d["claims"][0].update(min_seeds=True), "claims[0].min_seeds", "an integer"),
        (lambda d: d["targets"][0].update(tier="papr"), "targets[0].tier", "'paper'"),
        (lambda d: d["claims"][0].update(treatment="clip_hihger"), "claims[0].treatment", "'clip_higher'"),
        (lambda d: d["claims"][0].update(test="welch"), "claims[0].test", "'welch_t'"),
        (lambda d: d["claims"][0].update(test="noninferiority_welch"), "claims[0]", "margin_of_control_gain"),
        (lambda d: d["claims"][2].update(kind="mechanism"), "claims[2].control", "kind: premise"),
        (lambda d: d["claims"][1].update(kind="mechanism"), "claims[1].control", "placebo"),
        (lambda d: d["claims"][0].pop("kind"), "claims[0]", "`kind`"),
        (lambda d: d["claims"][0].update(kind="mechanim"), "claims[0].kind", "'mechanism'"),
        (lambda d: d["claims"][2].update(requires=["beats_base"]), "claims[2].requires", "only a mechanism"),
        (lambda d: d["claims"][0].update(requires=["beats_bse"]), "claims[0].requires", "'beats_base'"),
        (lambda d: d["claims"][0].update(requires=["clip_higher_entropy"]), "claims[0].requires", "premise"),
        (lambda d: d["claims"][0].update(paired_with="beats_base"), "claims[0].paired_with", "noninferiority"),
        (
            lambda d: d["claims"][0].update(test="noninferiority_welch", margin_of_control_gain=0.25),
            "claims[0].metric",
            "file: eval",
        ),
        (
            lambda d: d["claims"][0].update(
                test="noninferiority_welch", margin_of_control_gain=0.25, metric={"file": "eval", "name": "x"}
            ),
            "claims[0]",
            "paired_with",
        ),
        (
            lambda d: d["claims"][0].update(
                test="noninferiority_welch", margin_of_control_gain=0.5, paired_with="clip_higher_entropy"
            ),
            "claims[0].margin_of_control_gain",
            "half",
        ),
        (
            lambda d: d["claims"][0].update(
                test="noninferiority_welch",
                margin_of_control_gain=0.25,
                paired_with="clip_higher_entropy",
                metric={"file": "eval", "name": "sampled_accuracy"},
            ),
            "claims[0].paired_with",
            "mechanism claim",
        ),
        (lambda d: d["claims"][0].update(kind="premise"), "claims", "no_mechanism_test"),
        (
            lambda d: d.update(no_mechanism_test={"smok": "tiny model"}),
            "no_mechanism_test",
            "'smoke'",
        ),
        (lambda d: d["targets"][0]["source"].update(unverified=True), "targets[0].source", "note"),
        (lambda d: d["claims"][0].update(control="clip_higher"), "claims[0].control", "control_metric"),
        (
            lambda d: d["claims"][2].update(control_metric={"file": "eval", "name": "greedy_accuracy"}),
            "claims[2].control_metric",
            "needs a variant",
        ),
        (lambda d: d["claims"][0]["metric"].update(reduce="mean_lst"), "claims[0].metric.reduce", "'mean_last'"),
        (lambda d: d["claims"][1].pop("threshold"), "claims[1]", "threshold"),
        (lambda d: d["claims"][0].update(threshold={"op": "==", "value": 0}), "claims[0].threshold", "max_equals"),
        (
            lambda d: d["claims"][2].update(metric={"file": "metrics", "name": "x", "reduce": "max"}),
            "claims[2].control",
            "file: eval",
        ),
        (lambda d: d["claims"][0].pop("control"), "claims[0]", "control"),
        (lambda d: d["claims"][0].update(alpha=1.5), "claims[0].alpha", "(0, 1)"),
        (lambda d: d["targets"][0]["source"].pop("arxiv"), "targets[0].source", "arxiv"),
        (lambda d: d["claims"].append(copy.deepcopy(d["claims"][0])), "claims", "appears twice"),
    ],
)
def test_invalid_entries_are_rejected(tmp_path: Path, change: Any, path: str, words: str) -> None:
    message = targets_error(tmp_path, edited(change))
    assert f"{path}:" in message or f"{path} " in message, message
    assert words in message, message


def test_top_level_and_yaml_errors(tmp_path: Path) -> None:
    assert "targets" in targets_error(tmp_path, {"paper": "dapo", "claims": []})
    bad = tmp_path / "targets.yaml"
    bad.write_text("paper: [unclosed", encoding="utf-8")
    with pytest.raises(TargetsError, match="not valid YAML"):
        load_targets(bad, VARIANTS)


def test_paper_meta_loads(tmp_path: Path) -> None:
    write(tmp_path, "paper.yaml", PAPER)
    meta = load_paper_meta(tmp_path)
    assert meta.variants == tuple(VARIANTS) and meta.default_variant == "dapo"
    assert meta.link == "https://arxiv.org/abs/2503.14476v1"
    assert meta.ablation is not None and meta.ablation.rows[0].published == 30.0
    assert meta.ablation.unit == "percent" and meta.ablation.ours_metric == "sampled_accuracy"
    assert meta.settings_table[0].key == "optim.lr"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(default_variant="dap"), "default_variant"),
        (lambda d: d.update(varaints=d.pop("variants")), "Did you mean 'variants'"),
        (lambda d: d.pop("arxiv"), "`arxiv`"),
        (lambda d: d["ablation"]["rows"][0].update(variant="grpo"), "ablation.rows[0].variant"),
        (lambda d: d["settings_table"][0].pop("source"), "settings_table[0]"),
        (lambda d: d.update(scaling_fit={"metric": "accuracy", "source": "x", "warmup_frac": 0.6}), "warmup_frac"),
        (lambda d: d.update(scaling_fit={"metric": "accuracy"}), "scaling_fit: missing required key `source`"),
    ],
)
def test_invalid_paper_yaml(tmp_path: Path, change: Any, words: str) -> None:
    data = copy.deepcopy(PAPER)
    change(data)
    write(tmp_path, "paper.yaml", data)
    with pytest.raises(TargetsError) as info:
        load_paper_meta(tmp_path)
    assert "paper.yaml" in str(info.value) and words in str(info.value)
