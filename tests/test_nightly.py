"""The nightly regression detector: by hand, then measured on real short SFT runs — A/A trials (same code, other
seeds) raise no alarm, and a planted regression (the DFT term's sign flipped) is caught."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from repro import nightly, nightly_identity
from repro.nightly import NightlySettings, compare_metric, detect, run_metrics

SETTINGS = NightlySettings(max_steps=8, seeds=[0, 1, 2], alpha=0.01, abs_tol=1e-6, rel_tol=0.05)
A_A_TRIALS = 20  # disjoint (baseline, candidate) triples of seeds drawn from 9 runs of unchanged code


def test_a_metric_regresses_only_when_significant_and_beyond_tolerance() -> None:
    base, moved = [1.00, 1.02, 0.98], [1.50, 1.52, 1.48]
    c = compare_metric("train.loss", base, moved, 0.01, SETTINGS)
    assert c.p == pytest.approx(stats.ttest_ind(moved, base, equal_var=False).pvalue)
    assert c.regressed and c.delta == pytest.approx(0.5) and c.tolerance == pytest.approx(1e-6 + 0.05)
    small = compare_metric("train.loss", base, [1.03, 1.05, 1.01], 0.01, SETTINGS)  # significant? 3%: in tolerance
    assert not small.regressed
    noisy = compare_metric("train.loss", [1.0, 2.0, 3.0], [1.5, 2.5, 3.5], 0.01, SETTINGS)  # 25% but noise
    assert noisy.p > 0.3 and not noisy.regressed
    same = compare_metric("eval.n", [5.0, 5.0, 5.0], [5.0, 5.0, 5.0], 0.01, SETTINGS)
    changed = compare_metric("eval.n", [5.0, 5.0, 5.0], [6.0, 6.0, 6.0], 0.01, SETTINGS)
    assert (same.p, same.regressed) == (1.0, False) and (changed.p, changed.regressed) == (0.0, True)


def test_detect_divides_alpha_by_every_metric_compared() -> None:
    base = {"a": {"m": {"0": 1.0, "1": 1.1, "2": 0.9}, "n": {"0": 1.0, "1": 1.0}}, "b": {"m": {"0": 1.0}}}
    now = {"a": {"m": {"3": 1.6, "4": 1.7, "5": 1.5}, "n": {"3": 1.0, "4": 1.0}}, "b": {"m": {"3": 9.0}}}
    out = detect(base, now, SETTINGS)
    assert [c.metric for c in out["a"]] == ["m", "n"] and out["b"] == []  # b: one seed a side, not testable
    p = stats.ttest_ind([1.6, 1.7, 1.5], [1.0, 1.1, 0.9], equal_var=False).pvalue
    assert out["a"][0].regressed == (p < 0.01 / 2)


# --------------------------------------------------------------------------- measured on real runs


def _cfg(model_dir: str) -> object:
    from repro.sft_config import resolve_sft

    return resolve_sft(
        {
            "trainer": "sft",
            "model": {"name_or_path": model_dir},
            "data": {"dataset": "synthetic:addition"},
            "train": {"loss_type": "dft", "max_steps": 8, "learning_rate": 1e-2, "per_device_train_batch_size": 16,
                      "lr_scheduler_type": "constant", "max_length": 32, "save_steps": 0, "eval_every": 0},
            "eval": {"n_problems": 16, "k": 2, "max_new_tokens": 5},
        },
        "nightly test",
    )  # fmt: skip


def _run(model_dir: str, out: Path, seed: int) -> dict[str, float]:
    from repro.runs_sft import eval_sft_run, train_sft_run

    cfg = _cfg(model_dir)
    train_sft_run(cfg, "dft", "nightly", "dft", seed, out, model_dir)
    eval_sft_run(out, cfg, out / "eval.json")
    return run_metrics(out)


@pytest.fixture(scope="module")
def clean_runs(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, float]]:
    root = tmp_path_factory.mktemp("aa")
    return {seed: _run(tiny_model_dir, root / f"seed{seed}", seed) for seed in range(9)}


def _by_metric(runs: dict[int, dict[str, float]], seeds: tuple[int, ...]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for seed in seeds:
        for name, value in runs[seed].items():
            out.setdefault(name, {})[str(seed)] = value
    return out


def test_a_a_trials_raise_no_alarm(clean_runs: dict[int, dict[str, float]]) -> None:
    triples = list(itertools.combinations(range(9), 3))
    rng = random.Random(0)
    trials, alarms = 0, []
    while trials < A_A_TRIALS:
        a, b = rng.sample(triples, 2)
        if set(a) & set(b):
            continue
        trials += 1
        found = detect({"p": _by_metric(clean_runs, a)}, {"p": _by_metric(clean_runs, b)}, SETTINGS)["p"]
        names = {c.metric.split(".")[0] for c in found}
        assert names == {"eval", "train"} and len(found) >= 10  # eval.json and metrics.jsonl both contribute
        alarms += [(a, b, c.metric) for c in found if c.regressed]
    assert alarms == []


def test_a_planted_sign_flip_is_caught(
    clean_runs: dict[int, dict[str, float]], tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repro.losses import sft

    dft = sft.SFT_LOSSES.get("dft")
    monkeypatch.setitem(sft.SFT_LOSSES._entries, "dft", lambda logps: -dft(logps))  # +sg(p)·log p: ascends NLL
    planted = {seed: _run(tiny_model_dir, tmp_path / f"seed{seed}", seed) for seed in (3, 4, 5)}
    found = detect({"p": _by_metric(clean_runs, (0, 1, 2))}, {"p": _by_metric(planted, (3, 4, 5))}, SETTINGS)["p"]
    caught = {c.metric for c in found if c.regressed}
    assert {"train.loss", "train.nll"} <= caught


def test_nightly_report_names_the_regression_and_exits_nonzero(tmp_path: Path) -> None:
    nightly_root(tmp_path)
    for seed, loss in zip((0, 1, 2), (0.50, 0.52, 0.48), strict=True):
        run = tmp_path / "results" / "dft" / "nightly" / "dft" / f"seed{seed}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps({"wall_time_s": 10.0, "provenance": {}}), encoding="utf-8")
        (run / "eval.json").write_text(json.dumps({"greedy_accuracy": 0.5, "k": 8}), encoding="utf-8")
        (run / "metrics.jsonl").write_text(f'{{"step": 1, "loss": {loss}}}\n', encoding="utf-8")
    regressed, _ = nightly.run_nightly(tmp_path, tmp_path / "reports" / "nightly.md", update_baselines=True)
    baseline = json.loads((tmp_path / "results" / "baselines" / "dft.json").read_text(encoding="utf-8"))
    assert not regressed and baseline["metrics"] == {
        "eval.greedy_accuracy": {"0": 0.5, "1": 0.5, "2": 0.5},
        "train.loss": {"0": 0.5, "1": 0.52, "2": 0.48},
    }
    for seed in (0, 1, 2):  # the loss doubles
        path = tmp_path / "results" / "dft" / "nightly" / "dft" / f"seed{seed}" / "metrics.jsonl"
        path.write_text(f'{{"step": 1, "loss": {1.0 + 0.02 * seed}}}\n', encoding="utf-8")
    regressed, md = nightly.run_nightly(tmp_path, tmp_path / "reports" / "nightly.md")
    text = md.read_text(encoding="utf-8")
    assert (
        regressed
        and "**1 regression(s) in 1 paper(s)**" in text
        and "| train.loss | 0.5 ± 0.02 | 1.02 ± 0.02 |" in text
    )
    assert "(commit" in text or "(the baseline records no commit)" in text  # tmp_path is not a git checkout
    assert (tmp_path / "reports" / "nightly.html").is_file()
    assert "another CPU" not in text  # the baseline was recorded here
    baseline["provenance"]["cpu"] = "Other CPU (avx2)"
    (tmp_path / "results" / "baselines" / "dft.json").write_text(json.dumps(baseline), encoding="utf-8")
    _, md = nightly.run_nightly(tmp_path, tmp_path / "reports" / "nightly.md")
    text = md.read_text(encoding="utf-8")
    assert "**Baselines from another CPU.**" in text and "Baseline CPU: Other CPU (avx2); this run:" in text


# --------------------------------------------------------------------------- exact comparisons (issue 26)


def _write_nightly_runs(root: Path, losses: tuple[float, ...], code: str = "c0de") -> None:
    """Three finished nightly seeds of dft whose provenance says pinned numerics and the same code."""
    for seed, loss in zip((0, 1, 2), losses, strict=True):
        run = root / "results" / "dft" / "nightly" / "dft" / f"seed{seed}"
        run.mkdir(parents=True, exist_ok=True)
        prov = {"code_sha256": code, "config_sha256": f"cfg{seed}", "numerics": {"pinned": True}}
        (run / "summary.json").write_text(json.dumps({"wall_time_s": 1.0, "provenance": prov}), encoding="utf-8")
        (run / "eval.json").write_text(json.dumps({"greedy_accuracy": 0.5}), encoding="utf-8")
        (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": loss}) + "\n", encoding="utf-8")


def nightly_root(tmp_path: Path) -> Path:
    """A project root with papers/dft and configs/nightly.yaml, for run_nightly on synthetic runs."""
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "dft").symlink_to(Path(__file__).resolve().parents[1] / "papers" / "dft")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "nightly.yaml").write_text(
        "max_steps: 8\nseeds: [0, 1, 2]\nalpha: 0.01\nabs_tol: 1.0e-6\nrel_tol: 0.05\n", encoding="utf-8"
    )
    return tmp_path


def _recorded_baseline(root: Path) -> tuple[Path, dict[str, Any]]:
    """Record the nightly runs under `root` as dft's baseline; returns its file and contents, to edit in a test."""
    nightly.run_nightly(root, root / "reports" / "nightly.md", update_baselines=True)
    path = root / "results" / "baselines" / "dft.json"
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_same_inputs_on_pinned_numerics_compare_exactly_and_one_bit_regresses(tmp_path: Path) -> None:
    import math

    root = nightly_root(tmp_path)
    _write_nightly_runs(root, (0.50, 0.52, 0.48))
    path, baseline = _recorded_baseline(root)
    assert baseline["identity"]["numerics_pinned"] and baseline["identity"]["code_sha256"] == "c0de"
    baseline["provenance"]["cpu"] = "Other CPU (avx2)"  # pinned numerics: the CPU does not matter
    path.write_text(json.dumps(baseline), encoding="utf-8")

    regressed, md = nightly.run_nightly(root, root / "reports" / "nightly.md")
    text = md.read_text(encoding="utf-8")
    assert not regressed and "2 metrics compared with the baselines, 2 of them exactly" in text
    assert "| exact | ok |" in text and "another CPU" not in text

    # one seed's loss moves by one ulp: far inside the statistical tolerance, but not the same bits
    _write_nightly_runs(root, (math.nextafter(0.50, 1.0), 0.52, 0.48))
    regressed, md = nightly.run_nightly(root, root / "reports" / "nightly.md")
    text = md.read_text(encoding="utf-8")
    assert (
        regressed and "Compared exactly" in text and "| train.loss | 0.5 ± 0.02 | 0.5 ± 0.02 | 1.11e-16 | 1 |" in text
    )

    # the same ulp with other code: statistical, and within tolerance
    _write_nightly_runs(root, (math.nextafter(0.50, 1.0), 0.52, 0.48), code="other")
    regressed, md = nightly.run_nightly(root, root / "reports" / "nightly.md")
    text = md.read_text(encoding="utf-8")
    assert not regressed and "| statistical: the code differs (1/2 metrics bit-identical) | ok |" in text
    assert "0 of them exactly" in text


