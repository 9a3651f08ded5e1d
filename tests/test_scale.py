"""What a report says ran (repro/report/scale.py): model, parameters, data and hardware per kind, and the runs whose
completions mostly hit the length limit."""

from __future__ import annotations

from pathlib import Path

import torch

from repro.report.compare import RunData
from repro.report.scale import safetensors_parameters, scale_line, scale_summary, truncation_warnings


def _run(tmp_path: Path, variant: str, seed: int, config: dict, metrics=(), evaluation=None) -> RunData:
    run = RunData(variant, seed, tmp_path / variant / f"seed{seed}", config=config, metrics=list(metrics))
    run.eval = evaluation
    run.summary = {"steps": 3, "n_examples": 2000, "provenance": {"gpu": None, "cpu": "AMD EPYC (avx512f)"}}
    return run


def test_the_parameter_count_is_read_from_safetensors_headers(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5)}, str(tmp_path / "model-00001.safetensors"))
    save_file({"c": torch.zeros(2, 2, 2)}, str(tmp_path / "model-00002.safetensors"))
    assert safetensors_parameters(tmp_path) == 12 + 5 + 8
    assert safetensors_parameters(tmp_path / "nothing") is None


def test_the_scale_line_names_what_ran_for_each_kind(tmp_path: Path) -> None:
    preference = {"trainer": "preference", "model": {"name_or_path": "/ckpt/mine", "dtype": "bfloat16"},
                  "data": {"pairs": "hh.jsonl"}}  # fmt: skip
    runs = {"dpo": [_run(tmp_path, "dpo", 0, preference)]}
    line = scale_line(scale_summary(runs, "dpo"), "small")
    assert line == (
        "preference runs of `/ckpt/mine` (bfloat16); preference pairs `hh.jsonl` (2,000 examples); "
        "3 steps on CPU (AMD EPYC (avx512f))"
    )  # not "GSM8K/MATH" for preference pairs
    rl = {"model": {"name_or_path": "prepared:smoke", "dtype": "float32"},
          "data": {"prompts": "synthetic:addition"}, "eval": {"task": "addition"}}  # fmt: skip
    line = scale_line(scale_summary({"grpo": [_run(tmp_path, "grpo", 0, rl)]}, "grpo"), "smoke")
    assert line.startswith("online rl runs of `prepared:smoke`") and "held-out task `addition`" in line
    assert scale_line(None, "small") == "no finished run at the small tier yet"


def test_mostly_truncated_runs_are_flagged_in_training_or_evaluation(tmp_path: Path) -> None:
    config = {"model": {"name_or_path": "m"}}
    fine = _run(
        tmp_path, "a", 0, config, [{"truncation_rate": 0.1}, {"truncation_rate": 0.2}], {"truncation_rate": 0.0}
    )
    cut = _run(tmp_path, "a", 1, config, [{"truncation_rate": 1.0}, {"truncation_rate": 0.9}])
    eval_cut = _run(tmp_path, "b", 0, config, [], {"truncation_rate": 0.75})
    assert truncation_warnings({"a": [fine]}) == []
    [warning] = truncation_warnings({"a": [fine, cut], "b": [eval_cut]})
    assert "2 run(s)" in warning and "a/seed1 (training 95%)" in warning and "b/seed0 (evaluation 75%)" in warning
    assert "python -m repro check` prints the stop tokens" in warning
