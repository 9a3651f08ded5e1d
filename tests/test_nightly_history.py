"""The nightly's history (results/nightly_history.jsonl) and its trend check: a slow drift planted over five nights,
each within tolerance of the baseline, is flagged on the page with its figure; five nights of noise are not."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_nightly import nightly_root

from repro import nightly, nightly_history
from repro.nightly_history import DRIFT_NIGHTS, drift_slope, read_history, trends

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASELINE_LOSSES = (0.50, 0.52, 0.48)  # mean 0.5: tolerance 1e-6 + 0.05 · 0.5 ≈ 0.025
DRIFT = (0.482, 0.491, 0.500, 0.509, 0.518)  # each night's mean within 0.025 of 0.5; fitted change 0.036
NOISE = (0.506, 0.492, 0.504, 0.497, 0.507)  # the same spread of values, no direction


def _root(tmp_path: Path) -> Path:
    return nightly_root(tmp_path)


def _write_runs(root: Path, mean_loss: float) -> None:
    """Three finished seeds of dft's nightly run, losses mean ± 0.02 (the baseline's spread), accuracy fixed."""
    for seed, offset in zip((0, 1, 2), (0.0, 0.02, -0.02), strict=True):
        run = root / "results" / "dft" / "nightly" / "dft" / f"seed{seed}"
        run.mkdir(parents=True, exist_ok=True)
        (run / "summary.json").write_text(json.dumps({"wall_time_s": 1.0, "provenance": {}}), encoding="utf-8")
        (run / "eval.json").write_text(json.dumps({"greedy_accuracy": 0.5}), encoding="utf-8")
        (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": mean_loss + offset}) + "\n", encoding="utf-8")


def _nights(root: Path, means: tuple[float, ...]) -> Path:
    """A baseline-recording night at the baseline's values, then one nightly run per mean; none may regress."""
    out = root / "reports" / "nightly.md"
    _write_runs(root, 0.5)
    nightly.run_nightly(root, out, update_baselines=True)
    for mean in means:
        _write_runs(root, mean)
        regressed, _ = nightly.run_nightly(root, out)
        assert not regressed, mean
    return out