def test_a_package_moved_since_the_baseline_is_named_and_turns_the_comparison_statistical(tmp_path: Path) -> None:
    root = nightly_root(tmp_path)
    _write_nightly_runs(root, (0.50, 0.52, 0.48))
    path, baseline = _recorded_baseline(root)
    installed = baseline["identity"]["environment"]["transformers"]
    baseline["identity"]["environment"]["transformers"] = "0.0.1"
    baseline["identity"]["environment"]["gone-package"] = "1.0"
    path.write_text(json.dumps(baseline), encoding="utf-8")
    _write_nightly_runs(root, (1.00, 1.02, 0.98))  # the loss doubles: a real regression, read statistically
    regressed, md = nightly.run_nightly(root, root / "reports" / "nightly.md")
    text = md.read_text(encoding="utf-8")
    assert regressed and "statistical: 2 package(s) moved" in text
    assert f"- transformers 0.0.1 → {installed}" in text and "- gone-package 1.0 → —" in text
    assert "Packages moved since the baseline:" in text  # under the regression, beside the commits
    assert nightly_identity.package_changes({"a": "1"}, {"a": "1", "b": "2"}) == ["b — → 2"]


def test_a_baseline_without_identity_is_compared_statistically_and_says_why(tmp_path: Path) -> None:
    root = nightly_root(tmp_path)
    _write_nightly_runs(root, (0.50, 0.52, 0.48))
    path, baseline = _recorded_baseline(root)
    del baseline["identity"]
    path.write_text(json.dumps(baseline), encoding="utf-8")
    _, md = nightly.run_nightly(root, root / "reports" / "nightly.md")
    assert "statistical: the baseline records no identity" in md.read_text(encoding="utf-8")


