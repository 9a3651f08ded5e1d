"""Math benchmark suites through lm-eval: definitions, local data, protocol checks, metrics, the oracle
stubs (100% / 0% through the whole lm-eval path), and agreement with our own evaluator on a real checkpoint.

The local data is the copies shipped in data/math (data/SOURCES.md).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.model import LM

from repro.cli import main as cli_main
from repro.eval.benchmark import (
    Benchmark,
    DatasetSpec,
    Protocol,
    benchmarks,
    data_dir,
    get_benchmark,
    items_hash,
    load_items,
)
from repro.eval.lmeval_bridge import aggregate, evaluate_benchmark, metric_label, sampling_ci
from repro.schema import ConfigError

MATH_DIR = Path(__file__).resolve().parents[1] / "data" / "math"
SIZES = {
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "amc83": 83,
    "math500": 500,
    "minerva_math": 272,
    "olympiadbench": 675,
    "gsm8k": 1319,
}
pytestmark = pytest.mark.skipif(not MATH_DIR.is_dir(), reason="needs the shipped data/math")


@pytest.fixture(scope="module")
def tok() -> Any:
    from repro.models.tiny import build_char_tokenizer

    return build_char_tokenizer()


# --- definitions and data ------------------------------------------------------------------------


def test_versioned_benchmarks_load_from_the_local_copy() -> None:
    assert set(benchmarks()) == set(SIZES)
    for name, size in SIZES.items():
        bench = get_benchmark(name)
        items = load_items(bench, MATH_DIR)
        assert bench.version >= 1 and len(items) == size
        assert len({i.id for i in items}) == size and all(i.answer and i.problem for i in items)
        assert load_items(bench, MATH_DIR, limit=7) == items[:7]
    amc83, amc23 = load_items(get_benchmark("amc83"), MATH_DIR), load_items(get_benchmark("amc23"), MATH_DIR)
    assert [i.answer for i in amc83[-40:]] == [i.answer for i in amc23]  # Dr. GRPO's AMC ends with AMC 2023
    aime = load_items(get_benchmark("aime24"), MATH_DIR)
    assert aime[0].answer == "204" and aime[1].answer == "113"  # AIME 2024 I problems 1 and 2
    changed = [dataclasses.replace(aime[0], answer="205"), *aime[1:]]
    assert items_hash(aime) == items_hash(list(aime)) != items_hash(changed)


def test_list_benchmarks_prints_name_version_metric_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["list", "benchmarks"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(SIZES)
    fields = dict((line.split("\t")[0], line.split("\t")[1:]) for line in lines)
    assert fields["gsm8k"] == ["v1", "greedy pass@1", "hf:openai/gsm8k/main@test (1319 problems)"]
    assert fields["aime24"][2] == "hf:HuggingFaceH4/aime_2024@train (30 problems)"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"metric": "greedy", "n": 4, "k": 4, "temperature": 1.0}, "greedy decodes once at temperature 0"),
        ({"metric": "avg@k", "n": 4, "k": 2, "temperature": 1.0}, "set k = n"),
        ({"metric": "pass@k", "n": 2, "k": 4, "temperature": 1.0}, "1 <= k <= n"),
        ({"metric": "maj@k", "n": 4, "k": 4, "temperature": 0.0}, "temperature must be > 0"),
        ({"metric": "best@k"}, "unknown metric 'best@k'"),
        ({"template": "qwen-math"}, "Did you mean 'qwen_math'?"),
        ({"max_token": 32}, "Did you mean 'max_tokens'?"),
        ({"grader": "exact"}, "one grader, 'math-verify'"),
    ],
)
def test_impossible_protocols_are_rejected_with_the_fix(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        get_benchmark("aime24").resolve(overrides)


def test_data_errors_say_how_to_fix_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown benchmark 'aime2024'"):
        get_benchmark("aime2024")
    with pytest.raises(ConfigError, match="no such directory"):
        data_dir(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="aime24.jsonl is missing"):
        load_items(get_benchmark("aime24"), tmp_path)
    (tmp_path / "aime24.jsonl").write_text('{"id": "a", "problem": "1+1?", "answer": "2"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="has 30 problems, but .* holds 1"):
        load_items(get_benchmark("aime24"), tmp_path)
    monkeypatch.setenv("REPRO_MATH_DATA", str(MATH_DIR))  # the environment variable wins over the config key
    assert data_dir(str(tmp_path / "nowhere")) == MATH_DIR.resolve()


def test_hub_rows_map_onto_problem_and_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Field mappings and answer transforms of the hub copies (the hub itself is unreachable here)."""
    import datasets

    rows = {
        "openai/gsm8k": [{"question": "q", "answer": "She pays 3 + 4 = 7.\n#### 1,234"}],
        "Hothan/OlympiadBench": [{"question": "q", "final_answer": ["$69$"], "id": 7}],
        "math-ai/amc23": [{"question": "q", "answer": 27.0}],
    }
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config, split: rows[hub_id])
    for name, answer, item_id in [("gsm8k", "1234", "gsm8k-0"), ("olympiadbench", "69", "olympiadbench-7"),
                                  ("amc23", "27", "amc23-0")]:  # fmt: skip
        bench = get_benchmark(name)
        bench = dataclasses.replace(bench, dataset=dataclasses.replace(bench.dataset, size=1))
        assert load_items(bench, None) == [type(load_items(bench, None)[0])(item_id, "q", answer)]


