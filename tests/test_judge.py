"""Judges and judged benchmarks (repro/eval/judge.py): a local reward-model judge against the model called by hand
(padding included), the callable judge, the fix-it errors of make_judge and of benchmarks that cannot run offline,
and evaluate_judged end to end on 8 HH harmless prompts with a tiny policy.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from repro.eval.judge import (  # noqa: E402
    JUDGES,
    Judge,
    bootstrap_ci,
    evaluate_judged,
    get_judged_benchmark,
    judged_benchmarks,
    make_judge,
)
from repro.models.tiny import build_char_tokenizer, build_tiny_model, llama_config  # noqa: E402
from repro.schema import ConfigError  # noqa: E402

PREF_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "preference"
needs_hh = pytest.mark.skipif(
    not (PREF_DIR / "hh_rlhf_harmless_base_test.jsonl").is_file(), reason="needs ../shared/data/preference"
)
PROMPTS = ["\n\nHuman: hi\n\nAssistant:", "Q: 2+2?\nA:", "x", "\n\nHuman: tell me a long story please\n\nAssistant:"]
RESPONSES = [" hello there, friend", " 4", "yz", " once"]
BASELINES = [" go away", " five, I think, or maybe six", "x", " there was a dragon who lived by the sea"]


@pytest.fixture(scope="module")
def tok() -> Any:
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory: pytest.TempPathFactory, tok: Any) -> str:
    """A random tiny LlamaForSequenceClassification (one label) and the char tokenizer, saved locally."""
    from transformers import LlamaForSequenceClassification

    config = llama_config(tok, 32, 64, 2, 4, 256)
    config.num_labels = 1
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():
        model.score.weight.normal_(0.0, 1.0)  # spread the rewards so P is far from 0.5
    out = tmp_path_factory.mktemp("rm")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def rewards_by_hand(path: str, tok: Any, prompts: list[str], texts: list[str]) -> list[float]:
    """r(x, y) one sequence at a time, no padding: the model's score at the last token."""
    from transformers import LlamaForSequenceClassification

    model = LlamaForSequenceClassification.from_pretrained(path).eval()
    out = []
    with torch.no_grad():
        for prompt, text in zip(prompts, texts, strict=True):
            ids = torch.tensor([tok(prompt + text)["input_ids"]])  # [1, T]
            out.append(model(input_ids=ids).logits[0, 0].item())
    return out


# --- judges -----------------------------------------------------------------------------------------


def test_reward_model_judge_is_the_bradley_terry_probability_of_the_model(reward_model_dir: str, tok: Any) -> None:
    judge = make_judge({"kind": "reward_model", "path": reward_model_dir, "batch_size": 3})
    assert isinstance(judge, Judge) and judge.name == f"reward_model:{reward_model_dir}"
    p = judge.win_probabilities(PROMPTS, RESPONSES, BASELINES)
    r_resp = rewards_by_hand(reward_model_dir, tok, PROMPTS, RESPONSES)
    r_base = rewards_by_hand(reward_model_dir, tok, PROMPTS, BASELINES)
    expected = [1.0 / (1.0 + math.exp(-(a - b))) for a, b in zip(r_resp, r_base, strict=True)]
    assert p == pytest.approx(expected, abs=1e-5)
    assert max(abs(x - 0.5) for x in p) > 0.05  # the rewards differ: the check is not all 0.5s
    reverse = judge.win_probabilities(PROMPTS, BASELINES, RESPONSES)
    assert [a + b for a, b in zip(p, reverse, strict=True)] == pytest.approx([1.0] * 4, abs=1e-9)
    assert judge.win_probabilities(PROMPTS, RESPONSES, RESPONSES) == [0.5] * 4


def test_reward_model_batches_score_like_single_sequences(reward_model_dir: str) -> None:
    """Pads must be neither attended to nor pooled: the batch size must not move a reward."""
    prompts, responses = PROMPTS * 3, (RESPONSES + BASELINES + RESPONSES[::-1])
    one = make_judge({"kind": "reward_model", "path": reward_model_dir, "batch_size": 1})
    many = make_judge({"kind": "reward_model", "path": reward_model_dir, "batch_size": 12})
    r_one, r_many = one.rewards(prompts, responses), many.rewards(prompts, responses)
    assert len({len(p + r) for p, r in zip(prompts, responses, strict=True)}) > 5  # really padded
    assert r_many == pytest.approx(r_one, abs=1e-5)