def test_a_slow_drift_is_flagged_on_the_page_with_its_figure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _root(tmp_path)
    md = _nights(root, DRIFT)
    history, skipped = read_history(root)
    assert skipped == 0 and len(history) == 1 + len(DRIFT)
    assert [n["baselines_updated"] for n in history] == [True] + [False] * len(DRIFT)
    for night, mean in zip(history[1:], DRIFT, strict=True):
        loss = night["papers"]["dft"]["metrics"]["train.loss"]
        assert loss["now"] == pytest.approx(mean) and loss["baseline"] == pytest.approx(0.5)
        assert loss["tolerance"] == pytest.approx(1e-6 + 0.05 * 0.5) and loss["verdict"] == "ok"
        assert night["papers"]["dft"]["comparison"] == "statistical" and not night["regressed"]
        assert night["settings"]["seeds"] == [0, 1, 2] and night["cpu"] and "commit" in night
        assert abs(mean - 0.5) < loss["tolerance"]  # no single night is outside the band

    found = {t.metric: t for t in trends(history)["dft"]}
    assert found["train.loss"].drifting and found["train.loss"].change == pytest.approx(0.036)
    assert not found["eval.greedy_accuracy"].drifting  # flat

    text = md.read_text(encoding="utf-8")
    assert "**Drifting: 1 metric(s) in 1 paper(s).**" in text
    assert "| `dft` | train.loss | 0.482 → 0.518 | +0.036 | 0.025 |" in text
    assert "![trends of dft across nights](figures/nightly_trends_dft.png)" in text
    figure = md.parent / "figures" / "nightly_trends_dft.png"
    assert figure.read_bytes().startswith(PNG_MAGIC)
    page = md.with_suffix(".html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "Drifting: 1 metric(s)" in page
    assert "1 metric(s) drifting across nights" in capsys.readouterr().out  # the terminal's summary line


def test_noise_around_the_baseline_is_not_flagged(tmp_path: Path) -> None:
    root = _root(tmp_path)
    md = _nights(root, NOISE)
    history, _ = read_history(root)
    found = {t.metric: t for t in trends(history)["dft"]}
    assert not found["train.loss"].drifting and found["train.loss"].spread > 0.5  # it moved, in no direction
    text = md.read_text(encoding="utf-8")
    assert f"No metric is drifting over the last {DRIFT_NIGHTS} nights." in text
    assert "figures/nightly_trends_dft.png" in text and "Drifting:" not in text


def _night(date: str, value: float, max_steps: int = 8, tolerance: float | None = 0.025) -> dict[str, Any]:
    metric = {"now": value, "baseline": 0.5 if tolerance else None, "tolerance": tolerance, "verdict": "ok"}
    return {
        "date_utc": date,
        "settings": {"max_steps": max_steps, "seeds": [0, 1, 2], "alpha": 0.01, "abs_tol": 1e-6, "rel_tol": 0.05},
        "papers": {"p": {"metrics": {"m": metric}}},
    }


def test_the_check_needs_a_significant_slope_and_a_material_change() -> None:
    assert drift_slope([0.5, 0.51, 0.52, 0.53, 0.54]) == (pytest.approx(0.01), 0.0)  # a straight line
    assert drift_slope([0.5] * 5) == (0.0, 1.0)
    slope, p = drift_slope([0.5, 0.5, 0.5, 0.5, 0.515])  # one step, then flat: a step, not a drift
    assert p > 0.1 and slope == pytest.approx(0.003)

    def check(values: list[float], **kw: Any) -> bool:
        history = [_night(f"2026-12-{i + 10:02d}", v, **kw) for i, v in enumerate(values)]
        return trends(history)["p"][0].drifting

    assert check([0.49, 0.498, 0.501, 0.509, 0.52])  # up on every night, with wobble
    assert not check([0.5, 0.502, 0.504, 0.506, 0.508])  # straight, but 0.008 < half the tolerance
    assert not check([0.5, 0.5, 0.5, 0.5, 0.52])  # fitted change 0.016, but a step: the slope is not significant
    assert not check([0.482, 0.491, 0.5, 0.509])  # four nights: too few
    assert check([0.48, 0.48, 0.49, 0.5, 0.51, 0.52, 0.52])  # idle nights inside a drift do not hide it
    assert check([0.5, 0.51, 0.52, 0.53, 0.54], tolerance=None)  # no baseline: abs_tol + rel_tol·|mean|


def test_nights_with_other_settings_are_left_out_and_nights_are_read_by_date(tmp_path: Path) -> None:
    nights = [_night(f"2026-12-{i + 10:02d}", 0.48 + 0.01 * i) for i in range(5)]
    nights[2]["settings"]["max_steps"] = 16  # measured something else: the window loses it
    path = tmp_path / "results" / "nightly_history.jsonl"
    path.parent.mkdir(parents=True)
    lines = [json.dumps(n) for n in reversed(nights)] + ["<<<<<<< a merge conflict"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    history, skipped = read_history(tmp_path)
    assert skipped == 1 and [n["date_utc"] for n in history] == [n["date_utc"] for n in nights]
    trend = trends(history)["p"][0]
    assert len(trend.values) == 4 and not trend.drifting  # four comparable nights remain


def test_a_crash_while_appending_leaves_the_earlier_nights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nightly_history.append_night(_night("2026-12-10", 0.5), tmp_path)
    path = tmp_path / nightly_history.HISTORY
    before = path.read_bytes()

    def crash(*args: Any) -> None:
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        nightly_history.append_night(_night("2026-12-11", 0.6), tmp_path)
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == [path.name]
    monkeypatch.undo()
    nightly_history.append_night(_night("2026-12-11", 0.6), tmp_path)
    assert path.read_bytes().startswith(before) and len(read_history(tmp_path)[0]) == 2


def test_the_history_is_tracked_by_git() -> None:
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "results/nightly_history.jsonl"], cwd=repo, check=False
    ).returncode
    assert ignored == 1  # 1: not ignored (results/* is, except the files .gitignore lists)
