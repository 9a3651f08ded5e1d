"""The small tier end to end for every trainer kind, on a real-format checkpoint, without a hub.

A stand-in for a hub checkpoint (repro/models/standin.py: Qwen2 layout, byte-level BPE, ChatML template whose end
of turn differs from the tokenizer's eos, a generation_config listing both, bf16 weights) is built in seconds, and
`snakemake papers/<id> --config tier=small model=<stand-in> max_steps=2 seeds=1 set=...` runs one paper of each
kind on the shipped GSM8K / MATH / HH-RLHF copies, graded by the one grader, to its report. The `set=` entries
shorten lengths and held-out sets so the suite stays minutes; the full small-tier protocols on the stand-in are a
benchmark (docs/performance.md, "Small tier on the CPU stand-in").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED_MATH
from test_e2e_dapo import copy_project, snakemake

from repro.overrides import Overrides

pytestmark = pytest.mark.slow
SHORT = ["max_steps=2", "seeds=1"]
# per paper: what shortens its runs (valid keys of its kind only, as any `set=` must be)
SETS = {
    "dapo": "train.per_device_train_batch_size=16;train.max_completion_length=48;"
    "rewards.soft_overlong_punishment.cache=16;eval.n_problems=16;eval.k=2;eval.max_new_tokens=48;"
    "eval.benchmarks={aime24: {n: 2, k: 2, max_tokens: 48}}",
    "dpo": "data.limit=64;train.gradient_accumulation_steps=1;eval.n_prompts=8;eval.max_new_tokens=32",
    "dft": "data.limit=256;train.gradient_accumulation_steps=1;train.max_length=256;train.eval_every=1;"
    "eval.n_problems=16",
    "centered_rm": "data.limit=64;train.gradient_accumulation_steps=1;eval.n_prompts=16",
    "on_policy_distillation": "train.gradient_accumulation_steps=1;train.max_new_tokens=48;"
    "eval.n_problems=16;eval.k=2;eval.max_new_tokens=48",
}
KINDS = {"dapo": "online_rl", "dpo": "preference", "dft": "sft", "centered_rm": "reward_model",
         "on_policy_distillation": "distillation"}  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, standin_dir: str) -> tuple[Path, str, Path]:
    from repro.models.standin import StandinSpec, build_standin

    work = copy_project(tmp_path_factory.mktemp("small"))
    # a deeper teacher of the same tokenizer family for on-policy distillation
    teacher = build_standin(
        tmp_path_factory.mktemp("teacher"),
        [SHARED_MATH / "gsm8k_train.jsonl"],
        StandinSpec(num_hidden_layers=3, seed=1),
    )
    return work, standin_dir, teacher


def run_paper(project: tuple[Path, str, Path], paper: str) -> tuple[Path, str]:
    work, model, teacher = project
    sets = SETS[paper] + (f";train.teacher_model_name_or_path={teacher}" if paper == "on_policy_distillation" else "")
    data = SHARED_MATH.parent  # the copy has no ../shared beside it: the shipped data, named with data_dir=
    config = ["tier=small", f"model={model}", f"data_dir={data}", *SHORT, f"set={sets}"]
    out = snakemake(work, f"papers/{paper}", "--config", *config)
    label = Overrides.parse(model=model, data_dir=str(data), sets=sets).label("small")
    assert f"report (small tier): reports/{paper}/{label}/report.md" in out.stdout
    return work, label


@pytest.mark.parametrize("paper", list(SETS))
def test_each_kind_runs_the_small_tier_on_a_real_format_checkpoint(project, paper: str) -> None:
    work, label = run_paper(project, paper)
    results = work / "results" / paper / label
    compare = json.loads((results / "compare.json").read_text())
    assert compare["tier"] == "small" and compare["label"] == label
    assert compare["overrides"]["model"] == project[1] and compare["scale"]["kind"] == KINDS[paper]
    assert compare["scale"]["parameters"] and compare["scale"]["parameters"] < 1e6  # the stand-in, not a 1.5B model
    runs = compare["runs"]
    assert runs and all(r["steps"] == 2 and not r["missing"] for r in runs)
    for run in runs:
        run_dir = work / run["path"]
        resolved = (run_dir / "config.resolved.yaml").read_text()
        assert resolved.startswith(f"# overrides on the paper folder's config: model={project[1]}")
        evaluation = json.loads((run_dir / "eval.json").read_text())
        assert "base" in evaluation  # the starting model, scored with the same protocol
    text = (work / "reports" / paper / label / "report.md").read_text()
    assert f"`{project[1]}` (bfloat16" in text and "**Overrides:**" in text  # what ran, and how it was set
    targets = (work / "papers" / paper / "targets.yaml").read_text()
    if "claims:" in targets:
        assert "## Claims" in text
    assert "insufficient seeds (0/0)" not in text  # every claim has its control, the starting model included


def test_online_rl_evaluates_real_problems_and_keeps_samples(project) -> None:
    work, label = run_paper(project, "dapo")  # already built by the test above: Snakemake has nothing to do
    run_dir = work / "results" / "dapo" / label / "dapo" / "seed0"
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["held_out"] == "data/math/math500.jsonl (test)" and evaluation["n_problems"] == 16
    assert {"greedy_accuracy", "sampled_accuracy", "truncation_rate"} <= set(evaluation["base"])
    bench = json.loads((run_dir / "bench" / "aime24.json").read_text())
    assert bench["n_problems"] == 30 and bench["metric_name"] == "avg@2" and bench["eval_library"] == "lm-eval"
    assert not any("<|im_end|>" in r for item in bench["items"] for r in item["responses"])  # stopped at the turn end
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {1, 2}
    assert samples[0]["prompt"].startswith("<|im_start|>system\n") and "reward" in samples[0]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(0.0 <= m["truncation_rate"] < 0.5 for m in metrics)  # the stand-in ends its turns with <|im_end|>
    report = (work / "reports" / "dapo" / label / "report.md").read_text()
    assert "## Samples" in report
