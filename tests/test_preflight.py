"""`repro check` (repro/preflight.py) finds before any weights load what `train` would find later, each with a
one-line error naming the key and the fix; the DAG runs it before its first job."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from repro.overrides import Overrides
from repro.preflight import check_papers
from repro.schema import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"  # the training sets the small tier names as <data_dir>/...


def check(model: str, *sets: str, paper: str = "dapo", data_dir: str | None = str(SHARED_DATA)) -> list[str]:
    return check_papers([paper], "small", Overrides.parse(model=model, data_dir=data_dir, sets=list(sets)))


def test_a_good_checkpoint_passes_and_its_stop_tokens_are_shown(standin_dir: str) -> None:
    lines = [line for line in check(standin_dir) if line.startswith("ok ")]  # notes on defaults follow
    assert len(lines) == 6 and all(line.startswith("ok dapo tier=small variant=") for line in lines)
    assert f"stop tokens of {standin_dir}: <|endoftext|> <|im_end|>" in lines[0]


def test_model_folders_that_cannot_load_are_refused_by_key(standin_dir: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.name_or_path: '.*nowhere' is not a folder that exists"):
        check(str(tmp_path / "nowhere"))
    weights_only = tmp_path / "weights_only"
    shutil.copytree(standin_dir, weights_only)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (weights_only / name).unlink()
    with pytest.raises(ConfigError, match="holds no tokenizer .*tokenizer.save_pretrained"):
        check(str(weights_only))
    (weights_only / "config.json").unlink()
    with pytest.raises(ConfigError, match="holds no config.json"):
        check(str(weights_only))
    with pytest.raises(ConfigError, match="is not a folder that exists"):  # not a hub id: org/name/extra
        check("Qwen/Qwen2.5/0.5B")


def test_a_hub_id_must_be_cached_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="'someorg/not-cached-model' is a hub id that is not in the local cache"):
        check("someorg/not-cached-model")


def test_a_tokenizer_without_chat_template_fails_before_the_weights_load(
    standin_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repro import runs

    bare = tmp_path / "no_template"
    shutil.copytree(standin_dir, bare)
    (bare / "chat_template.jinja").unlink()
    with pytest.raises(ConfigError, match="prompt template 'dapo' renders through the tokenizer's chat template"):
        check(str(bare))
    assert check(str(bare), "data.template=raw", "eval.benchmarks={aime24: {template: raw}}")  # the fix it names

    def no_weights(*_: Any, **__: Any) -> None:
        raise AssertionError("weights were loaded before the tokenizer was checked")

    monkeypatch.setattr("repro.models.loading.load_policy", no_weights)
    with pytest.raises(ConfigError, match="has none"):
        runs.train_run("dapo", "small", "dapo", 0, tmp_path / "run", overrides=Overrides.parse(model=str(bare)))


def test_data_files_are_checked_by_key(standin_dir: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.prompts: '.*math_trian\.jsonl' does not exist"):
        check(standin_dir, "data.prompts=../shared/data/math/math_trian.jsonl")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"question": "1+1", "answer": "2"}\n')
    with pytest.raises(ConfigError, match=r"eval\.prompts: .*has no field 'problem' \(eval\.problem_field\)"):
        check(standin_dir, f"eval.prompts={rows}")
    assert check(standin_dir, f"eval.prompts={rows}", "eval.problem_field=question")  # the field named: fine
    with pytest.raises(ConfigError, match="eval.task and eval.prompts are both unset; name the held-out problems"):
        check(standin_dir, "eval.prompts=null")


def test_unshipped_data_asks_for_data_dir_and_nothing_outside_the_repository_is_read(standin_dir: str) -> None:
    # the small tier trains on sets too large to ship: without data_dir= the check names the key, the file and the fix
    with pytest.raises(ConfigError) as err:
        check(standin_dir, data_dir=None)
    message = str(err.value)
    assert "data.prompts: '<data_dir>/math/math_train.jsonl' is a file you supply" in message
    assert "pass data_dir=<folder holding math/math_train.jsonl>" in message and "data/SOURCES.md" in message
    assert check(standin_dir, "data.prompts=data/math/gsm8k.jsonl", data_dir=None)  # the shipped sets suffice
    with pytest.raises(ConfigError, match=r"data\.pairs: '<data_dir>/preference/hh_rlhf_harmless_base_test\.jsonl'"):
        check(standin_dir, data_dir=None, paper="dpo")


def test_the_dag_refuses_a_bad_model_in_seconds_and_runs_nothing(tmp_path: Path) -> None:
    from conftest import SHARED_MATH
    from test_e2e_dapo import copy_project

    (tmp_path / "project").mkdir()
    work = copy_project(tmp_path / "project")
    started = time.time()
    out = subprocess.run(
        ["snakemake", "papers/dapo", "--config", "tier=small", f"model={tmp_path / 'nowhere'}", "seeds=1"],
        cwd=work, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "REPRO_MATH_DATA": str(SHARED_MATH)},
    )  # fmt: skip
    assert out.returncode != 0 and time.time() - started < 60
    assert "is not a folder that exists" in out.stdout + out.stderr
    label = Overrides.parse(model=str(tmp_path / "nowhere")).label("small")  # the results folder it would fill
    assert f"repro check failed for dapo at {label}: nothing was run" in out.stdout + out.stderr
    assert not (work / "results").exists() or not any((work / "results").rglob("*.json"))


def test_the_checkpoints_config_is_checked_against_the_run(standin_dir: str) -> None:
    # ScaleRL runs the LM head in float32: impossible when the head is tied to the embeddings (the stand-in's is)
    with pytest.raises(ConfigError, match=r"train\.cast_lm_head_to_fp32: .*ties its LM head"):
        check(standin_dir, paper="scalerl")
    assert check(standin_dir, "train.cast_lm_head_to_fp32=false", paper="scalerl")
    with pytest.raises(ConfigError, match=r"512 \+ 8000 tokens exceed .*context of 4096"):
        check(standin_dir, "train.max_completion_length=8000")


def test_a_copied_paper_folder_and_an_unlisted_variant_are_named(tmp_path: Path) -> None:
    from repro.preflight import check_folder

    mine = tmp_path / "papers" / "my_dapo"
    shutil.copytree(ROOT / "papers" / "dapo", mine)
    with pytest.raises(ConfigError, match=r"paper\.yaml: id: 'dapo' is not the folder's name 'my_dapo'.*`id: my_dapo`"):
        check_folder(mine)
    for file, old, new in (
        ("paper.yaml", "id: dapo", "id: my_dapo"),
        ("targets.yaml", "paper: dapo", "paper: my_dapo"),
    ):
        text = (mine / file).read_text()
        assert old in text
        (mine / file).write_text(text.replace(old, new, 1))
    check_folder(mine)  # renamed: fine
    (mine / "configs" / "variants" / "my_idea.yaml").write_text("base: dapo.yaml\ntrain: {epsilon_high: 0.3}\n")
    with pytest.raises(ConfigError, match="variants: my_idea .*not listed, so the DAG and check would never run"):
        check_folder(mine)
