"""Data parallelism under `accelerate launch` on CPU (gloo): two processes with half the per-device batch follow the
one-process loss trajectory of the same global batch, for every trainer kind (preference, SFT, reward model, online
RL in three loss variants, distillation)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
    rows = torch.arange(6.0).reshape(3, 2)
    assert dp.gather_rows(rows) is rows and dp.gather_objects("x") == ["x"]


def test_online_rl_on_several_processes_needs_per_group_seeds_and_text() -> None:
    from repro.config import load_paper_config
    from repro.schema import ConfigError
    from repro.trainers.online_rl import check_data_parallel

    cfg = load_paper_config(REPO / "papers" / "dapo", "smoke", "dapo")
    assert cfg.train.rollout_seeding == "batch"
    check_data_parallel(cfg, 1, images=True)  # one process: anything goes
    with pytest.raises(ConfigError, match="set it to per_group"):
        check_data_parallel(cfg, 2, images=False)
    per_group = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, rollout_seeding="per_group"))
    check_data_parallel(per_group, 2, images=False)
    with pytest.raises(ConfigError, match="text policies only"):
        check_data_parallel(per_group, 2, images=True)
    mismatched = dataclasses.replace(
        per_group, train=dataclasses.replace(per_group.train, rollout_backend="hf_mismatch")
    )
    check_data_parallel(mismatched, 2, images=False, strategy="ddp")
    with pytest.raises(ConfigError, match="keeps its own whole copy of the weights"):
        check_data_parallel(mismatched, 2, images=False, strategy="fsdp")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the workers' runs go: a one-process run is shared by the DDP and FSDP comparisons of the same worker."""
    return tmp_path_factory.mktemp("dp_runs")


def _one_and_two(
    worker: str, model_dir: str, runs: Path, arg: str, strategy: str = "ddp", run: str = ""
) -> tuple[list[dict], list[dict]]:
    """The worker's metrics rows (of its sub-run `run`, if it makes several) as one process at per-device batch 8
    and as two at 4 (the same global batch) under `strategy`."""
    script, out = WORKERS / worker, runs / f"{Path(worker).stem}-{arg}"
    if not (out / "one" / "done").is_file():
        _launch(1, script, model_dir, str(out / "one"), "8", "4", arg)
        (out / "one" / "done").touch()
    two = out / f"two-{strategy}"
    if not (two / "launch.txt").is_file():
        _launch(2, script, model_dir, str(two), "4", "4", arg, strategy)
    sharded = strategy == "fsdp"
    assert (two / "launch.txt").read_text(encoding="utf-8") == f"world 2 {strategy} sharded {sharded}\n"
    one_rows, two_rows = _rows(out / "one" / run), _rows(two / run)
    assert [r["step"] for r in one_rows] == [r["step"] for r in two_rows] == [1, 2, 3, 4]
    return one_rows, two_rows


def _assert_same(one: list[dict], two: list[dict], keys: tuple[str, ...]) -> None:
    for a, b in zip(one, two, strict=True):
        for key in keys:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["step"], key)


@pytest.mark.parametrize("loss_type, strategy", [("sigmoid", "ddp"), ("sigmoid", "fsdp"), ("ipo", "ddp")])
def test_two_processes_follow_the_one_process_preference_trajectory(
    tiny_model_dir: str, runs: Path, loss_type: str, strategy: str
) -> None:
    one, two = _one_and_two("preference_dp.py", tiny_model_dir, runs, loss_type, strategy)
    _assert_same(one, two, ("loss", "grad_norm", "margin", "logratio_chosen", "accuracy"))
    assert one[-1]["loss"] < one[0]["loss"]  # the trajectory being compared moves
    two_dir = runs / f"preference_dp-{loss_type}" / f"two-{strategy}"
    assert not (two_dir / "ckpt").exists() and (two_dir / "ref_logps.json").is_file()


@pytest.mark.parametrize("loss_type, strategy", [("nll", "ddp"), ("nll", "fsdp"), ("dft", "ddp")])
def test_two_processes_follow_the_one_process_sft_trajectory(
    tiny_model_dir: str, runs: Path, loss_type: str, strategy: str
) -> None:
    one, two = _one_and_two("sft_dp.py", tiny_model_dir, runs, loss_type, strategy)
    assert [b["num_tokens"] for b in two] == [a["num_tokens"] for a in one]  # N counts every rank's tokens
    _assert_same(one, two, ("loss", "nll", "grad_norm", "mean_token_accuracy", "entropy"))
    assert one[-1]["nll"] < one[0]["nll"]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_follow_the_one_process_reward_model_trajectory(
    tiny_model_dir: str, runs: Path, strategy: str
) -> None:
    one, two = _one_and_two("reward_dp.py", tiny_model_dir, runs, "0.01", strategy)
    _assert_same(one, two, ("loss", "centering_term", "grad_norm", "reward_gap", "min_reward", "max_reward"))
    assert one[-1]["loss"] < one[0]["loss"]


