"""Verdicts that survive another warm start (issue 26): `--config bases=<n>` builds warm starts 1..n-1 of every
prepared base (seeds shifted), repeats each run on them in its own results folder, and the report marks a claim
whose verdict changes with the warm start as base-sensitive."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from repro import prepare, workflow
from repro.overrides import Overrides
from repro.report.warm_starts import mark_base_sensitive
from repro.warm_starts import rename_prepared, replica_name, split_replica

ROOT = Path(__file__).resolve().parents[1]
BASE_DIR = ROOT / "configs" / "base"


def test_a_warm_start_is_named_from_its_base_and_only_where_the_base_config_exists() -> None:
    assert replica_name("smoke", 0) == "smoke" and replica_name("smoke_pref", 2) == "smoke_pref_s2"
    assert split_replica("smoke_s1", BASE_DIR) == ("smoke", 1)
    assert split_replica("smoke_teacher_s12", BASE_DIR) == ("smoke_teacher", 12)
    assert split_replica("smoke_pref", BASE_DIR) == ("smoke_pref", 0)
    assert split_replica("nosuchbase_s1", BASE_DIR) == ("nosuchbase_s1", 0)  # no nosuchbase.yaml: a name of its own
    assert split_replica("smoke_s0", BASE_DIR) == ("smoke_s0", 0)  # warm start 0 is the base itself


def test_a_warm_start_renames_every_prepared_model_the_run_reads() -> None:
    config = {
        "model": {"name_or_path": "prepared:smoke_pref"},
        "data": {"pairs": "prepared:smoke_pref", "dataset": "synthetic:addition"},
        "train": {"teacher_model_name_or_path": "prepared:smoke_teacher", "loss_weights": [1.0]},
    }
    renamed = rename_prepared(config, 1)
    assert renamed["model"]["name_or_path"] == "prepared:smoke_pref_s1"
    assert renamed["data"] == {"pairs": "prepared:smoke_pref_s1", "dataset": "synthetic:addition"}
    assert renamed["train"]["teacher_model_name_or_path"] == "prepared:smoke_teacher_s1"
    assert rename_prepared(config, 0) is config


def test_warm_start_overrides_label_their_folder_and_travel_with_the_run() -> None:
    one = Overrides.parse(warm_start=1)
    assert one and one.label("smoke") == "smoke@base1" and one.cli_args() == ["--warm-start", "1"]
    assert Overrides.from_record(one.as_record()) == one and one.describe() == "warm_start=1"
    mine = Overrides.parse(model="/ckpt/q", warm_start=1)
    assert mine.label("small") != Overrides.parse(model="/ckpt/q").label("small")  # the hash covers it
    assert Overrides().with_warm_start(0).label("smoke") == "smoke"
    with pytest.raises(ValueError, match="whole number"):
        Overrides.parse(warm_start="-1")


def test_a_warm_start_build_reads_its_base_config_and_the_same_warm_start_of_its_source() -> None:
    base_dir = BASE_DIR
    assert workflow.base_inputs("smoke_s1", base_dir) == [str(base_dir / "smoke.yaml")]
    assert workflow.base_inputs("smoke_pref_s1", base_dir) == [
        str(base_dir / "smoke_pref.yaml"),
        "results/base/smoke_s1/prepare.json",
    ]
    assert workflow.base_inputs("smoke_teacher_s2", base_dir)[1] == "results/base/smoke_s2/prepare.json"
    assert workflow.base_inputs("smoke_teacher", base_dir)[1] == "results/base/smoke/prepare.json"


def test_a_warm_start_draws_other_sft_data_from_the_same_initial_weights_and_keeps_the_test() -> None:
    cfg = prepare.load_base_config(BASE_DIR / "smoke_teacher.yaml")
    two = prepare.shifted(cfg, 2)
    assert (two.model.seed, two.sft.seed) == (cfg.model.seed, cfg.sft.seed + 2)
    assert two.eval == cfg.eval and two.sft.steps == cfg.sft.steps and prepare.shifted(cfg, 0) is cfg


def test_the_prepare_rule_names_a_warm_start_by_its_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The DAG's prepare rule passes configs/base/<name>.yaml for every base; for smoke_s1 that file does not exist
    and means warm start 1 of smoke.yaml."""
    seen: list[tuple[Path, int]] = []
    monkeypatch.setattr(prepare, "_prepare_model", lambda path, out, k=0: seen.append((path, k)) or {})
    prepare.prepare_base(BASE_DIR / "smoke_s1.yaml", tmp_path / "smoke_s1")
    prepare.prepare_base(BASE_DIR / "smoke.yaml", tmp_path / "smoke")
    prepare.prepare_base(BASE_DIR / "smoke.yaml", tmp_path / "x", warm_start=3)
    assert seen == [(BASE_DIR / "smoke.yaml", 1), (BASE_DIR / "smoke.yaml", 0), (BASE_DIR / "smoke.yaml", 3)]


