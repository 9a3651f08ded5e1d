"""Your own model and data without editing shipped files (repro/overrides.py): `model=`, `data_dir=`, `--set`,
validated like YAML, recorded with the run, and a results folder of their own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from repro.config import dump, load_paper_config
from repro.overrides import Overrides, parse_assignment, tier_of
from repro.schema import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DAPO = ROOT / "papers" / "dapo"


def test_set_values_are_parsed_as_yaml_and_bad_forms_refused() -> None:
    assert parse_assignment("train.learning_rate=2e-6") == ("train.learning_rate", 2e-6)
    assert parse_assignment("eval.benchmarks={aime24: {n: 2}}") == ("eval.benchmarks", {"aime24": {"n": 2}})
    assert parse_assignment("model.name_or_path=a=b") == ("model.name_or_path", "a=b")  # the first '=' splits
    for bad in ("learning_rate=1e-6", "train.lr", "=3", "train..x=1"):
        with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
            parse_assignment(bad)
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_assignment("eval.benchmarks={aime24: [1")
    # Snakemake's --config set="a=b;c=d" and the CLI's repeated --set give the same overrides
    assert Overrides.parse(sets="train.beta=0.1; eval.k=2") == Overrides.parse(sets=["train.beta=0.1", "eval.k=2"])
    assert Overrides.parse(sets={"train.beta": "0.1"}) == Overrides.parse(sets="train.beta=0.1")  # set='{...}'
    assert Overrides.parse(sets="train.beta=0.1").sets == (("train.beta", 0.1),)


def test_labels_give_each_model_and_override_set_its_own_results_folder() -> None:
    assert Overrides().label("small") == "small" and not Overrides()
    a = Overrides.parse(model="/ckpt/my-qwen/")
    b = Overrides.parse(model="/other/my-qwen")
    label = a.label("small")
    assert label.startswith("small@my-qwen-") and tier_of(label) == "small"
    assert label != b.label("small")  # same folder name, another model: another folder
    assert label != Overrides.parse(model="/ckpt/my-qwen/", sets=["train.beta=0.1"]).label("small")
    assert Overrides.parse(model="/ckpt/my-qwen/").label("small") == label  # stable
    assert Overrides.from_record(a.as_record()) == a
    with_sets = Overrides.parse(model="Qwen/Qwen2.5-0.5B", data_dir="/d", sets=["eval.k=2"])
    assert Overrides.from_record(json.loads(json.dumps(with_sets.as_record()))) == with_sets
    assert with_sets.cli_args() == ["--model", "Qwen/Qwen2.5-0.5B", "--data-dir", "/d", "--set", "eval.k=2"]


def test_overrides_reach_the_config_and_are_validated_like_yaml() -> None:
    cfg = load_paper_config(DAPO, "small", "dapo", Overrides.parse(model="/m", sets=["train.max_prompt_length=128"]))
    assert cfg.model.name_or_path == "/m"
    assert cfg.data.max_prompt_length == 128  # a TRL name moved as in a YAML file (train -> data)
    with pytest.raises(ConfigError, match="unknown key 'train.learnig_rate'.*learning_rate"):
        load_paper_config(DAPO, "small", "dapo", Overrides.parse(sets=["train.learnig_rate=1e-6"]))
    with pytest.raises(ConfigError, match="train.learning_rate"):
        load_paper_config(DAPO, "small", "dapo", Overrides.parse(sets=["train.learning_rate=fast"]))


def test_data_dir_repoints_shipped_data_paths(tmp_path: Path) -> None:
    mirrored, flat = tmp_path / "mirrored", tmp_path / "flat"
    (mirrored / "math").mkdir(parents=True)
    flat.mkdir()
    for folder in (mirrored / "math", flat):
        for name in ("math_train.jsonl", "math500.jsonl", "aime24.jsonl"):
            (folder / name).write_text('{"problem": "1+1", "answer": "2"}\n')
    cfg = load_paper_config(DAPO, "small", "dapo", Overrides.parse(data_dir=str(mirrored)))
    assert cfg.data.prompts == str(mirrored / "math/math_train.jsonl")
    # the evaluation sets shipped in the repository stay theirs, whatever the folder holds
    assert (cfg.eval.prompts, cfg.eval.data_dir) == ("data/math/math500.jsonl", "data/math")
    cfg = load_paper_config(DAPO, "small", "dapo", Overrides.parse(data_dir=str(flat)))
    assert (cfg.data.prompts, cfg.eval.data_dir) == (str(flat / "math_train.jsonl"), "data/math")
    assert load_paper_config(DAPO, "small", "dapo").data.prompts == "<data_dir>/math/math_train.jsonl"  # unfilled
    with pytest.raises(ConfigError, match="data_dir .*no such folder"):
        load_paper_config(DAPO, "small", "dapo", Overrides.parse(data_dir=str(tmp_path / "nowhere")))


def test_runs_record_their_overrides_and_are_not_stale_under_them(tmp_path: Path) -> None:
    from repro.config import load_resolved
    from repro.report.staleness import config_changes
    from repro.runs import RUN_OVERRIDES, finish_run, write_resolved

    overrides = Overrides.parse(model="/ckpt/mine", sets=["train.learning_rate=3e-6"])
    cfg = load_paper_config(DAPO, "small", "dapo", overrides)
    token = RUN_OVERRIDES.set(overrides)
    try:
        write_resolved(tmp_path, cfg)
        summary = finish_run(cfg, tmp_path, [], 0.0, paper="dapo", tier="small", variant="dapo", seed=0)
    finally:
        RUN_OVERRIDES.reset(token)
    text = (tmp_path / "config.resolved.yaml").read_text()
    assert text.startswith("# overrides on the paper folder's config: model=/ckpt/mine, train.learning_rate=3e-06")
    assert load_resolved(tmp_path / "config.resolved.yaml").train.learning_rate == 3e-6  # the header is a comment
    assert summary["overrides"] == {"model": "/ckpt/mine", "set": [["train.learning_rate", 3e-6]]}
    assert config_changes(DAPO, "small", "dapo", tmp_path, summary["overrides"]) == []
    # judged without its overrides, the same run differs in exactly the overridden keys
    assert config_changes(DAPO, "small", "dapo", tmp_path) == ["model.name_or_path", "train.learning_rate"]


def test_the_dag_gives_runs_with_overrides_their_folder_report_and_arguments(standin_dir: str) -> None:
    out = subprocess.run(
        ["snakemake", "-n", "-p", "papers/dapo", "--config", "tier=small", f"model={standin_dir}", "seeds=1",
         "set=train.learning_rate=2e-6"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    label = Overrides.parse(model=standin_dir, sets=["train.learning_rate=2e-6"]).label("small")
    text = out.stdout
    assert f"results/dapo/{label}/dapo/seed0/summary.json" in text and f"reports/dapo/{label}/report.md" in text
    assert "prepare_base" not in text  # the researcher's model is not built
    assert f"--model {standin_dir} --set train.learning_rate=2.0e-06" in text  # the train jobs get the overrides
    assert "--tier small " in text and f"--expect-model {standin_dir}" in text
    # without overrides the plain tier's folders, as before
    plain = subprocess.run(["snakemake", "-n", "papers/dapo", "--config", "tier=small", "seeds=1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "results/dapo/small/dapo/seed0" in plain.stdout and "@" not in plain.stdout.split("Job stats")[0]


def test_the_catalog_lists_runs_with_overrides_beside_the_plain_tier(tmp_path: Path) -> None:
    from repro.report.catalog import catalog_rows

    (tmp_path / "papers").symlink_to(ROOT / "papers")
    label = Overrides.parse(model="/ckpt/mine").label("small")
    compare = {"paper": "dapo", "tier": "small", "label": label, "claims": [{"verdict": "reproduced"}], "runs": []}
    (tmp_path / "results" / "dapo" / label).mkdir(parents=True)
    (tmp_path / "results" / "dapo" / label / "compare.json").write_text(json.dumps(compare))
    (tmp_path / "reports" / "dapo" / label).mkdir(parents=True)
    (tmp_path / "reports" / "dapo" / label / "report.html").write_text("<html></html>")
    rows = [r for r in catalog_rows(tmp_path) if r["paper"] == "dapo"]
    assert [r["tier"] for r in rows] == [label]
    assert rows[0]["report"] == f"dapo/{label}/report.html" and rows[0]["claims"] == {"reproduced": 1}


def test_resolved_dump_is_plain_yaml() -> None:  # what the comment header sits on
    cfg = load_paper_config(DAPO, "small", "dapo", Overrides.parse(model="/m"))
    assert yaml.safe_load(dump(cfg))["model"]["name_or_path"] == "/m"
