"""One stop-token set for sampling (repro/models/stops.py), on a checkpoint whose tokenizer eos (<|endoftext|>)
differs from its chat template's end of turn (<|im_end|>), as Qwen2.5 base checkpoints ship."""

from __future__ import annotations

import pytest
import torch
from conftest import build_char_tokenizer

from repro.data.templates import render
from repro.eval.synthetic import evaluate_policy
from repro.models.loading import load_policy
from repro.models.stops import checkpoint_generation_config, stop_strings, stop_token_ids, template_end_of_turn
from repro.rollout.base import SamplingParams
from repro.rollout.hf import HFRollout

QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April. How many clips did she sell?",
    "Weng earns $12 an hour for babysitting. How much did she earn for 50 minutes?",
    "Betty needs $100 and has half. How much more does she need?",
]


@pytest.fixture(scope="module")
def standin(standin_dir: str):
    model, tok = load_policy(standin_dir, "float32")
    return model, tok


def test_the_standin_ships_like_a_qwen_base_checkpoint(standin, standin_dir: str) -> None:
    model, tok = standin
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert type(tok).__name__ == "Qwen2Tokenizer" and model.config.model_type == "qwen2"
    assert tok.eos_token == "<|endoftext|>" and template_end_of_turn(tok) == "<|im_end|>"
    assert model.generation_config.eos_token_id == [im_end, tok.eos_token_id]
    assert checkpoint_generation_config(standin_dir).eos_token_id == [im_end, tok.eos_token_id]  # without weights
    # the tokenizer's eos first, each id once
    assert stop_token_ids(tok, model) == [tok.eos_token_id, im_end]
    assert stop_strings(tok, checkpoint_generation_config(standin_dir)) == ["<|endoftext|>", "<|im_end|>"]


def test_end_of_turn_of_other_template_families() -> None:
    tok = build_char_tokenizer()  # its template ends a turn with "\n" and no special token
    assert template_end_of_turn(tok) is None
    assert stop_token_ids(tok) == [tok.eos_token_id]
    llama3 = build_char_tokenizer()
    llama3.add_special_tokens({"additional_special_tokens": ["<|eot_id|>"]})
    llama3.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|eot_id|>{% endfor %}"
    eot = llama3.convert_tokens_to_ids("<|eot_id|>")
    assert template_end_of_turn(llama3) == "<|eot_id|>"

    class Generation:  # a generation_config whose eos is a single int
        eos_token_id = 5

    assert stop_token_ids(llama3, Generation()) == [llama3.eos_token_id, 5, eot]
    bare = build_char_tokenizer()
    bare.chat_template = None
    assert template_end_of_turn(bare) is None


def _rollout(model, tok, stop_ids=None, decode: str = "auto"):
    rollout = HFRollout(model, tok, decode=decode)
    if stop_ids is not None:
        rollout.stop_ids = stop_ids
    prompts = [render("chat", q, tok) for q in QUESTIONS]
    torch.manual_seed(0)
    return rollout.generate(prompts, SamplingParams(num_generations=8, max_new_tokens=48))


def test_rollouts_stop_at_the_templates_end_of_turn(standin) -> None:
    model, tok = standin
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    batch = _rollout(model, tok)
    ended = ~batch.truncated
    assert ended.float().mean() >= 0.75  # the stand-in ends most replies with <|im_end|>
    for ids, mask, cut in zip(batch.completion_ids, batch.completion_mask, batch.truncated, strict=True):
        kept = ids[mask.bool()].tolist()
        assert im_end not in kept[:-1] and (cut or kept[-1] in (im_end, tok.eos_token_id))
    assert not any("<|im_end|>" in text for text in batch.completions)
    # the defect this fixes: stopping at the tokenizer's eos alone, the masks run past the end of the turn
    eos_only = _rollout(model, tok, stop_ids=[tok.eos_token_id])
    past_turn = [
        im_end in ids[mask.bool()].tolist()[:-1]
        for ids, mask in zip(eos_only.completion_ids, eos_only.completion_mask, strict=True)
    ]
    assert sum(past_turn) >= 4


def test_lean_loop_and_generate_stop_alike_on_several_stop_tokens(standin) -> None:
    model, tok = standin
    lean, hf = _rollout(model, tok), _rollout(model, tok, decode="generate")
    assert torch.equal(lean.completion_mask, hf.completion_mask) and lean.completions == hf.completions
    assert torch.equal(lean.truncated, hf.truncated)


def test_evaluation_counts_truncation_and_treats_temperature_zero_as_greedy(standin) -> None:
    from repro.data.synthetic import Problem

    model, tok = standin
    problems = [Problem(str(i), q, "0") for i, q in enumerate(QUESTIONS)]
    out = evaluate_policy(model, tok, problems, template="chat", answer_style="boxed", k=4, max_new_tokens=48)
    assert 0.0 <= out["truncation_rate"] <= 0.25  # stops at <|im_end|>: few replies reach 48 tokens
    cut = evaluate_policy(model, tok, problems, template="chat", answer_style="boxed", k=4, max_new_tokens=3)
    assert cut["truncation_rate"] == 1.0  # nothing ends within 3 tokens: every sample is counted as cut
    greedy = evaluate_policy(
        model, tok, problems, template="chat", answer_style="boxed", k=4, temperature=0.0, max_new_tokens=48
    )  # a paper's greedy protocol (temperature 0) is greedy decoding, not a crash in the sampler
    assert greedy["k"] == 1 and [it["samples"] for it in greedy["items"]] == [[it["greedy"]] for it in greedy["items"]]


def test_benchmarks_stop_at_the_end_of_turn_through_lm_eval(standin_dir: str, tmp_path) -> None:
    from conftest import SHARED_MATH

    from repro.eval.benchmark import get_benchmark, load_items
    from repro.eval.lmeval_bridge import evaluate_benchmark

    bench = get_benchmark("gsm8k")
    protocol = bench.resolve({"template": "chat", "metric": "greedy", "n": 1, "k": 1, "temperature": 0.0,
                              "max_tokens": 48, "limit": 6})  # fmt: skip
    result = evaluate_benchmark(bench, protocol, model_path=standin_dir, local_dir=SHARED_MATH, batch_size=8,
                                items=load_items(bench, SHARED_MATH, 6))  # fmt: skip
    responses = [r for item in result["items"] for r in item["responses"]]
    assert len(responses) == 6 and not any("<|im_end|>" in r for r in responses)
    assert result["truncation_rate"] <= 0.5