def test_the_dag_with_two_bases_repeats_every_run_on_warm_start_one_and_the_report_reads_both() -> None:
    out = subprocess.run(
        ["snakemake", "-n", "-p", "--forceall", "papers/dpo", "--config", "bases=2", "seeds=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "results/base/smoke_pref_s1/prepare.json" in text and "results/base/smoke_s1/prepare.json" in text
    assert "--out results/dpo/smoke@base1/dpo/seed0" in text and "--warm-start 1" in text
    assert "--expect-model prepared:smoke_pref_s1" in text or "--expect-model prepared:smoke_s1" in text
    assert "--replicas results/dpo/smoke@base1/compare.json" in text
    plain = subprocess.run(["snakemake", "-n", "-p", "--forceall", "papers/dpo", "--config", "seeds=1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "@base1" not in plain.stdout and "--replicas" not in plain.stdout and "--warm-start" not in plain.stdout


def _compare(verdicts: dict[str, str], label: str) -> dict[str, Any]:
    claims = [{"id": cid, "kind": "mechanism", "verdict": v} for cid, v in verdicts.items()]
    return {"paper": "dpo", "tier": "smoke", "label": label, "claims": claims}


def test_a_claim_whose_verdict_changes_with_the_warm_start_is_base_sensitive() -> None:
    main = _compare({"a": "reproduced", "b": "not reproduced", "c": "reproduced"}, "smoke")
    other = _compare({"a": "reproduced", "b": "reproduced", "c": "inconclusive"}, "smoke@base1")
    result = copy.deepcopy(main)
    assert mark_base_sensitive(result, [other]) == ["b", "c"]
    by_id = {c["id"]: c for c in result["claims"]}
    assert by_id["a"]["base_sensitive"] is False and by_id["b"]["verdicts_by_base"] == ["not reproduced", "reproduced"]
    alone = copy.deepcopy(main)
    assert mark_base_sensitive(alone, []) == []  # one warm start: nothing to compare


def test_the_report_marks_base_sensitive_claims_and_tables_them(tmp_path: Path) -> None:
    from repro.report.render import render_report

    paper_dir = ROOT / "papers" / "dpo"
    compare = json.loads(json.dumps(_compare({}, "smoke")))
    compare.update({"default_variant": "dpo", "targets": [], "runs": {}, "provenance": {}})
    verdicts = {"implicit_margin_grows": "reproduced", "gold_reward_up": "reproduced"}
    main, other = _compare(verdicts, "smoke"), _compare({**verdicts, "gold_reward_up": "inconclusive"}, "smoke@base1")
    for c in main["claims"] + other["claims"]:
        c.update({"treatment": "dpo", "control": "sft", "metric": "m", "test": "welch", "statement": "s"})
    (tmp_path / "compare.json").write_text(json.dumps({**compare, **main}), encoding="utf-8")
    (tmp_path / "base1.json").write_text(json.dumps({**compare, **other}), encoding="utf-8")
    out = render_report(paper_dir, tmp_path / "compare.json", "smoke", tmp_path / "r" / "report.md",
                        [tmp_path / "base1.json"])  # fmt: skip
    text = out.read_text(encoding="utf-8")
    assert "## Warm starts" in text and "1 of 2 claims change verdict with the warm start" in text
    assert "| gold_reward_up | mechanism | reproduced | inconclusive | **base-sensitive** |" in text
    assert "| implicit_margin_grows | mechanism | reproduced | reproduced | same |" in text
    assert "**reproduced** (base-sensitive)" in text
    (tmp_path / "wrong.json").write_text(json.dumps({**compare, **other, "paper": "dapo"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a compare.json of 'dpo'"):
        render_report(paper_dir, tmp_path / "compare.json", "smoke", tmp_path / "r" / "report.md",
                      [tmp_path / "wrong.json"])  # fmt: skip


def test_the_dag_checks_each_results_folder_with_the_overrides_that_make_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    def job(rule: str, paper: str, tier: str) -> SimpleNamespace:
        return SimpleNamespace(rule=SimpleNamespace(name=rule), wildcards={"paper": paper, "tier": tier})

    commands: list[list[str]] = []
    monkeypatch.setattr(
        subprocess, "run", lambda cmd, **_: commands.append(cmd) or SimpleNamespace(returncode=0, stdout="", stderr="")
    )
    warm = {"smoke": Overrides(), "smoke@base1": Overrides(warm_start=1)}
    jobs = [job("train", "dpo", "smoke"), job("train", "dapo", "smoke@base1"), job("train", "dpo", "smoke@base1")]
    workflow.preflight([*jobs, job("evaluate", "ipo", "smoke")], lambda label: warm[label], "python")
    assert commands == [
        ["python", "-m", "repro", "check", "--paper", "dpo", "--tier", "smoke"],
        ["python", "-m", "repro", "check", "--paper", "dapo,dpo", "--tier", "smoke", "--warm-start", "1"],
    ]