def test_a_preference_sample_is_identified_by_its_samples_and_a_model_by_its_weights(tmp_path: Path) -> None:
    sample = tmp_path / "smoke_pref"
    sample.mkdir()
    (sample / "prepare.json").write_text('{"wall_time_s": 1.0}', encoding="utf-8")  # not part of the identity
    (sample / "samples_train.jsonl").write_text('{"prompt": "1+1="}\n', encoding="utf-8")
    first = nightly_identity.base_sha256(sample)
    (sample / "prepare.json").write_text('{"wall_time_s": 2.0}', encoding="utf-8")
    assert first is not None and nightly_identity.base_sha256(sample) == first
    (sample / "samples_train.jsonl").write_text('{"prompt": "1+2="}\n', encoding="utf-8")
    assert nightly_identity.base_sha256(sample) != first
    model = tmp_path / "smoke" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights")
    assert nightly_identity.base_sha256(tmp_path / "smoke") == nightly_identity.base_sha256(tmp_path / "smoke")
    assert nightly_identity.base_sha256(tmp_path / "missing") is None


def test_the_environment_is_the_locked_packages_only(tmp_path: Path) -> None:
    """Whatever else a machine's Python holds does not block an exact comparison; a locked package that is missing
    or at another version does."""
    from importlib import metadata

    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# header\nnumpy==1.0  # via x\nNo_Such.Package==2.0\n", encoding="utf-8"
    )  # the lock's versions are not read, only its names
    env = nightly_identity.environment(lock)
    assert env == {"no-such-package": "not installed", "numpy": metadata.version("numpy")}
    assert len(nightly_identity.environment(tmp_path / "missing.lock")) > 2  # no lock: every distribution
