"""TRL's `report_to` (repro/trackers.py): each tracker, read back with its own library, holds metrics.jsonl's values.

One SFT run streams to every tracker installed here (TensorBoard, W&B offline, Trackio local), trained in a fresh
process as `repro train` runs it (trackio fixes its folder when first imported in a process); an online-RL run
streams to TensorBoard in this process (the other metrics-writing path). Each tracker's test skips, saying so, only
where its client library is not installed (`pip install -e '.[trackers]'`). Then the refusals: a missing library
(before any weights load, with the install command), an unknown name (did-you-mean), and `none` writing nothing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from repro.schema import ConfigError
from repro.trackers import TRACKERS, chosen, reporting

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "papers"
REAL_FIND_SPEC = importlib.util.find_spec
TRACKER_ENV = ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "TRACKIO_DIR", "TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL")


def _missing(name: str) -> bool:
    return importlib.util.find_spec(TRACKERS[name][0]) is None


def needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(_missing(name), reason=f"{name} is not installed ({TRACKERS[name][1]})")


def sft_raw(model_dir: str, report_to: Any, max_steps: int = 4) -> dict[str, Any]:
    return {
        "trainer": "sft",
        "model": {"name_or_path": model_dir},
        "data": {"dataset": "synthetic:addition"},
        "train": {"loss_type": "dft", "max_steps": max_steps, "learning_rate": 1e-2, "per_device_train_batch_size": 16,
                  "lr_scheduler_type": "constant", "max_length": 32, "save_steps": 0, "report_to": report_to},
        "eval": {"n_problems": 16, "k": 2, "max_new_tokens": 5},
    }  # fmt: skip


def expected(run_dir: Path) -> dict[tuple[str, int], float]:
    """(train/<column>, step) -> value of every number (true/false: 1/0) metrics.jsonl holds (null: NaN or ±inf,
    not sent)."""
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float):
                out[(f"train/{key}", row["step"])] = float(value)
        out[("train/global_step", row["step"])] = float(row["step"])
    return out


def assert_same(logged: dict[tuple[str, int], float], run_dir: Path, rel: float) -> None:
    want = expected(run_dir)
    assert len(want) > 20 and set(logged) == set(want)  # every column at every step, nothing else
    for key, value in want.items():
        assert logged[key] == pytest.approx(value, rel=rel, abs=rel), key


# ----------------------------------------------------------------------------- one SFT run, every tracker

SFT_SCRIPT = """
import json, sys
from pathlib import Path
import repro, torch
torch.set_num_threads(1)
from repro.runs_sft import train_sft_run
from repro.sft_config import resolve_sft
cfg = resolve_sft(json.loads(sys.argv[1]), "test_report_to")
train_sft_run(cfg, "dft", "smoke", "dft", 3, Path(sys.argv[2]), cfg.model.name_or_path)
"""

TRACKIO_READ = """
import json, sys
from trackio import Api, SQLiteStorage
(run,) = Api().runs(sys.argv[1])
print(json.dumps({"name": run.name, "config": run.config, "logs": SQLiteStorage.get_logs(sys.argv[1], run.name)}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TRACKER_ENV}  # the defaults: nothing leaves the machine
    return {**env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **extra}


@pytest.fixture(scope="module")
def streamed(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    names = [name for name in TRACKERS if not _missing(name)]
    if not names:
        pytest.skip("none of tensorboard, wandb, trackio is installed (pip install -e '.[trackers]')")
    out = tmp_path_factory.mktemp("streamed") / "run"
    raw = json.dumps(sft_raw(tiny_model_dir, names))
    done = subprocess.run(
        [sys.executable, "-c", SFT_SCRIPT, raw, str(out)], cwd=ROOT, env=_clean_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warning: report_to" not in done.stderr  # no tracker failed along the way
    return out


@needs("tensorboard")
def test_tensorboard_event_files_hold_the_metrics_jsonl_values(streamed: Path, tiny_model_dir: str) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(streamed / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    logged = {(tag, e.step): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}
    assert_same(logged, streamed, rel=1e-6)  # TensorBoard keeps float32
    run = json.loads(events.Tensors("run/text_summary")[0].tensor_proto.string_val[0].decode().strip("`\n"))
    assert (run["paper"], run["tier"], run["variant"], run["seed"]) == ("dft", "smoke", "dft", 3)
    assert run["commit"] and run["model"] == tiny_model_dir and run["run_dir"] == str(streamed)
    config = json.loads(events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode().strip("`\n"))
    assert config["train"]["learning_rate"] == 1e-2
    assert config["train"]["report_to"] == [name for name in TRACKERS if not _missing(name)]


def wandb_records(path: Path) -> list[Any]:
    """The records of a W&B offline run's `.wandb` file, parsed with wandb's own protobuf classes.

    wandb 0.31 has no Python reader for it (wandb.Api asks the server; `wandb sync` and `wandb beta leet` read it
    through wandb-core). The file is a LevelDB-style log: a 7-byte header (":W&B", magic 0xBEE1, version), then
    32 KiB blocks of chunks, each [crc32 u32, length u16, type u8: 1 full, 2 first, 3 middle, 4 last] + data; a
    block's tail shorter than a chunk header is zero padding. Each whole record is a wandb_internal_pb2.Record."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@needs("wandb")
def test_wandb_offline_run_holds_the_metrics_jsonl_values(streamed: Path) -> None:
    (run_file,) = (streamed / "wandb").glob("offline-run-*/run-*.wandb")  # offline, under the run folder
    records = wandb_records(run_file)
    logged = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            logged.update({(k, items["_step"]): v for k, v in items.items() if k.startswith("train/")})
    assert_same(logged, streamed, rel=1e-12)  # JSON doubles
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert (run.project, run.display_name, run.run_group) == ("repro-dft", "smoke-dft-seed3", "smoke-dft")
    assert {k: config["run"][k] for k in ("paper", "tier", "variant", "seed")} == {
        "paper": "dft", "tier": "smoke", "variant": "dft", "seed": 3
    }  # fmt: skip
    assert config["run"]["commit"] and config["config"]["train"]["learning_rate"] == 1e-2


@needs("trackio")
def test_trackio_local_project_holds_the_metrics_jsonl_values(streamed: Path) -> None:
    folder = streamed / "trackio"
    assert (folder / "repro-dft.db").is_file()  # under the run folder, not ~/.cache/huggingface/trackio
    done = subprocess.run(
        [sys.executable, "-c", TRACKIO_READ, "repro-dft"], cwd=ROOT, capture_output=True, text=True,
        env=_clean_env(TRACKIO_DIR=str(folder)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    back = json.loads(done.stdout.strip().splitlines()[-1])
    logged = {(k, row["step"]): v for row in back["logs"] for k, v in row.items() if k.startswith("train/")}
    assert_same(logged, streamed, rel=1e-12)
    assert back["name"] == "smoke-dft-seed3" and back["config"]["run"]["variant"] == "dft"
    assert back["config"]["config"]["train"]["loss_type"] == "dft"


# ----------------------------------------------------------------------------- online RL, in this process


@needs("tensorboard")
def test_online_rl_rows_reach_tensorboard_with_their_timing(tmp_path: Path) -> None:
    """Online RL writes its own rows (trainers/online_rl.py) and fills step_time / tokens_per_s after the
    generation: TensorBoard gets the rows as metrics.jsonl ends up, timing included."""
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from repro.config import load_paper_config
    from repro.data.synthetic import TASKS
    from repro.models.tiny import build_char_tokenizer, build_tiny_model
    from repro.rollout.hf import HFRollout
    from repro.trainers.online_rl import OnlineRLTrainer

    tok = build_char_tokenizer()
    model = build_tiny_model(tok, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    cfg = load_paper_config(PAPERS / "dapo", "smoke", "dapo")
    train = dict(per_device_train_batch_size=8, steps_per_generation=2, num_generations=4, max_steps=3, save_steps=0)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, report_to=["tensorboard"], **train))
    torch.manual_seed(0)
    out = tmp_path / "run"
    trainer = OnlineRLTrainer(cfg, model, tok, TASKS.get("addition").make(64, seed=0), HFRollout(model, tok), out, 0)
    with reporting(cfg, out, paper="dapo", tier="smoke", variant="dapo", seed=0):
        trainer.train(progress=False)
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    logged = {(tag, e.step): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}
    assert ("train/tokens_per_s", 3) in logged and ("train/reward_mean", 1) in logged
    assert_same(logged, out, rel=1e-6)


@needs("tensorboard")
def test_a_tracker_failing_mid_run_is_switched_off_and_metrics_jsonl_keeps_every_row(
    tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from repro import trackers
    from repro.runs_sft import train_sft_run
    from repro.sft_config import resolve_sft

    real_log = trackers.TensorBoard.log

    def fails_at_step_3(self: Any, metrics: dict[str, float], step: int) -> None:
        if step == 3:
            raise OSError("disk full")
        real_log(self, metrics, step)

    monkeypatch.setattr(trackers.TensorBoard, "log", fails_at_step_3)
    cfg = resolve_sft(sft_raw(tiny_model_dir, "tensorboard", max_steps=5), "test")
    out = tmp_path / "run"
    train_sft_run(cfg, "dft", "smoke", "dft", 0, out, tiny_model_dir)
    assert "report_to tensorboard failed at step 3 (OSError: disk full)" in capsys.readouterr().err
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5] and (out / "summary.json").is_file()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]  # the live view stops; the run does not


# ----------------------------------------------------------------------------- refusals and none


def test_none_writes_nothing_beside_the_run_files(
    tiny_model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from repro.runs_sft import train_sft_run
    from repro.sft_config import resolve_sft

    for report_to in ("none", ["none"], []):
        assert chosen(report_to) == []
    cfg = resolve_sft(sft_raw(tiny_model_dir, "none", max_steps=2), "test")
    out = tmp_path / "run"
    train_sft_run(cfg, "dft", "smoke", "dft", 0, out, tiny_model_dir)
    assert sorted(p.name for p in out.iterdir()) == ["config.resolved.yaml", "metrics.jsonl", "model", "summary.json"]
    assert "report_to" not in capsys.readouterr().out


def _without(*names: str) -> Any:
    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name in names else REAL_FIND_SPEC(name, *args, **kwargs)

    return find_spec


def test_a_missing_client_library_is_refused_with_its_install_command_before_weights_load(
    tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repro import runs
    from repro.sft_config import resolve_sft

    def no_weights(*_: Any, **__: Any) -> None:
        raise AssertionError("weights were loaded before report_to's libraries were checked")

    cfg = resolve_sft(sft_raw(tiny_model_dir, ["tensorboard", "wandb"]), "test")
    monkeypatch.setattr(runs, "load_paper_config", lambda *_: cfg)
    monkeypatch.setattr("repro.models.loading.load_policy", no_weights)
    monkeypatch.setattr(importlib.util, "find_spec", _without("wandb"))
    with pytest.raises(
        ConfigError, match=r"train\.report_to: wandb is not installed here; install it with `pip install wandb`"
    ):
        runs.train_run("dft", "smoke", "dft", 0, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(importlib.util, "find_spec", _without("tensorboard", "wandb", "trackio"))
    assert chosen("all") == []  # transformers' `all`: the installed ones, here none
    monkeypatch.setattr(importlib.util, "find_spec", _without("wandb"))
    assert chosen("all") == ["tensorboard", "trackio"]


def _kind_configs() -> list[tuple[str, str]]:
    return [("dapo", "naive_grpo"), ("dpo", "dpo"), ("dft", "sft"), ("centered_rm", "rm"),
            ("on_policy_distillation", "on_policy")]  # fmt: skip


@pytest.mark.parametrize(("paper", "variant"), _kind_configs())
def test_every_kind_takes_trls_report_to_values_and_refuses_unknown_names(paper: str, variant: str) -> None:
    from repro.config import merged_paper_config, resolve

    def load(report_to: Any) -> Any:
        raw = merged_paper_config(PAPERS / paper, "smoke", variant)
        return resolve({**raw, "train": {**raw["train"], "report_to": report_to}}, paper)

    assert load(["tensorboard", "wandb"]).train.report_to == ["tensorboard", "wandb"]
    assert load("all").train.report_to == "all"
    assert resolve(merged_paper_config(PAPERS / paper, "smoke", variant), paper).train.report_to == "none"
    with pytest.raises(
        ConfigError, match=r"train\.report_to: unknown report_to 'tensorbord'\. Did you mean 'tensorboard'"
    ):
        load(["tensorbord"])
    with pytest.raises(
        ConfigError, match=r"train\.report_to: 'mlflow' is a transformers integration .*tensorboard, wandb, trackio"
    ):
        load("mlflow")
    with pytest.raises(ConfigError, match=r"train\.report_to: .*`none` and `all` stand alone"):
        load(["none", "wandb"])


def test_report_to_from_a_yaml_layer_and_set_is_checked_and_does_not_make_a_run_stale(tmp_path: Path) -> None:
    from repro.config import dump, load_paper_config
    from repro.overrides import Overrides
    from repro.report.staleness import config_changes

    cfg = load_paper_config(PAPERS / "dapo", "smoke", "dapo", Overrides.parse(sets=["train.report_to=[trackio]"]))
    assert cfg.train.report_to == ["trackio"]
    with pytest.raises(ConfigError, match="Did you mean 'wandb'"):
        load_paper_config(PAPERS / "dapo", "smoke", "dapo", Overrides.parse(sets=["train.report_to=wandbb"]))
    (tmp_path / "config.resolved.yaml").write_text(dump(cfg), encoding="utf-8")  # streamed where the folder doesn't
    assert config_changes(PAPERS / "dapo", "smoke", "dapo", tmp_path) == []
    learning = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, learning_rate=0.5))
    (tmp_path / "config.resolved.yaml").write_text(dump(learning), encoding="utf-8")
    assert config_changes(PAPERS / "dapo", "smoke", "dapo", tmp_path) == ["train.learning_rate"]
