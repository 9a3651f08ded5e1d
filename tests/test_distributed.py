"""Data parallelism under `accelerate launch` on CPU (gloo): two processes with half the per-device batch follow the
one-process loss trajectory of the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repro.distributed import DataParallel

pytestmark = pytest.mark.distributed

REPO = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).resolve().parent / "workers"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1"}


def _launch(processes: int, script: Path, *args: str) -> None:
    if processes == 1:
        command = [sys.executable, str(script), *args]
    else:
        accelerate = shutil.which("accelerate") or pytest.skip("the accelerate launcher is not on PATH")
        # accelerate's torchrun launcher; on a machine without GPUs the processes join a gloo group (MULTI_CPU).
        # (`--cpu` selects its MPI launcher instead, which runs a single process where MPI is absent.)
        command = [
            accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517", str(script), *args,
        ]  # fmt: skip
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def _rows(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_single_process_data_parallel_is_the_identity() -> None:
    dp = DataParallel.single()
    assert (dp.world, dp.rank, dp.is_main) == (1, 0, True)
    assert dp.shard([1, 2, 3]) == [1, 2, 3] and dp.sum(2.5) == 2.5 and dp.mean({"a": 1.0}) == {"a": 1.0}


def _one_and_two(worker: str, model_dir: str, out: Path, arg: str) -> tuple[list[dict], list[dict]]:
    """The worker's metrics rows as one process at per-device batch 8 and as two at 4 (the same global batch)."""
    script = WORKERS / worker
    _launch(1, script, model_dir, str(out / "one"), "8", "4", arg)
    _launch(2, script, model_dir, str(out / "two"), "4", "4", arg)
    assert "world 2" in (out / "two" / "launch.txt").read_text(encoding="utf-8")  # really two processes
    one, two = _rows(out / "one"), _rows(out / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2, 3, 4]
    return one, two


def _assert_same(one: list[dict], two: list[dict], keys: tuple[str, ...]) -> None:
    for a, b in zip(one, two, strict=True):
        for key in keys:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["step"], key)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_two_processes_follow_the_one_process_preference_trajectory(
    tiny_model_dir: str, tmp_path: Path, loss_type: str
) -> None:
    one, two = _one_and_two("preference_dp.py", tiny_model_dir, tmp_path, loss_type)
    _assert_same(one, two, ("loss", "grad_norm", "margin", "logratio_chosen", "accuracy"))
    assert one[-1]["loss"] < one[0]["loss"]  # the trajectory being compared moves
    assert not (tmp_path / "two" / "ckpt").exists() and (tmp_path / "two" / "ref_logps.json").is_file()


@pytest.mark.parametrize("loss_type", ["nll", "dft"])
def test_two_processes_follow_the_one_process_sft_trajectory(
    tiny_model_dir: str, tmp_path: Path, loss_type: str
) -> None:
    one, two = _one_and_two("sft_dp.py", tiny_model_dir, tmp_path, loss_type)
    assert [b["num_tokens"] for b in two] == [a["num_tokens"] for a in one]  # N counts every rank's tokens
    _assert_same(one, two, ("loss", "nll", "grad_norm", "mean_token_accuracy", "entropy"))
    assert one[-1]["nll"] < one[0]["nll"]


def test_two_processes_follow_the_one_process_reward_model_trajectory(tiny_model_dir: str, tmp_path: Path) -> None:
    one, two = _one_and_two("reward_dp.py", tiny_model_dir, tmp_path, "0.01")
    _assert_same(one, two, ("loss", "centering_term", "grad_norm", "reward_gap", "min_reward", "max_reward"))
    assert one[-1]["loss"] < one[0]["loss"]


def test_a_kind_without_data_parallelism_refuses_a_multi_process_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    from repro.distributed import require_single_process
    from repro.schema import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    require_single_process("preference")  # shards its batch: accepted
    require_single_process("sft")
    with pytest.raises(ConfigError, match="launched on 2 processes, but the online RL trainer"):
        require_single_process("online RL")
    with pytest.raises(ConfigError, match="the distillation trainer"):
        require_single_process("distillation")
    monkeypatch.setenv("WORLD_SIZE", "1")
    require_single_process("distillation")  # one process: any kind
