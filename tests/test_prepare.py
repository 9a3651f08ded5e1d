"""`repro prepare`: the base-model step builds, warms up, saves and scores a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from repro.io import read_json
from repro.models.loading import load_policy
from repro.prepare import PREPARE_THREADS, load_base_config, prepare_base
from repro.schema import ConfigError

TINY_BASE = {
    "task": "addition",
    "model": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
    "sft": {"steps": 3, "batch_size": 8, "learning_rate": 1.0e-3, "warmup_steps": 1},
    "eval": {"n_problems": 6, "k": 2, "max_new_tokens": 4},
    "accuracy_band": [0.1, 0.6],
}


def test_prepare_writes_a_loadable_model_and_its_scores(tmp_path: Path) -> None:
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump(TINY_BASE))
    assert PREPARE_THREADS != 1  # else the check below could not tell a restore from no change
    torch.set_num_threads(1)  # a caller's setting other than PREPARE_THREADS (the suite's own, from conftest)
    summary = prepare_base(config, tmp_path / "out")
    assert torch.get_num_threads() == 1  # it trained on PREPARE_THREADS and gave the caller's setting back
    assert read_json(tmp_path / "out" / "prepare.json") == summary  # JSON round-trips floats exactly
    scores = read_json(tmp_path / "out" / "eval.json")
    assert scores["n_problems"] == 6 and scores["k"] == 2
    assert summary["sft_steps"] == 3 and summary["sampled_accuracy"] == scores["sampled_accuracy"]
    assert summary["in_band"] == (0.1 <= scores["sampled_accuracy"] <= 0.6)
    model, _ = load_policy(str(tmp_path / "out" / "model"))
    assert sum(p.numel() for p in model.parameters()) == summary["params"]


def test_unknown_task_in_base_config_is_rejected_before_training(tmp_path: Path) -> None:
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump({**TINY_BASE, "task": "additon"}))
    with pytest.raises(ConfigError, match="Did you mean 'addition'"):
        load_base_config(config)