# The online-RL loop's global quantities, one variant each: DAPO's token normaliser, overlong mask and dynamic-sampling
# refills; Lite PPO's batch-level std under a micro-batch token mean with accumulation; GSPO's sequence-level ratio
# with reference log-probs (a KL term) and old log-probs computed in shares.
ONLINE_RL_VARIANTS = ("dapo", "lite_ppo", "gspo_kl")  # one launch runs them all (the process group starts once)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
@pytest.mark.parametrize("variant", ONLINE_RL_VARIANTS)
def test_two_processes_follow_the_one_process_online_rl_trajectory(
    tiny_model_dir: str, runs: Path, variant: str, strategy: str
) -> None:
    variants = ",".join(ONLINE_RL_VARIANTS)
    one, two = _one_and_two("online_rl_dp.py", tiny_model_dir, runs, variants, strategy, variant)
    # sampled alike (per-group seeds) and filtered alike (the ranks' rollouts are gathered before the filter)
    for key in ("reward_mean", "response_length", "truncation_rate", "refill_batches", "frac_zero_std", "num_groups"):
        assert [b[key] for b in two] == [a[key] for a in one], key
    _assert_same(one, two, ("loss", "grad_norm", "entropy", "clip_frac", "reward_std", "logprob_gap"))
    if variant == "dapo":
        assert sum(r["refill_batches"] for r in one) >= 1  # a refill happened in the compared run
    if variant == "gspo_kl":
        _assert_same(one, two, ("kl",))
        assert one[-1]["kl"] > 0
    assert len({round(r["loss"], 6) for r in one}) == 4  # the trajectory being compared moves


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_follow_the_one_process_distillation_trajectory(
    tiny_model_dir: str, runs: Path, strategy: str
) -> None:
    one, two = _one_and_two("distillation_dp.py", tiny_model_dir, runs, "0.5", strategy)
    for key in ("on_policy_share", "completion_length", "train_accuracy"):  # the same samples, counted over ranks
        assert [b[key] for b in two] == [a[key] for a in one], key
    _assert_same(one, two, ("loss", "grad_norm", "train_reverse_kl", "flops"))
    assert {r["on_policy_share"] for r in one} >= {0.5}  # student and teacher samples in one step
    assert len({round(r["loss"], 6) for r in one}) == 4


def test_a_two_node_launch_follows_the_one_process_trajectory(tiny_model_dir: str, runs: Path) -> None:
    """The DAG's multi-node launcher (srun → one accelerate launcher per node, joined at the allocation's first
    node) run through a stand-in srun / scontrol that makes this machine two nodes of one process each."""
    from repro.workflow import multi_node_launcher

    one, _ = _one_and_two("preference_dp.py", tiny_model_dir, runs, "sigmoid")
    out = runs / "two_nodes"
    launcher = multi_node_launcher(nodes=2, gpus_per_node=1, port=29523)
    command = f"{launcher} {WORKERS / 'preference_dp.py'} {tiny_model_dir} {out} 4 4 sigmoid"
    env = {**_env(), "PATH": f"{WORKERS / 'fake_slurm'}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (out / "launch.txt").read_text(encoding="utf-8") == "world 2 ddp sharded False\n"
    _assert_same(one, _rows(out), ("loss", "grad_norm", "margin", "logratio_chosen", "accuracy"))


def test_an_fsdp_run_killed_after_a_checkpoint_resumes_to_the_same_trajectory(tiny_model_dir: str, runs: Path) -> None:
    """Under FSDP a checkpoint gathers the sharded weights and AdamW state into whole tensors (main rank writes) and a
    resumed run shards them again: two steps, a checkpoint, a new launch to four steps = four steps in one go."""
    _, straight = _one_and_two("preference_dp.py", tiny_model_dir, runs, "sigmoid", "fsdp")
    out = runs / "fsdp_resume"
    _launch(2, WORKERS / "preference_dp.py", tiny_model_dir, str(out), "4", "2", "sigmoid", "fsdp", "2")
    assert (out / "ckpt" / "model.safetensors").is_file()  # whole tensors, written by the main rank
    _launch(2, WORKERS / "preference_dp.py", tiny_model_dir, str(out), "4", "4", "sigmoid", "fsdp", "2")
    resumed = _rows(out)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    _assert_same(straight, resumed, ("loss", "grad_norm", "margin", "logratio_chosen"))


def test_a_kind_without_data_parallelism_refuses_a_multi_process_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    from repro import trainer_kinds
    from repro.distributed import require_single_process
    from repro.schema import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    for kind in ("online_rl", *trainer_kinds.TRAINER_KINDS):  # every kind in the catalog shards its batch
        require_single_process(kind)
    unsharded = dataclasses.replace(trainer_kinds.TRAINER_KINDS["sft"], name="new_kind", data_parallel=False)
    monkeypatch.setitem(trainer_kinds.TRAINER_KINDS, "new_kind", unsharded)
    with pytest.raises(ConfigError, match="launched on 2 processes, but the new_kind trainer does not shard"):
        require_single_process("new_kind")
    monkeypatch.setenv("WORLD_SIZE", "1")
    require_single_process("new_kind")  # one process: any kind


def test_distillation_on_several_processes_needs_per_group_seeds() -> None:
    from repro.config import load_paper_config
    from repro.schema import ConfigError
    from repro.trainers.distillation import check_data_parallel

    cfg = load_paper_config(REPO / "papers" / "on_policy_distillation", "smoke", "on_policy")
    check_data_parallel(cfg, 1)
    with pytest.raises(ConfigError, match="set it to per_group"):
        check_data_parallel(cfg, 2)
    check_data_parallel(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, rollout_seeding="per_group")), 2)