# --- metrics -------------------------------------------------------------------------------------


def _record(correct: list[bool], answers: list[str | None]) -> dict[str, Any]:
    return {"correct": correct, "extracted": answers}


def test_aggregate_by_hand() -> None:
    """Problem 1: 2 of 4 right (majority '3' right); problem 2: 1 of 4 (majority '5' wrong)."""
    records = [
        _record([True, True, False, False], ["3", "3", "4", None]),
        _record([False, True, False, False], ["5", "6", "5", "7"]),
    ]
    got = aggregate(records, k=2)
    assert got["avg"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    # pass@2 = 1 - C(n-c, 2)/C(n, 2): problem 1: 1 - 1/6; problem 2: 1 - 3/6.
    assert got["pass_at_k"] == pytest.approx(((1 - 1 / 6) + (1 - 3 / 6)) / 2)
    # maj@2 over the first two samples: ["3","3"] -> right; ["5","6"] -> tie, first seen "5" -> wrong.
    assert got["maj_at_k"] == pytest.approx(0.5)


def test_sampling_ci_brackets_the_value_and_vanishes_without_noise() -> None:
    sampled = Protocol(metric="avg@k", n=4, k=4, temperature=1.0)
    noisy = [_record([True, False, True, False], ["1", "2", "1", "2"]) for _ in range(20)]
    low, high = sampling_ci(noisy, sampled, "avg")
    assert low < 0.5 < high and high - low < 0.5
    certain = [_record([True] * 4, ["1"] * 4) for _ in range(5)]
    assert sampling_ci(certain, sampled, "avg") == [1.0, 1.0]
    assert sampling_ci(certain, Protocol(), "avg") is None  # greedy: no sampling noise
    assert metric_label(sampled) == "avg@4" and metric_label(Protocol()) == "greedy pass@1"
    assert metric_label(Protocol(metric="maj@k", n=8, k=4, temperature=0.6)) == "maj@4"


# --- the whole lm-eval path ----------------------------------------------------------------------


@pytest.mark.parametrize("style", ["boxed", "answer_line"])
def test_oracle_scores_100_percent_on_every_suite(style: str, tok: Any) -> None:
    from repro.eval.oracle import AnswerStub

    for name in SIZES:
        bench = get_benchmark(name)
        result = evaluate_benchmark(bench, bench.resolve({"answer_style": style}), lm=AnswerStub(style), tokenizer=tok,
                                    local_dir=MATH_DIR)  # fmt: skip
        assert result["value"] == 1.0 and result["n_problems"] == SIZES[name], name
        assert all(r["correct"] == [True] for r in result["items"])
        assert result["eval_library"] == "lm-eval" and result["dataset"]["hash"] == items_hash(
            load_items(bench, MATH_DIR)
        )


@pytest.mark.parametrize(
    "limit", [pytest.param(40, id="first40"), pytest.param(None, id="all", marks=pytest.mark.slow)]
)
def test_a_wrong_answer_scores_0_percent_on_every_suite(limit: int | None, tok: Any) -> None:
    """The stub answers each problem with another problem's (different) answer, in \\boxed{}."""
    from repro.eval.oracle import AnswerStub

    for name in SIZES:
        bench = get_benchmark(name)
        protocol = bench.resolve({"limit": limit})
        result = evaluate_benchmark(bench, protocol, lm=AnswerStub("boxed", wrong=True), tokenizer=tok,
                                    local_dir=MATH_DIR)  # fmt: skip
        assert result["value"] == 0.0, [(r["answer"], r["extracted"]) for r in result["items"] if r["correct"][0]]
        assert all(r["extracted"][0] is not None for r in result["items"])  # an answer was read, and judged wrong


class CountingStub(LM):
    """Problem i gets its first (i mod 5) of n samples right; the others answer 'no' in a box."""

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        seen: dict[str, int] = {}
        replies = []
        for r in requests:
            index = int(r.doc["id"].rsplit("-", 1)[1])
            seen[r.doc["id"]] = seen.get(r.doc["id"], 0) + 1
            right = seen[r.doc["id"]] <= index % 5
            replies.append(f"\\boxed{{{r.doc['answer'] if right else 'no'}}}")
        return replies

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        raise NotImplementedError

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        raise NotImplementedError


def test_lm_eval_aggregates_equal_hand_computed_sampling_metrics(tok: Any, tmp_path: Path) -> None:
    """n=4 samples, k=2, aime24 (ids aime24-0..29): c_i = min(i mod 5, 4) correct samples per problem."""
    from math import comb

    bench = get_benchmark("aime24")
    protocol = bench.resolve({"metric": "pass@k", "n": 4, "k": 2, "temperature": 1.0})
    result = evaluate_benchmark(bench, protocol, lm=CountingStub(), tokenizer=tok, local_dir=MATH_DIR)
    counts = [min(i % 5, 4) for i in range(30)]
    assert [sum(r["correct"]) for r in result["items"]] == counts
    pass2 = sum(1 - comb(4 - c, 2) / comb(4, 2) for c in counts) / 30
    avg = sum(c / 4 for c in counts) / 30
    maj2 = sum(c >= 1 for c in counts) / 30  # first two samples: right ones come first; ties go to the first seen
    assert result["value"] == pytest.approx(pass2)
    assert result["metrics"] == pytest.approx({"avg@4": avg, "pass@2": pass2, "maj@2": maj2})
    assert result["ci"][0] <= result["value"] <= result["ci"][1]

    # Offline re-scoring from the stored responses (a changed grader): a tampered grade is restored.
    tampered = json.loads(json.dumps(result))
    tampered["items"][4]["correct"] = [False] * 4  # problem 4 had 4 right
    tampered["value"] = 0.0
    path = tmp_path / "aime24.json"
    path.write_text(json.dumps(tampered), encoding="utf-8")
    assert cli_main(["rescore", str(path)]) == 0
    restored = json.loads(path.read_text())
    assert restored["rescored"] == {"items_changed": 1, "previous_value": 0.0}
    assert restored["value"] == pytest.approx(pass2) and restored["metrics"] == pytest.approx(result["metrics"])
    assert [it["correct"] for it in restored["items"]] == [it["correct"] for it in result["items"]]


def test_real_checkpoint_lm_eval_and_our_evaluator_agree(tmp_path: Path, tok: Any) -> None:
    """A briefly SFT-trained tiny model on held-out addition: lm-eval's greedy completions and grades
    equal our own evaluator's, item by item (same prompts, same checkpoint loaded from disk)."""
    import torch

    from repro.data.synthetic import held_out
    from repro.eval.synthetic import evaluate_policy
    from repro.models.loading import load_policy
    from repro.models.tiny import build_tiny_model
    from repro.trainers.sft import sft_warm_start

    torch.manual_seed(0)
    model = build_tiny_model(tok, hidden_size=64, intermediate_size=256, num_hidden_layers=2)
    sft_warm_start(model, tok, "addition", steps=300, batch_size=64, lr=3e-3, warmup_steps=10, progress=False)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    problems = held_out("addition", n=200)
    # 300 steps sit on the steep part of the learning curve, where greedy accuracy is 0–5 % depending on the
    # CPU's rounding. So that both graders see right and wrong answers whatever the machine, the second half
    # of the gold answers is replaced by what the model answers (where it gives an answer at all).
    from repro.rewards.grader import extract_answer

    first = evaluate_policy(model, tok, problems, template="raw", answer_style="plain", k=1, max_new_tokens=6)
    own = [extract_answer(it["greedy"], "plain") for it in first["items"]]
    problems = [
        dataclasses.replace(p, answer=a) if i >= 100 and a else p for i, (p, a) in enumerate(zip(problems, own))
    ]
    rows = [{"id": f"add-{i}", "problem": p.prompt, "answer": p.answer} for i, p in enumerate(problems)]
    (tmp_path / "addition.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    bench = Benchmark(
        name="addition_check",
        version=1,
        description="held-out addition",
        dataset=DatasetSpec("none", "test", "problem", "answer", "addition.jsonl", size=200),
        protocol=Protocol(template="raw", answer_style="plain", max_tokens=6),
    )
    result = evaluate_benchmark(bench, bench.protocol, model_path=str(tmp_path / "model"), local_dir=tmp_path,
                                backend="hf", batch_size=64)  # fmt: skip
    policy, tokenizer = load_policy(str(tmp_path / "model"))
    ours = evaluate_policy(policy, tokenizer, problems, template="raw", answer_style="plain", k=1, max_new_tokens=6)
    assert [r["responses"][0] for r in result["items"]] == [it["greedy"] for it in ours["items"]]
    assert [r["correct"][0] for r in result["items"]] == [it["greedy_correct"] for it in ours["items"]]
    assert result["value"] == pytest.approx(ours["greedy_accuracy"])
    assert 0.0 < result["value"] < 1.0  # right and wrong items on both sides
    assert result["backend"] == "hf" and result["truncation_rate"] <= 1.0


def test_bench_run_scores_a_run_and_reuses_a_result_with_the_same_cache_key(
    tmp_path: Path, tok: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run dir as the DAG leaves it; its smoke config's aime24 protocol (avg@4, 32 tokens) is what runs."""
    import repro.eval.lmeval_bridge as bridge
    from repro.config import dump, load_paper_config
    from repro.models.tiny import build_tiny_model
    from repro.runs import bench_run

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    cfg = load_paper_config(Path("papers/dapo"), "smoke", "dapo")
    (run / "config.resolved.yaml").write_text(dump(cfg), encoding="utf-8")
    (run / "summary.json").write_text(json.dumps({"tier": "smoke", "seed": 0}), encoding="utf-8")
    build_tiny_model(tok, hidden_size=32, intermediate_size=64, num_hidden_layers=1).save_pretrained(run / "model")
    tok.save_pretrained(run / "model")
    monkeypatch.setenv("REPRO_MATH_DATA", str(MATH_DIR))
    first = bench_run(run, "aime24", run / "bench" / "aime24.json")
    assert first["metric_name"] == "avg@4" and first["protocol"]["max_tokens"] == 32
    assert first["protocol"]["template"] == "dapo" and first["protocol"]["answer_style"] == "answer_line"
    assert first["prompts_over_context"] == 30  # every DAPO-templated AIME prompt exceeds 256 - 32 characters
    assert json.loads((run / "bench" / "aime24.json").read_text())["value"] == first["value"]

    def must_not_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("re-evaluated although checkpoint, protocol and data are unchanged")

    monkeypatch.setattr(bridge, "evaluate_benchmark", must_not_run)
    assert bench_run(run, "aime24", run / "bench" / "aime24.json")["cache_key"] == first["cache_key"]
    config = run / "model" / "config.json"
    config.write_text(config.read_text() + "\n", encoding="utf-8")  # another checkpoint
    with pytest.raises(AssertionError, match="re-evaluated"):
        bench_run(run, "aime24", run / "bench" / "aime24.json")


def test_a_missing_local_copy_fails_at_config_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any training: the smoke tier's eval.data_dir must exist and hold the benchmark files."""
    from repro.config import load_paper_config

    monkeypatch.setenv("REPRO_MATH_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="REPRO_MATH_DATA = .*no such directory"):
        load_paper_config(Path("papers/dapo"), "smoke", "dapo")
    monkeypatch.setenv("REPRO_MATH_DATA", str(tmp_path))
    with pytest.raises(ConfigError, match="lacks aime24.jsonl"):
        load_paper_config(Path("papers/dapo"), "smoke", "dapo")
    monkeypatch.setenv("REPRO_MATH_DATA", str(MATH_DIR))
    assert load_paper_config(Path("papers/dapo"), "smoke", "dapo").eval.benchmarks["aime24"]["n"] == 4


def test_smoke_tier_protocol_is_the_smoke_block_under_the_config_entry() -> None:
    """An entry inherited from the paper tier (`aime24: {}` = the paper's greedy 3,000 tokens) runs at smoke
    scale at the smoke tier; an explicit smoke entry (DAPO's) wins over the smoke block."""
    from repro.config import load_paper_config
    from repro.runs import benchmark_overrides

    papers = Path(__file__).resolve().parents[1] / "papers"
    dr_grpo = load_paper_config(papers / "dr_grpo", "smoke", "dr_grpo")
    assert dr_grpo.eval.benchmarks["math500"] == {}
    assert benchmark_overrides(dr_grpo, "math500", "smoke") == {"max_tokens": 32}
    assert benchmark_overrides(load_paper_config(papers / "dr_grpo", "paper", "dr_grpo"), "math500", "paper") == {}
    dapo = load_paper_config(papers / "dapo", "smoke", "dapo")
    assert benchmark_overrides(dapo, "aime24", "smoke") == {**dapo.eval.benchmarks["aime24"], "max_tokens": 32}
    assert benchmark_overrides(dapo, "aime24", "smoke")["n"] == 4