def test_reward_model_judge_errors(tmp_path: Path, reward_model_dir: str, tok: Any) -> None:
    from transformers import LlamaForSequenceClassification

    with pytest.raises(ConfigError, match="does not exist"):
        make_judge({"kind": "reward_model", "path": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="not available offline"):
        make_judge({"kind": "reward_model", "path": "some-org/uncached-reward-model"})
    config = llama_config(tok, 16, 32, 1, 2, 64)
    config.num_labels = 2
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "two")
    tok.save_pretrained(tmp_path / "two")
    with pytest.raises(ConfigError, match="has 2 labels; a reward model has one"):
        make_judge({"kind": "reward_model", "path": str(tmp_path / "two")})
    with pytest.raises(ConfigError, match="template 'concat' or 'chat'"):
        make_judge({"kind": "reward_model", "path": reward_model_dir, "template": "jinja"})


def test_callable_judge_compares_scores() -> None:
    judge = make_judge({"kind": "callable", "fn": lambda prompt, response: len(response)})
    p = judge.win_probabilities(["q"] * 3, ["long answer", "same", "s"], ["short", "four", "longer"])
    assert p == [1.0, 0.5, 0.0]
    by_name = make_judge({"kind": "callable", "fn": "operator:contains", "name": "contains"})  # response in prompt
    assert by_name.name == "contains"
    assert by_name.win_probabilities(["abc", "abc"], ["b", "z"], ["z", "b"]) == [1.0, 0.0]


def test_make_judge_errors_say_how_to_fix_them() -> None:
    with pytest.raises(ConfigError, match=r"unknown judge kind 'reward_modle'.*Did you mean 'reward_model'"):
        make_judge({"kind": "reward_modle", "path": "x"})
    with pytest.raises(ConfigError, match="Valid names: callable, llm_judge, reward_model"):
        make_judge({"kind": "gpt4"})
    assert set(JUDGES.names()) == {"callable", "llm_judge", "reward_model"}
    with pytest.raises(ConfigError, match="needs 'kind'|with a 'kind'"):
        make_judge({"path": "x"})
    with pytest.raises(
        ConfigError, match=r"judge reward_model: unknown option 'paht'; valid options: path, batch_size"
    ):
        make_judge({"kind": "reward_model", "paht": "x"})
    with pytest.raises(ConfigError, match=r"judge callable: missing option\(s\) fn"):
        make_judge({"kind": "callable"})
    with pytest.raises(ConfigError, match="cannot import 'no.such.module:f'"):
        make_judge({"kind": "callable", "fn": "no.such.module:f"})
    with pytest.raises(ConfigError, match=r"not run offline.*repro.eval.judge.Judge.*JUDGES.add"):
        make_judge({"kind": "llm_judge", "model": "gpt-4-1106-preview"})


# --- judged benchmarks ------------------------------------------------------------------------------


def test_benchmark_specs_load_and_name_their_hub_sets() -> None:
    specs = judged_benchmarks()
    assert set(specs) == {"hh_harmless", "alpaca_eval", "mt_bench", "arena_hard"}
    assert specs["alpaca_eval"].dataset.hub_id == "tatsu-lab/alpaca_eval"
    assert specs["alpaca_eval"].dataset.hub_config == "alpaca_eval_gpt4_baseline"
    assert specs["alpaca_eval"].dataset.size == 805 and specs["arena_hard"].dataset.size == 500
    assert all(b.judge.get("kind") == "llm_judge" and b.requires for b in specs.values())
    bench = specs["hh_harmless"].resolve({"limit": 8, "generation": {"max_new_tokens": 4}})
    assert (bench.limit, bench.generation.max_new_tokens, bench.generation.seed) == (8, 4, 1234)
    with pytest.raises(ConfigError, match="only limit and generation can be overridden"):
        specs["hh_harmless"].resolve({"dataset": {}})
    with pytest.raises(ConfigError, match="one response per prompt"):
        specs["hh_harmless"].resolve({"generation": {"n": 4}})
    with pytest.raises(ConfigError, match=r"unknown judged benchmark 'alpaca'.*Did you mean 'alpaca_eval'"):
        get_judged_benchmark("alpaca")


