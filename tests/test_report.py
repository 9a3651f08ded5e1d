"""compare.json and report.md from synthetic run dirs with known answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from repro.report.claims import welch_t
from repro.report.compare import compare, deviation, target_status, write_compare
from repro.report.render import fmt, render_report
from repro.report.targets import load_targets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VARIANTS = ["naive_grpo", "overlong_filtering", "clip_higher", "dapo"]
STEPS = 12

PAPER = {
    "id": "dapo",
    "title": "DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
    "arxiv": "2503.14476v1",
    "family": "grpo",
    "variants": VARIANTS,
    "default_variant": "dapo",
    "ablation": {
        "title": "Progressive techniques on AIME 2024",
        "source": "DAPO Table 1",
        "metric": "AIME24 avg@32",
        "rows": [
            {"variant": "naive_grpo", "label": "Naive GRPO", "published": 30},
            {"variant": "overlong_filtering", "label": "+ Overlong Filtering", "published": 36},
            {"variant": "clip_higher", "label": "+ Clip-Higher", "published": 38},
            {"variant": "dapo", "label": "DAPO", "published": 50},
        ],
    },
    "settings_table": [
        {"key": "optim.lr", "paper": 1.0e-6, "source": "§4.1"},
        {"key": "loss.epsilon_high", "paper": 0.28, "source": "§3.1"},
        {"key": "rollout.max_tokens", "paper": 20480, "source": "§4.1"},
    ],
}


def target(tid: str, variant: str, value: float) -> dict[str, Any]:
    return {
        "id": tid,
        "variant": variant,
        "model": "Qwen2.5-32B",
        "benchmark": "aime24",
        "protocol": {"metric": "avg@k", "k": 32, "temperature": 1.0, "top_p": 0.7, "max_tokens": 20480},
        "value": value,
        "unit": "percent",
        "source": {"table": "Table 1", "arxiv": "2503.14476v1"},
        "tolerance": 3.0,
        "tier": "paper",
    }


def claim(cid: str, treatment: str, control: str | None, metric: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "statement": f"statement of {cid}",
        "source": "DAPO §3",
        "treatment": treatment,
        **({"control": control} if control else {}),
        "metric": metric,
        "kind": "premise" if control == "base_model" else "mechanism",
        **extra,
    }


ENTROPY = {"file": "metrics", "name": "entropy", "reduce": "mean_last", "frac": 0.5}
SAMPLED = {"file": "eval", "name": "sampled_accuracy"}
TARGETS = {
    "paper": "dapo",
    "targets": [target("aime24_dapo", "dapo", 50.0), target("aime24_grpo", "naive_grpo", 30.0)],
    "references": [
        {
            "id": "winrate",
            "model": "Pythia-6.9B",
            "metric": "GPT-4 win rate | TL;DR",
            "value": 77.9,
            "source": {"arxiv": "2402.14740v1", "table": "Table 1"},
            "why_not_run": "needs a GPT-4 judge",
        }
    ],  # fmt: skip
    "claims": [
        claim("clip_higher_entropy", "clip_higher", "overlong_filtering", ENTROPY, direction="greater", test="welch_t"),
        claim(
            "no_zero_std_updates",
            "dapo",
            "overlong_filtering",
            {"file": "metrics", "name": "frac_zero_std_update", "reduce": "max"},
            test="max_equals",
            threshold={"op": "==", "value": 0},
        ),
        claim(
            "clip_higher_shorter",
            "clip_higher",
            "overlong_filtering",
            {"file": "metrics", "name": "response_length", "reduce": "mean"},
            direction="less",
            test="welch_t",
        ),
        claim("beats_base", "dapo", "base_model", SAMPLED, direction="greater", test="paired_t"),
        claim("dapo_vs_clip_higher", "dapo", "clip_higher", SAMPLED, direction="greater", test="bootstrap"),
        claim("grpo_entropy", "naive_grpo", "overlong_filtering", ENTROPY, direction="less", test="welch_t"),
    ],
}

# per variant, per seed: entropy in the last half of training, response length, eval accuracy
RUNS = {
    "naive_grpo": {"entropy": [0.3, 0.35], "length": [90, 95], "sampled": [0.30, 0.31]},
    "overlong_filtering": {"entropy": [0.5, 0.6, 0.55], "length": [80, 82, 81], "sampled": [0.35, 0.37, 0.36]},
    "clip_higher": {"entropy": [1.0, 1.1, 1.2], "length": [120, 121, 119], "sampled": [0.58, 0.66, 0.61]},
    "dapo": {"entropy": [0.9, 1.0, 0.95], "length": [100, 101, 99], "sampled": [0.60, 0.62, 0.65]},
}
BASE_SAMPLED = [0.30, 0.31, 0.29]


def write_run(run_dir: Path, variant: str, seed: int, benchmark: float | None = None) -> None:
    spec = RUNS[variant]
    run_dir.mkdir(parents=True)
    config = {"optim": {"lr": 1.0e-5}, "loss": {"epsilon_high": 0.28 if variant != "naive_grpo" else 0.2}}
    (run_dir / "config.resolved.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    rows = []
    for step in range(STEPS):
        early = step < STEPS // 2
        rows.append(
            {
                "step": step,
                "reward_mean": 0.2 + 0.03 * step + 0.01 * seed,
                "accuracy": 0.2 + 0.03 * step,
                "entropy": spec["entropy"][seed] + (0.5 if early else 0.0),  # mean_last 0.5 = the value
                "clip_frac_low": 0.01,
                "clip_frac_high": 0.02 if variant != "naive_grpo" else 0.0,
                "kl": None,
                "response_length": spec["length"][seed],
                "truncation_rate": 0.1,
                "frac_zero_std": 0.25,
                "frac_zero_std_update": 0.0 if variant == "dapo" else 0.25,
                **({"refill_batches": 2} if variant == "dapo" else {}),
                "loss": 0.1,
            }
        )
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    evaluation: dict[str, Any] = {
        "greedy_accuracy": spec["sampled"][seed],
        "sampled_accuracy": spec["sampled"][seed],
        "pass_at_k": 0.9,
        "k": 4,
        "n_problems": 64,
        "base": {"greedy_accuracy": BASE_SAMPLED[seed], "sampled_accuracy": BASE_SAMPLED[seed]},
        "items": [],
    }
    (run_dir / "eval.json").write_text(json.dumps(evaluation), encoding="utf-8")
    if benchmark is not None:  # what `repro bench` writes
        result = {"value": benchmark, "unit": "fraction", "ci": [benchmark - 0.05, benchmark + 0.05]}
        (run_dir / "bench").mkdir()
        (run_dir / "bench" / "aime24.json").write_text(json.dumps(result), encoding="utf-8")
    summary = {
        "wall_time_s": 42.0 + seed,
        "steps": STEPS,
        "final": {},
        "provenance": {"git_sha": "abc123", "config_sha256": "f" * 64},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def make_paper(root: Path) -> Path:
    paper_dir = root / "papers" / "dapo"
    paper_dir.mkdir(parents=True)
    (paper_dir / "paper.yaml").write_text(yaml.safe_dump(PAPER), encoding="utf-8")
    (paper_dir / "targets.yaml").write_text(yaml.safe_dump(TARGETS), encoding="utf-8")
    return paper_dir


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("smoke")
    paper_dir = make_paper(root)
    tier_dir = root / "results" / "dapo" / "smoke"
    for variant, spec in RUNS.items():
        for seed in range(len(spec["entropy"])):
            write_run(tier_dir / variant / f"seed{seed}", variant, seed)
    (tier_dir / "naive_grpo" / "seed2").mkdir()  # a crashed run: nothing written
    (tier_dir / "overlong_filtering" / "seed2" / "summary.json").write_text("{", encoding="utf-8")
    return paper_dir, tier_dir


@pytest.fixture(scope="module")
def smoke_compare(smoke: tuple[Path, Path]) -> dict[str, Any]:
    paper_dir, tier_dir = smoke
    path = write_compare(paper_dir, tier_dir, "smoke")
    assert path == tier_dir / "compare.json"
    return json.loads(path.read_text(encoding="utf-8"))


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in rows}


def test_claim_verdicts(smoke_compare: dict[str, Any]) -> None:
    claims = by_id(smoke_compare["claims"])
    assert {k: c["verdict"] for k, c in claims.items()} == {
        "clip_higher_entropy": "reproduced",
        "no_zero_std_updates": "reproduced",
        "clip_higher_shorter": "not reproduced",
        "beats_base": "holds",
        "dapo_vs_clip_higher": "inconclusive",
        "grpo_entropy": "insufficient seeds",
    }
    entropy = claims["clip_higher_entropy"]
    expected = welch_t([1.0, 1.1, 1.2], [0.5, 0.6, 0.55])
    assert entropy["treatment_mean"] == pytest.approx(1.1)
    assert entropy["control_mean"] == pytest.approx(0.55)
    assert entropy["effect"] == pytest.approx(0.55)
    assert entropy["p_value"] == pytest.approx(expected.p_greater)
    assert entropy["ci"] == pytest.approx(list(expected.ci))
    assert (entropy["n_treatment"], entropy["n_control"]) == (3, 3)
    assert claims["beats_base"]["control_mean"] == pytest.approx(0.3)
    assert claims["grpo_entropy"]["n_treatment"] == 2
    assert "1 treatment run(s) without a value" in claims["grpo_entropy"]["note"]


def test_targets_not_comparable_at_smoke(smoke_compare: dict[str, Any]) -> None:
    for row in smoke_compare["targets"]:
        assert row["status"] == "not comparable at this tier"
        assert row["ours"] is None and row["delta"] is None


def test_ablation_settings_divergence_runs(smoke_compare: dict[str, Any]) -> None:
    ablation = {r["variant"]: r for r in smoke_compare["ablation"]}
    assert ablation["dapo"]["ours_mean"] == pytest.approx(62.333333)
    assert ablation["dapo"]["published"] == 50
    assert ablation["dapo"]["n_seeds"] == 3 and len(ablation["dapo"]["ours_ci"]) == 2
    assert ablation["naive_grpo"]["n_seeds"] == 2
    assert "×100" in smoke_compare["ablation_meta"]["ours_metric"]
    settings = {s["key"]: s for s in smoke_compare["settings"]}
    assert settings["optim.lr"]["ours"] == pytest.approx(1e-5)
    assert settings["optim.lr"]["deviation"] == "×10 of paper"
    assert settings["loss.epsilon_high"]["deviation"] == "none"
    assert settings["rollout.max_tokens"]["ours"] is None and settings["rollout.max_tokens"]["deviation"] == "—"
    divergence = smoke_compare["divergence"]
    assert divergence["dapo"]["refill_batches"] == pytest.approx(2.0)
    assert divergence["clip_higher"]["refill_batches"] is None
    assert divergence["clip_higher"]["response_length"] == pytest.approx(120.0)
    runs = {(r["variant"], r["seed"]): r for r in smoke_compare["runs"]}
    assert len(runs) == 12
    assert set(runs["naive_grpo", 2]["missing"]) == {
        "config.resolved.yaml",
        "metrics.jsonl",
        "eval.json",
        "summary.json",
    }
    assert "summary.json: unreadable" in runs["overlong_filtering", 2]["errors"][0]
    assert runs["dapo", 1]["wall_time_s"] == 43.0
    assert any("naive_grpo/seed2" in w for w in smoke_compare["warnings"])
    assert smoke_compare["provenance"]["config_sha256"] is not None


def test_paper_tier_targets(tmp_path: Path) -> None:
    paper_dir = make_paper(tmp_path)
    tier_dir = tmp_path / "results" / "dapo" / "paper"
    for seed, score in enumerate([0.48, 0.50, 0.52]):
        write_run(tier_dir / "dapo" / f"seed{seed}", "dapo", seed, benchmark=score)
    write_run(tier_dir / "naive_grpo" / "seed0", "naive_grpo", 0)  # eval without aime24
    rows = by_id(compare(paper_dir, tier_dir, "paper")["targets"])
    assert rows["aime24_dapo"]["status"] == "reproduced"
    assert rows["aime24_dapo"]["ours"] == pytest.approx(50.0)
    assert rows["aime24_dapo"]["delta"] == pytest.approx(0.0, abs=1e-9)
    assert rows["aime24_dapo"]["n_seeds"] == 3 and rows["aime24_dapo"]["ci_kind"] == "training seeds"
    assert rows["aime24_grpo"]["status"] == "no result"  # the target's tier, but no aime24 score yet
    assert rows["aime24_grpo"]["note"] == "no result for benchmark 'aime24' yet"
    empty = compare(paper_dir, tmp_path / "nowhere", "paper")  # no runs at all: reported, no crash
    assert {r["status"] for r in empty["targets"]} == {"no result"}
    assert {c["verdict"] for c in empty["claims"]} == {"insufficient seeds"}


def test_benchmark_results_are_shown_at_every_tier_and_judged_only_at_the_targets(tmp_path: Path) -> None:
    """bench/<name>.json files (what `repro bench` writes) feed the targets table."""
    paper_dir = make_paper(tmp_path)
    for tier, scores in (("smoke", [0.0, 0.1 / 3]), ("paper", [0.49, 0.51])):
        for seed, score in enumerate(scores):
            run_dir = tmp_path / "results" / "dapo" / tier / "dapo" / f"seed{seed}"
            write_run(run_dir, "dapo", seed)
            (run_dir / "bench").mkdir()
            protocol = {"metric": "avg@k", "n": 4, "k": 4 if tier == "smoke" else 32, "temperature": 1.0}
            result = {"value": score, "unit": "fraction", "ci": [score - 0.02, score + 0.02], "protocol": protocol,
                      "metric_name": f"avg@{protocol['k']}"}  # fmt: skip
            (run_dir / "bench" / "aime24.json").write_text(json.dumps(result), encoding="utf-8")
    smoke = by_id(compare(paper_dir, tmp_path / "results" / "dapo" / "smoke", "smoke")["targets"])["aime24_dapo"]
    assert smoke["status"] == "not comparable at this tier" and smoke["delta"] is None
    assert smoke["ours"] == pytest.approx(100 * 0.05 / 3) and smoke["n_seeds"] == 2
    assert smoke["protocol_deviations"] == ["k: ours 4 vs paper 32"]
    assert smoke["eval_ci"] == pytest.approx([100 * 0.05 / 3 - 2 / 2**0.5, 100 * 0.05 / 3 + 2 / 2**0.5])
    paper = by_id(compare(paper_dir, tmp_path / "results" / "dapo" / "paper", "paper")["targets"])["aime24_dapo"]
    assert paper["ours"] == pytest.approx(50.0) and paper["delta"] == pytest.approx(0.0, abs=1e-9)
    assert paper["status"] == "reproduced" and paper["protocol_deviations"] == []


def test_target_status_grades(tmp_path: Path) -> None:
    (tmp_path / "targets.yaml").write_text(yaml.safe_dump(TARGETS), encoding="utf-8")
    published = load_targets(tmp_path / "targets.yaml", VARIANTS).targets[0]  # 50 ± 3
    assert target_status(49.0, (47.0, 51.0), published) == "reproduced"
    assert target_status(49.0, (48.5, 49.5), published) == "within tolerance"
    assert target_status(49.0, None, published) == "within tolerance"
    assert target_status(54.0, (53.0, 55.0), published) == "better than reported"
    assert target_status(40.0, (39.0, 41.0), published) == "not reproduced"
    assert deviation(True, "true") == "none" and deviation("a", "b") == "differs"


def test_render_report(smoke: tuple[Path, Path], smoke_compare: dict[str, Any], tmp_path: Path) -> None:
    paper_dir, tier_dir = smoke
    out = render_report(paper_dir, tier_dir / "compare.json", "smoke", tmp_path / "reports" / "dapo" / "report.md")
    text = out.read_text(encoding="utf-8")
    for heading in (
        "# DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
        "## Settings (ours vs paper)",
        "## Published targets",
        "### Evaluation protocol",
        "## Claims",
        "## Ablation",
        "## Training curves",
        "## Causes of silent divergence",
        "## Provenance",
    ):
        assert heading in text
    assert "https://arxiv.org/abs/2503.14476v1" in text
    assert "**not comparable**" in text and "smoke" in text
    assert "not comparable at this tier" in text and "insufficient seeds" in text
    assert "statement of clip_higher_entropy" in text
    assert "— a check of the paper's claims at smoke scale (toy model and task; not a reproduction)" in text
    assert "reproduction report" not in text
    mechanism, premises = text.split("### Mechanism claims")[1].split("### Premises")
    assert "| clip_higher_entropy |" in mechanism and "| beats_base |" not in mechanism
    assert "| beats_base |" in premises.split("\n\n- ")[0] and "**holds**" in premises
    # the threshold claim's placebo: the control (0.25 on every seed) against `== 0` fails
    assert re.search(r"\| no_zero_std_updates \|.*\| fails \(control 0\.25\) \| \*\*reproduced\*\* \|", mechanism)
    assert re.search(r"\| clip_higher_entropy \|.*\| fails \(effect 0, p ", mechanism)
    assert "| `optim.lr` | 1e-06 | 1e-05 | ×10 of paper |" in text
    assert "missing config.resolved.yaml" in text
    assert "### Published numbers not run here" in text
    assert (
        "| winrate | Pythia-6.9B | GPT-4 win rate \\| TL;DR | 77.9 | — | Table 1, arXiv 2402.14740v1 | needs a GPT-4 judge |"
        in text
    )
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "figures/ablation.png" in images and "figures/curves_entropy.png" in images
    assert len(images) == 7  # 6 curve figures + ablation
    for image in images:
        assert (out.parent / image).read_bytes()[:8] == PNG_MAGIC


def test_render_rejects_wrong_tier(smoke: tuple[Path, Path], smoke_compare: dict[str, Any], tmp_path: Path) -> None:
    paper_dir, tier_dir = smoke
    with pytest.raises(ValueError, match="tier"):
        render_report(paper_dir, tier_dir / "compare.json", "paper", tmp_path / "report.md")


def test_number_formatting() -> None:
    assert [fmt(None), fmt(0.123456), fmt(47.0), fmt(20480), fmt(12345.6), fmt(0.00012), fmt(0.5, signed=True)] == [
        "—",
        "0.123",
        "47",
        "20,480",
        "12,346",
        "1.20e-04",
        "+0.5",
    ]


def test_single_seed_uses_evaluation_ci(tmp_path: Path) -> None:
    paper_dir = make_paper(tmp_path)
    tier_dir = tmp_path / "results" / "dapo" / "paper"
    write_run(tier_dir / "dapo" / "seed0", "dapo", 0, benchmark=0.45)
    row = by_id(compare(paper_dir, tier_dir, "paper")["targets"])["aime24_dapo"]
    assert row["ci_kind"] == "evaluation sampling"
    assert row["ci"] == pytest.approx([40.0, 50.0])
    assert row["status"] == "not reproduced"  # 45 is 5 points below 50, tolerance 3


def test_render_without_runs_and_stale_flag(tmp_path: Path) -> None:
    paper_dir = make_paper(tmp_path)
    result = compare(paper_dir, tmp_path / "nowhere", "smoke")
    result["provenance"]["git_sha"] = "1" * 40
    result["runs"] = [{"variant": "dapo", "seed": 0, "path": "gone", "provenance": {"git_sha": "2" * 40}}]
    (tmp_path / "compare.json").write_text(json.dumps(result), encoding="utf-8")
    out = render_report(paper_dir, tmp_path / "compare.json", "smoke", tmp_path / "reports" / "report.md")
    text = out.read_text(encoding="utf-8")
    assert "No metrics.jsonl data found" in text
    assert "stale: 1 run(s)" in text and "dapo/seed0" in text


def test_moving_average_is_a_trailing_mean() -> None:
    import numpy as np

    from repro.report.plots import moving_average

    out = moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2)
    assert out.tolist() == [1.0, 2.0, 4.0, 6.0]
    assert moving_average(np.array([1.0, 3.0]), 1).tolist() == [1.0, 3.0]


def test_scaling_fit_section_recovers_each_runs_asymptote(tmp_path: Path) -> None:
    """Runs whose accuracy follows a known sigmoid: compare.json holds each seed's fitted A, the report
    draws the fits, and a curve too short to fit is reported as such rather than crashing the report."""
    import numpy as np

    from repro.report.scaling_fit import sigmoid_curve

    paper_dir = make_paper(tmp_path)
    spec = {"metric": "accuracy", "source": "ScaleRL §2 Eq. 1", "warmup_frac": 0.05}
    (paper_dir / "paper.yaml").write_text(yaml.safe_dump({**PAPER, "scaling_fit": spec}), encoding="utf-8")
    tier_dir = tmp_path / "results" / "dapo" / "smoke"
    asymptotes = {"dapo": [0.6, 0.62, 0.64], "clip_higher": [0.5, 0.5, 0.5]}
    for variant, values in asymptotes.items():
        for seed, A in enumerate(values):
            run_dir = tier_dir / variant / f"seed{seed}"
            run_dir.mkdir(parents=True)
            steps = np.arange(1, 201, dtype=float)
            acc = sigmoid_curve(steps, A, 1.2, 30.0, 0.1)
            acc[:10] = 0.1
            rows = [{"step": int(s), "accuracy": float(a)} for s, a in zip(steps, acc)]
            (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for seed in range(2):  # a straight rise that has not bent by the last step: its A is an extrapolation
        run_dir = tier_dir / "overlong_filtering" / f"seed{seed}"
        run_dir.mkdir(parents=True)
        rows = [{"step": s, "accuracy": 0.1 + 0.002 * s + 0.001 * seed} for s in range(1, 201)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    short = tier_dir / "naive_grpo" / "seed0"
    short.mkdir(parents=True)
    (short / "metrics.jsonl").write_text('{"step": 1, "accuracy": 0.1}\n', encoding="utf-8")
    path = write_compare(paper_dir, tier_dir, "smoke")
    fits = {r["variant"]: r for r in json.loads(path.read_text(encoding="utf-8"))["scaling_fits"]}
    assert [f["A"] for f in fits["dapo"]["fits"]] == pytest.approx([0.6, 0.62, 0.64], abs=2e-3)
    assert fits["dapo"]["A_mean"] == pytest.approx(0.62, abs=2e-3) and fits["dapo"]["A_ci"][0] < 0.62
    assert "at least 4 points" in fits["naive_grpo"]["fits"][0]["error"]
    out = render_report(paper_dir, path, "smoke", tmp_path / "reports" / "dapo" / "report.md")
    text = out.read_text(encoding="utf-8")
    assert "## Compute–performance fit" in text and "fit failed" in text
    assert not any(f["extrapolated"] for f in fits["dapo"]["fits"])  # C_mid 30 ≤ 200 steps
    assert all(f["extrapolated"] for f in fits["overlong_filtering"]["fits"])
    assert "**Caution:** 2 fit(s)" in text and "overlong_filtering/seed0" in text
    assert "![scaling fit](figures/scaling_fit.png)" in text
    assert (out.parent / "figures" / "scaling_fit.png").read_bytes()[:8] == PNG_MAGIC


def test_claim_with_a_control_metric_compares_two_metrics_of_the_same_runs(tmp_path: Path) -> None:
    """RLOO's fixed-weights variance claim: one variant's runs, its own estimator's variance against another's."""
    paper_dir = make_paper(tmp_path)
    own = {"file": "metrics", "name": "entropy", "reduce": "mean_last", "frac": 0.5}
    other = {"file": "metrics", "name": "clip_frac_high", "reduce": "mean"}
    pair = claim("pair", "dapo", "dapo", own, control_metric=other, direction="greater", test="paired_t")
    (paper_dir / "targets.yaml").write_text(yaml.safe_dump({**TARGETS, "claims": [pair]}), encoding="utf-8")
    tier_dir = tmp_path / "results" / "dapo" / "smoke"
    for seed in range(3):
        write_run(tier_dir / "dapo" / f"seed{seed}", "dapo", seed)
    (row,) = compare(paper_dir, tier_dir, "smoke")["claims"]
    assert row["treatment_mean"] == pytest.approx(0.95) and row["control_mean"] == pytest.approx(0.02)
    assert row["verdict"] == "reproduced" and row["metric"].endswith("vs clip_frac_high (mean over steps)")


def test_results_table_averages_each_kinds_metrics_and_ignores_other_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from repro.report import results_table as rt
    from repro.report.compare import RunData

    table = rt.ResultTable("Reward model", "Held-out pairs.", {"accuracy": "accuracy", "mean_reward": "mean reward"})
    monkeypatch.setitem(rt.RESULT_TABLES, "reward_model", table)

    def run(variant: str, seed: int, ev: dict[str, Any] | None) -> RunData:
        return RunData(variant, seed, Path(f"/x/{variant}/seed{seed}"), eval=ev)

    runs = {
        "rm": [
            run("rm", 0, {"trainer": "reward_model", "accuracy": 0.6, "mean_reward": 1.0, "base": {"accuracy": 0.5}}),
            run("rm", 1, {"trainer": "reward_model", "accuracy": 0.8, "mean_reward": 3.0, "base": {"accuracy": 0.3}}),
        ],
        "rl": [run("rl", 0, {"greedy_accuracy": 0.9})],  # an online-RL eval: no `trainer` key, not in the table
    }
    summary = rt.results_table_summary(runs)
    assert summary["trainer"] == "reward_model" and [r["variant"] for r in summary["rows"]] == ["rm"]
    row = summary["rows"][0]
    assert row["accuracy"] == pytest.approx(0.7) and row["mean_reward"] == pytest.approx(2.0)
    assert row["accuracy_ci"][0] < 0.7 < row["accuracy_ci"][1]
    assert summary["reference"] == {"accuracy": pytest.approx(0.4)}
    text = rt.results_table_section(summary)
    assert text.startswith("## Reward model") and "| starting model | — | 0.400 | — |" in text
    assert rt.results_table_summary({"rl": runs["rl"]}) is None and rt.results_table_section(None) == ""


@pytest.mark.parametrize(
    ("trainer", "why"),
    [(None, "offline preference run"), ("sft", "supervised fine-tuning"), ("distillation", "same model samples")],
)
def test_divergence_section_says_why_a_kind_logs_no_rl_signal(trainer: str | None, why: str) -> None:
    from repro.report.render import divergence_section

    result: dict[str, Any] = {"divergence": {"a": {"truncation_rate": None, "logprob_gap": None}}}
    if trainer is not None:
        result["results_table"] = {"trainer": trainer, "rows": []}
    text = divergence_section(result, ["a"])
    assert why in text and "| Variant |" not in text
    logged = divergence_section({"divergence": {"a": {"truncation_rate": 0.25}}}, ["a"])
    assert "| a | 0.25" in logged


def test_table_cells_keep_three_decimals_for_rates_and_fewer_for_counts() -> None:
    from repro.report.alignment import _cell

    assert _cell({"acc": 0.72512, "acc_ci": [0.69, 0.76]}, "acc") == "0.725 [0.690, 0.760]"
    assert _cell({"steps": 70.0, "steps_ci": [45.159, 94.841]}, "steps") == "70.0 [45.2, 94.8]"
    assert _cell({"steps": 113.33, "steps_ci": [61.6, 165.0]}, "steps") == "113 [62, 165]"
    assert _cell({"steps": None}, "steps") == "—"


def test_the_report_says_where_determinism_holds() -> None:
    from repro.report.render import determinism_note

    cpu = determinism_note([{"gpu": None}, {}])
    assert "every run ran on CPU" in cpu and "bit for bit" in cpu
    gpu = determinism_note([{"gpu": "NVIDIA H200"}, {"gpu": None}])
    assert "runs on GPU (NVIDIA H200)" in gpu and "statistically, not bit for bit" in gpu


# --------------------------------------------------------------------------- samples


def _write_samples(run_dir: Path, rows: list[dict[str, Any]], cut: list[int] | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if cut is not None:
        metrics = [{"step": i + 1, "prompts_truncated": n} for i, n in enumerate(cut)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics), encoding="utf-8")


def test_samples_section_shows_the_last_step_of_the_first_run_with_samples(tmp_path: Path) -> None:
    import markdown

    from repro.report.samples import samples_section

    sample = {"reward": 1.0, "rewards": {"correctness": 1.0}, "correct": True, "truncated": False}
    rows = [
        {"step": 1, "prompt": "Q: 1+1=", "completion": "early</s>", **sample},
        {"step": 2, "prompt": "x" * 100 + "Q: 123+456=", "completion": "579 | *bold*\nnext</s>", **sample},
        {"step": 2, "prompt": "Q: 2+2=", "completion": "4444444", "reward": -1.0, "correct": False, "truncated": True},
    ]
    _write_samples(tmp_path / "v" / "seed0", rows, cut=[2, 3])
    _write_samples(tmp_path / "w" / "seed0", [{**rows[0], "completion": "other run"}])
    runs = [
        {"variant": "u", "seed": 0, "path": str(tmp_path / "u" / "seed0")},  # no samples.jsonl (e.g. an SFT run)
        {"variant": "v", "seed": 0, "path": str(tmp_path / "v" / "seed0")},
        {"variant": "w", "seed": 0, "path": str(tmp_path / "w" / "seed0")},
    ]
    text = samples_section({"runs": runs}, tmp_path / "reports")
    assert text.startswith("## Samples") and "step 2" in text and "`v` seed 0" in text
    assert "early" not in text and "other run" not in text  # the last step of the first run with samples
    assert "| Prompt (end) | Completion | Reward | Correct | Truncated |" in text
    assert "| …" + "x" * 49 + "Q: 123+456= | 579 \\| \\*bold\\* ⏎ next&lt;/s&gt; | 1.00 | yes | no |" in text
    assert "| Q: 2+2= | 4444444 | -1.00 | no | yes |" in text
    assert "1 of the run's 3 logged samples (33%) were truncated" in text
    assert "5 over-long prompts were cut to data.max_prompt_length over its 2 steps" in text
    assert "`../v/seed0/samples.jsonl`" in text  # relative to the report's folder
    page = markdown.markdown(text, extensions=["tables"])  # as report.html renders it: the text shown literally
    assert "<td>579 | *bold* ⏎ next&lt;/s&gt;</td>" in page
    # compare.json naming the default variant picks its lowest seed
    _write_samples(tmp_path / "w" / "seed1", [{**rows[0], "step": 7, "completion": "seed one"}])
    runs.insert(0, {"variant": "w", "seed": 1, "path": str(tmp_path / "w" / "seed1")})
    text = samples_section({"runs": runs, "default_variant": "w"}, tmp_path / "reports")
    assert "other run" in text and "seed one" not in text and "Reward" in text


def test_samples_section_is_empty_without_samples_and_the_report_places_it(tmp_path: Path) -> None:
    from repro.report.samples import samples_section

    assert samples_section({"runs": []}, tmp_path) == ""
    _write_samples(tmp_path / "sft" / "seed0", [])  # an empty file is no samples either
    assert samples_section({"runs": [{"variant": "sft", "seed": 0, "path": str(tmp_path / "sft")}]}, tmp_path) == ""
    distilled = {"step": 3, "prompt": "9+9=", "completion": "18</s>", "source": "teacher", "correct": True}
    paper_dir = make_paper(tmp_path)
    tier_dir = tmp_path / "results" / "dapo" / "smoke"
    write_run(tier_dir / "dapo" / "seed0", "dapo", 0)
    write_compare(paper_dir, tier_dir, "smoke")
    out = tmp_path / "reports" / "dapo" / "report.md"
    assert "## Samples" not in render_report(paper_dir, tier_dir / "compare.json", "smoke", out).read_text()
    _write_samples(tier_dir / "dapo" / "seed0", [{**distilled, "truncated": False}])
    text = render_report(paper_dir, tier_dir / "compare.json", "smoke", out).read_text(encoding="utf-8")
    assert "| Prompt (end) | Completion | Source | Correct | Truncated |" in text  # no reward column
    assert "| 9+9= | 18&lt;/s&gt; | teacher | yes | no |" in text
    assert text.index("## Causes of silent divergence") < text.index("## Samples") < text.index("## Provenance")
