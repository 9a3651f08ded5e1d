"""`repro.results.load` and `python -m repro results`: one tidy row per run and metric, from synthetic run folders
whose every number is known."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from repro import results
from repro.cli import main

SHA = "1234567890abcdef1234567890abcdef12345678"
# paper, label, variant, seed -> (losses at steps 1..3, greedy accuracy, wall time)
RUNS: dict[tuple[str, str, str, int], tuple[list[float], float, float]] = {
    ("dapo", "smoke", "dapo", 0): ([0.9, 0.7, 0.5], 0.25, 10.0),
    ("dapo", "smoke", "dapo", 1): ([0.8, 0.6, 0.4], 0.50, 11.0),
    ("dapo", "smoke", "naive_grpo", 0): ([1.0, 0.9, 0.8], 0.125, 12.0),
    ("dapo", "smoke", "naive_grpo", 1): ([1.1, 1.0, 0.7], 0.375, 13.0),
    ("dft", "small@mine-abc123", "dft", 0): ([2.0, 1.5, 1.0], 0.75, 14.0),
}
BASE_ACCURACY = 0.0625
BENCH = 0.3  # bench/aime24.json of dapo/smoke/dapo/seed0 only
# per run: run.{steps,wall_time_s}, eval.greedy_accuracy, eval.base.greedy_accuracy, train.{loss,reward,lr}.{final,mean}
ROWS_PER_RUN = 10


def write_run(root: Path, key: tuple[str, str, str, int]) -> Path:
    paper, label, variant, seed = key
    losses, accuracy, wall = RUNS[key]
    run = root / "results" / paper / label / variant / f"seed{seed}"
    run.mkdir(parents=True)
    rows = [{"step": s, "loss": v, "reward": 0.1 * s, "lr": 1e-3} for s, v in enumerate(losses, start=1)]
    rows[-1]["reward"] = None  # not logged at the last step: its final value is step 2's
    del rows[0]["lr"]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    evaluation = {"greedy_accuracy": accuracy, "k": 4, "n_problems": 64, "items": [{"x": 1}], "flag": True,
                  "base": {"greedy_accuracy": BASE_ACCURACY}}  # fmt: skip
    (run / "eval.json").write_text(json.dumps(evaluation), encoding="utf-8")
    overrides = {"model": "/ckpt/mine"} if "@" in label else {}
    prov = {"git_sha": SHA, "git_dirty": seed == 1, "timestamp_utc": f"2026-12-0{seed + 1}T00:00:00+00:00",
            "cpu": "AMD EPYC (avx512f)", "config_sha256": f"cfg-{variant}", "numerics": {"pinned": True}}  # fmt: skip
    summary = {"paper": paper, "tier": label.split("@")[0], "variant": variant, "seed": seed, "steps": len(rows),
               "wall_time_s": wall, "model": "/ckpt/mine" if overrides else "prepared:smoke", "overrides": overrides,
               "provenance": prov}  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in RUNS:
        write_run(tmp_path, key)
    bench = tmp_path / "results" / "dapo" / "smoke" / "dapo" / "seed0" / "bench"
    bench.mkdir()
    (bench / "aime24.json").write_text(json.dumps({"value": BENCH, "unit": "fraction"}), encoding="utf-8")
    unfinished = tmp_path / "results" / "dapo" / "smoke" / "dapo" / "seed2"  # still training: no summary.json
    unfinished.mkdir()
    (unfinished / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n', encoding="utf-8")
    (tmp_path / "results" / "baselines").mkdir()  # not a paper: never a run
    (tmp_path / "results" / "baselines" / "dapo.json").write_text("{}", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def value(df: pd.DataFrame, variant: str, seed: int, metric: str) -> pd.Series:
    row = df[(df.variant == variant) & (df.seed == seed) & (df.metric == metric)]
    assert len(row) == 1, (variant, seed, metric, len(row))
    return row.iloc[0]


def test_one_row_per_run_and_metric_with_its_value_step_and_provenance(root: Path) -> None:
    df = results.load(root=root)
    assert list(df.columns) == list(results.COLUMNS)
    assert len(df) == ROWS_PER_RUN * len(RUNS) + 1  # + the one benchmark score
    assert not df.duplicated(list(results.KEYS)).any()
    for (paper, label, variant, seed), (losses, accuracy, wall) in RUNS.items():
        mine = df[(df.paper == paper) & (df.variant == variant) & (df.seed == seed)]
        by = mine.set_index("metric")
        assert by.loc["train.loss.final", "value"] == losses[-1] and by.loc["train.loss.final", "step"] == 3
        assert by.loc["train.loss.mean", "value"] == pytest.approx(sum(losses) / 3)
        assert by.loc["train.reward.final", "value"] == pytest.approx(0.2) and by.loc["train.reward.final", "step"] == 2
        assert by.loc["train.reward.mean", "value"] == pytest.approx(0.15)
        assert by.loc["eval.greedy_accuracy", "value"] == accuracy and by.loc["eval.greedy_accuracy", "step"] == 3
        assert by.loc["eval.base.greedy_accuracy", "value"] == BASE_ACCURACY
        assert by.loc["run.wall_time_s", "value"] == wall and by.loc["run.steps", "value"] == 3
        assert set(mine.label) == {label} and set(mine.tier) == {label.split("@")[0]}
        assert set(mine.git_dirty) == {seed == 1} and set(mine.git_sha) == {SHA}
        assert set(mine.run_dir) == {f"results/{paper}/{label}/{variant}/seed{seed}"}
        assert set(mine.config_sha256) == {f"cfg-{variant}"} and mine.numerics_pinned.all()
    # settings (k, n_problems), lists, booleans and the step axis are not metrics; lr is, where logged
    assert not df.metric.isin(["eval.k", "eval.n_problems", "eval.flag", "train.step.mean"]).any()
    assert value(df, "dapo", 0, "train.lr.mean").value == 1e-3
    bench = value(df, "dapo", 0, "bench.aime24")
    assert (bench.value, bench.step, bench.source) == (BENCH, 3, "bench/aime24.json")
    mine = value(df, "dft", 0, "run.steps")
    assert (mine.model, mine.overrides) == ("/ckpt/mine", "model=/ckpt/mine")
    assert value(df, "dapo", 1, "run.steps").overrides == "none"
    assert 2 not in set(df[df.variant == "dapo"].seed)  # the unfinished run
    assert results.summary_line(df) == f"rows={len(df)} runs={len(RUNS)}"
    assert str(df.step.dtype) == "Int64" and str(df.seed.dtype) == "int64"


def test_filters_by_paper_and_tier(root: Path) -> None:
    dapo = results.load(paper="dapo", root=root)
    assert set(dapo.paper) == {"dapo"} and len(dapo) == ROWS_PER_RUN * 4 + 1
    both = results.load(paper=["dapo", "dft"], root=root)
    assert len(both) == len(results.load(root=root)) == len(results.load(paper="dapo,dft", root=root))
    small = results.load(tier="small", root=root)  # the tier takes its @<overrides> folders
    assert set(small.label) == {"small@mine-abc123"} and len(small) == ROWS_PER_RUN
    assert len(results.load(tier="small@mine-abc123", root=root)) == ROWS_PER_RUN
    assert results.load(tier="small@other", root=root).empty
    empty = results.load(paper="dapo", tier="small", root=root)
    assert empty.empty and list(empty.columns) == list(results.COLUMNS)
    assert results.summary_line(empty) == "rows=0 runs=0"


def test_csv_on_stdout_is_clean_and_the_summary_line_comes_last(root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["results", "--paper", "dapo", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    table = pd.read_csv(io.StringIO(out))
    expected = results.load(paper="dapo", root=root)
    assert list(table.columns) == list(results.COLUMNS) and len(table) == len(expected) == 4 * ROWS_PER_RUN + 1
    assert table.value.tolist() == pytest.approx(expected.value.tolist())
    assert err.strip().splitlines()[-1] == f"rows={4 * ROWS_PER_RUN + 1} runs=4"


def test_markdown_and_out_file(root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["results", "--tier", "small", "--format", "markdown"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].startswith("| paper | tier | label | variant | seed | model | metric | value | step |")
    assert len(lines) == 2 + ROWS_PER_RUN and "| train.loss.final | 1 | 3 |" in out
    assert err.strip().splitlines()[-1] == f"rows={ROWS_PER_RUN} runs=1"
    assert main(["results", "--format", "csv", "--out", "table.csv"]) == 0
    out, _ = capsys.readouterr()
    assert out == f"rows={ROWS_PER_RUN * len(RUNS) + 1} runs={len(RUNS)}\n"
    assert len(pd.read_csv(root / "table.csv")) == ROWS_PER_RUN * len(RUNS) + 1
    assert not list(root.glob(".table.csv.*"))  # the atomic write's temporary is gone


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow not installed")
def test_parquet_round_trips(root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["results", "--format", "parquet", "--out", "table.parquet"]) == 0
    back = pd.read_parquet(root / "table.parquet")
    pd.testing.assert_frame_equal(back, results.load(root=root))
    assert capsys.readouterr().out == f"rows={ROWS_PER_RUN * len(RUNS) + 1} runs={len(RUNS)}\n"


def test_parquet_without_pyarrow_is_refused_before_any_work(
    root: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError

    def no_work(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("results were read before the format was checked")

    monkeypatch.setattr(results, "load", no_work)
    assert main(["results", "--format", "parquet", "--out", "table.parquet"]) == 2
    err = capsys.readouterr().err
    assert "needs pyarrow" in err and "pip install pyarrow" in err and not (root / "table.parquet").exists()
    monkeypatch.delitem(sys.modules, "pyarrow")
    if importlib.util.find_spec("pyarrow") is not None:  # parquet is binary: not to a terminal
        assert main(["results", "--format", "parquet"]) == 2
        assert "add --out" in capsys.readouterr().err
