"""Faults: a training job SIGKILLed mid-run resumes to the same result; a non-finite loss stops the run and keeps the
last good checkpoint; two runs with one seed agree exactly on CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from repro.io import write_json
from repro.models.tiny import build_char_tokenizer, build_tiny_model

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"step_time", "tokens_per_s"}  # wall-clock figures: the only fields a resumed run may change


def _project(root: Path, save_steps: int) -> Path:
    """A project root holding papers/dapo (smoke tier checkpointing every `save_steps`) and a prepared tiny base."""
    (root / "papers").mkdir(parents=True)
    (root / "papers" / "__init__.py").write_text("", encoding="utf-8")
    shutil.copytree(REPO / "papers" / "dapo", root / "papers" / "dapo")
    smoke = root / "papers" / "dapo" / "configs" / "smoke.yaml"
    smoke.write_text(smoke.read_text(encoding="utf-8").replace("save_steps: 160", f"save_steps: {save_steps}"))
    (root / "data").symlink_to(REPO / "data")  # eval.data_dir is data/math (the shipped copies), checked at load
    base = root / "results" / "base" / "smoke"
    tok = build_char_tokenizer()
    model = build_tiny_model(tok, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    model.save_pretrained(base / "model")
    tok.save_pretrained(base / "model")
    write_json(base / "prepare.json", {"note": "a random tiny model standing in for the smoke base"})
    return root


def _train_command(out: str, max_steps: int) -> list[str]:
    """The command the Snakefile's train rule runs."""
    return [
        sys.executable, "-m", "repro", "train", "--paper", "dapo", "--tier", "smoke", "--variant", "dapo",
        "--seed", "0", "--out", out, "--expect-model", "prepared:smoke", "--max-steps", str(max_steps),
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1"}


def _rows(run: Path) -> list[dict[str, object]]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]


def test_a_run_killed_mid_way_resumes_from_its_checkpoint_to_the_same_metrics(tmp_path: Path) -> None:
    root = _project(tmp_path / "project", save_steps=4)
    steps = 16
    subprocess.run(_train_command("runs/straight", steps), cwd=root, env=_env(), check=True, capture_output=True)

    killed = root / "runs" / "killed"
    with open(tmp_path / "killed.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(_train_command(str(killed), steps), cwd=root, env=_env(), stdout=log, stderr=log)
        deadline = time.monotonic() + 300
        while not (killed / "ckpt" / "state.json").is_file():  # the first checkpoint is complete once swapped in
            assert proc.poll() is None, (tmp_path / "killed.log").read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    at_kill = json.loads((killed / "ckpt" / "state.json").read_text(encoding="utf-8"))["step"]
    assert proc.returncode == -signal.SIGKILL and not (killed / "summary.json").exists()
    assert 0 < at_kill < steps

    rerun = subprocess.run(_train_command(str(killed), steps), cwd=root, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"at step {at_kill}" in rerun.stderr  # it resumed rather than starting over
    straight = _rows(root / "runs" / "straight")
    assert [r["step"] for r in _rows(killed)] == list(range(1, steps + 1))
    assert _rows(killed) == straight  # every metric of every step, exactly
    assert not (killed / "ckpt").exists()  # a finished run drops its checkpoint
    final = json.loads((killed / "summary.json").read_text(encoding="utf-8"))["final"]
    assert final["loss"] == straight[-1]["loss"]


def test_a_second_run_with_the_same_seed_is_identical_and_another_seed_differs(tmp_path: Path) -> None:
    """Determinism on CPU, across processes: metrics and saved weights are bit-identical for one seed."""
    root = _project(tmp_path / "project", save_steps=1000)
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        command = _train_command(f"runs/{name}", 4)
        command[command.index("--seed") + 1] = seed
        subprocess.run(command, cwd=root, env=_env(), check=True, capture_output=True)
    runs = root / "runs"
    assert _rows(runs / "a") == _rows(runs / "b")
    weights = [(runs / n / "model" / "model.safetensors").read_bytes() for n in "abc"]
    assert weights[0] == weights[1] and weights[0] != weights[2]
    assert _rows(runs / "a") != _rows(runs / "c")


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from safetensors.torch import load_file

    from repro.config import load_paper_config
    from repro.data.synthetic import TASKS
    from repro.models.loading import load_policy
    from repro.rollout.hf import HFRollout
    from repro.trainers import online_rl
    from repro.trainers.online_rl import OnlineRLTrainer

    cfg = load_paper_config(REPO / "papers" / "dapo", "smoke", "dapo")
    small = {"per_device_train_batch_size": 8, "steps_per_generation": 2, "num_generations": 4, "save_steps": 2}
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=6, **small))
    problems = TASKS.get("addition").make(64, seed=0)

    def trainer(out: Path) -> OnlineRLTrainer:
        torch.manual_seed(0)
        model, tok = load_policy(tiny_model_dir)
        return OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), out, seed=0)

    healthy = trainer(tmp_path / "healthy")
    healthy.t = dataclasses.replace(healthy.t, max_steps=2)
    healthy.train(progress=False)  # the state after two good steps

    calls = {"n": 0}
    real_loss = online_rl.policy_loss

    def poisoned(*args: object, **kwargs: object) -> object:  # from the 3rd step's micro-batch on: a NaN loss
        out = real_loss(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 2:  # one micro-batch per step (batch 8 of 16 rows per generation, 2 steps per generation)
            out = dataclasses.replace(out, loss=out.loss * float("nan"))
        return out

    monkeypatch.setattr(online_rl, "policy_loss", poisoned)
    sick = trainer(tmp_path / "sick")
    with pytest.raises(FloatingPointError, match=r"non-finite gradient norm at step 3.*last good checkpoint"):
        sick.train(progress=False)
    state = json.loads((tmp_path / "sick" / "ckpt" / "state.json").read_text(encoding="utf-8"))
    assert state["step"] == 2
    kept = load_file(tmp_path / "sick" / "ckpt" / "model.safetensors")
    good = healthy.model.state_dict()
    assert all(torch.equal(kept[k], good[k]) for k in kept)  # the checkpoint holds the last good weights
    assert all(torch.isfinite(p).all() for p in sick.model.parameters())  # the NaN step never touched the weights
    rows = [json.loads(line) for line in (tmp_path / "sick" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