def test_benchmarks_that_cannot_run_offline_fail_before_any_generation(tmp_path: Path, tok: Any) -> None:
    judge = make_judge({"kind": "callable", "fn": lambda p, r: 0.0})
    cases = {
        "alpaca_eval": r"not cached.*pass data_dir= a folder holding alpaca_eval_gpt4_baseline\.json",
        "mt_bench": "2-turn conversations are not supported",
        "arena_hard": r"ships no baseline responses.*gpt-4-0314",
        "hh_harmless": r"Anthropic/hh-rlhf.*not cached",
    }
    for name, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            evaluate_judged(get_judged_benchmark(name), None, tok, judge, data_dir=None)  # no model needed
    with pytest.raises(ConfigError, match=r"hh_rlhf_harmless_base_test\.jsonl is missing"):
        evaluate_judged(get_judged_benchmark("hh_harmless"), None, tok, judge, data_dir=tmp_path)
    no_template = build_char_tokenizer()
    no_template.chat_template = None
    with pytest.raises(ConfigError, match="prompt_format chat needs a tokenizer with a chat template"):
        evaluate_judged(get_judged_benchmark("alpaca_eval"), None, no_template, judge, data_dir=None)


def first_char_score(prompt: str, response: str) -> float:
    """A judge score we can predict from the items: the code of the first non-space character (0 if none)."""
    text = response.strip()
    return float(ord(text[0])) if text else 0.0


@needs_hh
def test_evaluate_judged_on_hh_harmless_end_to_end(tok: Any) -> None:
    from repro.data.preference_loader import load_preference_pairs
    from repro.eval.synthetic import generate_completions

    generation = {"max_new_tokens": 6, "batch_size": 3, "temperature": 1.0, "seed": 7}  # sampled: varied replies
    bench = get_judged_benchmark("hh_harmless").resolve({"generation": generation})
    model = build_tiny_model(tok, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    judge = make_judge({"kind": "callable", "fn": first_char_score})
    result = evaluate_judged(bench, model, tok, judge, PREF_DIR, limit=8)

    pairs = load_preference_pairs(str(PREF_DIR / "hh_rlhf_harmless_base_test.jsonl"))[:8]
    items = result["items"]
    assert result["n"] == len(items) == 8 and result["benchmark"] == "hh_harmless"
    assert [it["id"] for it in items] == [p.id for p in pairs]
    assert [(it["prompt"], it["baseline"]) for it in items] == [(p.prompt, p.chosen) for p in pairs]
    torch.manual_seed(7)  # the protocol's seed: the first batch of 3 replays exactly
    sampled, _ = generate_completions(model, tok, [p.prompt for p in pairs[:3]], sample=True, max_new_tokens=6)
    assert [it["response"] for it in items[:3]] == sampled
    expected = []
    for it in items:
        s_resp, s_base = first_char_score("", it["response"]), first_char_score("", it["baseline"])
        expected.append(1.0 if s_resp > s_base else 0.5 if s_resp == s_base else 0.0)
    assert [it["p"] for it in items] == expected
    assert 0.0 < sum(expected) < 8.0  # a mix of wins and losses: the check below is not trivially 0 or 1
    assert result["win_rate"] == pytest.approx(sum(expected) / 8)
    low, high = result["ci95"]
    assert low <= result["win_rate"] <= high and result["ci95"] == bootstrap_ci(expected, seed=7)
    assert result["generation"]["max_new_tokens"] == 6 and result["judge"].startswith("callable:")


def test_bootstrap_ci_by_hand() -> None:
    assert bootstrap_ci([1.0] * 5, seed=0) == [1.0, 1.0]
    low, high = bootstrap_ci([0.0, 1.0] * 50, seed=0)
    assert 0.38 < low < 0.45 and 0.55 < high < 0.62  # ≈ 0.5 ± 1.96·0.05
    assert bootstrap_ci([0.0, 1.0] * 50, seed=0) == [low, high]
