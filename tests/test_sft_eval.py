"""SFT warm start, the held-out evaluator (with stub policies of known accuracy), and the k-sample metrics."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch

from repro.data.synthetic import Problem, held_out
from repro.eval.metrics import avg_at_k, maj_at_k, pass_at_k
from repro.eval.synthetic import evaluate_policy
from repro.models.tiny import build_char_tokenizer, build_tiny_model
from repro.trainers.sft import completion_batch, sft_warm_start

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def tok() -> Any:
    return build_char_tokenizer()


# --- metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (2, 1, 1, 0.5),
        (4, 2, 2, 5 / 6),  # 1 − C(2,2)/C(4,2) = 1 − 1/6
        (10, 3, 1, 0.3),  # pass@1 is the share correct
        (5, 0, 3, 0.0),
        (5, 3, 3, 1.0),  # fewer than k wrong samples: some draw of k must hit
        (8, 2, 8, 1.0),
        (6, 1, 3, 0.5),  # 1 − C(5,3)/C(6,3) = 1 − 10/20
    ],
)
def test_pass_at_k_unbiased_estimator_by_hand(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_metric_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="at least k samples"):
        pass_at_k(2, 1, 3)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(2, 3, 1)
    with pytest.raises(ValueError, match="at least one sample"):
        avg_at_k([[True], []])


def test_avg_and_maj_at_k_by_hand() -> None:
    assert avg_at_k([[True, False], [True, True], [False, False, False, True]]) == pytest.approx((0.5 + 1 + 0.25) / 3)
    assert maj_at_k(["3", "4", "3", None], [True, False, True, False]) is True
    assert maj_at_k(["4", "4", "3"], [False, False, True]) is False
    assert maj_at_k(["4", "3", "3", "4"], [False, True, True, False]) is False  # tie: the answer seen first
    assert maj_at_k([None, None], [False, False]) is False


# --- SFT -----------------------------------------------------------------------------------


def test_completion_batch_masks_prompt_and_padding(tok: Any) -> None:
    batch = completion_batch(tok, ["1+2=", "10+20="], ["3", "30"])
    ids = lambda s: tok.convert_tokens_to_ids(list(s))  # noqa: E731
    eos, pad = tok.eos_token_id, tok.pad_token_id
    assert batch["input_ids"].tolist() == [ids("1+2=3") + [eos, pad, pad, pad], ids("10+20=30") + [eos]]
    assert batch["attention_mask"].tolist() == [[1] * 6 + [0] * 3, [1] * 9]
    assert batch["labels"].tolist() == [[-100] * 4 + ids("3") + [eos] + [-100] * 3, [-100] * 6 + ids("30") + [eos]]


def test_sft_lowers_the_completion_loss(tok: Any) -> None:
    """Measured: 4.64 -> 2.01 in 60 steps (bs 64, lr 3e-3); a uniform guess over 103 ids costs ln 103 = 4.63."""
    model = build_tiny_model(tok, **SMALL)
    curve = sft_warm_start(model, tok, "addition", steps=60, batch_size=64, lr=3e-3, warmup_steps=10, progress=False)
    assert [r["step"] for r in curve] == list(range(1, 61))
    assert curve[0]["loss"] == pytest.approx(math.log(len(tok)), abs=0.15)
    assert sum(r["loss"] for r in curve[-5:]) / 5 < curve[0]["loss"] - 2.0
    assert curve[0]["lr"] == pytest.approx(3e-4) and curve[9]["lr"] == curve[-1]["lr"] == pytest.approx(3e-3)
    assert not model.training


def test_sft_is_deterministic_for_a_seed_and_uses_the_template(tok: Any) -> None:
    def run(seed: int, template: str = "raw") -> tuple[list[float], torch.Tensor]:
        model = build_tiny_model(tok, **SMALL)
        curve = sft_warm_start(
            model, tok, "addition_working", steps=4, batch_size=16, seed=seed, template=template, progress=False
        )
        return [r["loss"] for r in curve], model.model.embed_tokens.weight.detach().clone()

    (loss_a, w_a), (loss_b, w_b), (loss_c, _), (loss_chat, _) = run(0), run(0), run(1), run(0, "chat")
    assert loss_a == loss_b and torch.equal(w_a, w_b)
    assert loss_a[1:] != loss_c[1:]  # a different seed draws different problems
    assert loss_a[0] != loss_chat[0]  # the chat template changes the context the targets are predicted from


def test_training_past_the_budget_continues_the_same_run_until_the_check_says_done(tok: Any) -> None:
    """A warm start k ≥ 1 trains on until it reaches the accuracy band (repro/prepare.py): the first `steps` are
    the plain run's, the check runs at `steps` and every `check_every` steps after (on the model in eval mode),
    and training stops when it says so or at `max_steps`."""

    def run(checks_until_done: int | None, max_steps: int = 20) -> tuple[list[float], list[bool]]:
        model = build_tiny_model(tok, **SMALL)
        seen: list[bool] = []  # model.training at each check

        def until() -> bool:
            seen.append(model.training)
            return checks_until_done is not None and len(seen) >= checks_until_done

        extend = {"until": until, "max_steps": max_steps, "check_every": 2} if checks_until_done != 0 else {}
        curve = sft_warm_start(model, tok, "addition", steps=3, batch_size=8, progress=False, **extend)
        return [r["loss"] for r in curve], seen

    plain, _ = run(0)
    done_at_third, seen = run(3)
    capped, seen_capped = run(None, max_steps=6)
    assert len(plain) == 3 and len(done_at_third) == 7 and done_at_third[:3] == plain  # checks after 3, 5, 7
    assert seen == [False, False, False]
    assert len(capped) == 6 and capped[:3] == plain and len(seen_capped) == 2  # checks after 3 and 5, cap at 6


# --- evaluation ----------------------------------------------------------------------------


class StubPolicy(torch.nn.Module):
    """Answers each decoded prompt with `answer(prompt, occurrence, do_sample)` + EOS + junk after EOS."""

    def __init__(self, tok: Any, answer: Any) -> None:
        super().__init__()
        self.tok, self.answer, self.calls, self.seen = tok, answer, [], {}

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.calls.append({"input_ids": input_ids, "attention_mask": attention_mask, **kwargs})
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            prompt = self.tok.decode([i for i, m in zip(ids, mask) if m])
            j = self.seen[prompt, kwargs["do_sample"]] = self.seen.get((prompt, kwargs["do_sample"]), -1) + 1
            text = self.answer(prompt, j, kwargs["do_sample"])
            rows.append(self.tok(text, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id] + [9, 9])
        width = max(len(r) for r in rows)
        pad = kwargs["pad_token_id"]
        completions = torch.tensor([r + [pad] * (width - len(r)) for r in rows])  # [B, T]
        return torch.cat([input_ids, completions], dim=1)  # [B, P + T]


def _sum(prompt: str) -> int:
    """The sum asked for in a raw or chat-wrapped 'a+b=' prompt."""
    return sum(int(x) for x in re.search(r"([\d+]+)=", prompt)[1].split("+"))


PROBLEMS = [Problem("a", "1+2=", "3"), Problem("b", "123+456=", "579"), Problem("c", "50+50=", "100")]


def test_a_policy_that_is_always_right_scores_one(tok: Any) -> None:
    stub = StubPolicy(tok, lambda p, j, s: str(_sum(p)))
    out = evaluate_policy(stub, tok, PROBLEMS, template="raw", answer_style="plain", k=4, max_new_tokens=6)
    assert (out["greedy_accuracy"], out["sampled_accuracy"], out["pass_at_k"], out["maj_at_k"]) == (1.0, 1.0, 1.0, 1.0)
    assert out["mean_response_length"] == pytest.approx((2 + 4 + 4) / 3)  # digits + EOS; junk after EOS cut
    assert out["items"][1]["greedy"] == "579" and out["items"][1]["samples"] == ["579"] * 4
    assert (out["k"], out["n_problems"]) == (4, 3)


def test_a_policy_that_is_always_wrong_scores_zero(tok: Any) -> None:
    stub = StubPolicy(tok, lambda p, j, s: str(_sum(p) + 1))
    out = evaluate_policy(stub, tok, PROBLEMS, template="raw", answer_style="plain", k=4)
    assert (out["greedy_accuracy"], out["sampled_accuracy"], out["pass_at_k"], out["maj_at_k"]) == (0.0, 0.0, 0.0, 0.0)
    assert not any(it["greedy_correct"] or any(it["samples_correct"]) for it in out["items"])


def test_mixed_policy_gives_hand_computed_metrics_and_clean_generate_calls(tok: Any) -> None:
    """Greedy always wrong; samples right on occurrences 0 and 4 of 8, wrong (all different) otherwise."""
    stub = StubPolicy(tok, lambda p, j, s: str(_sum(p) + (0 if s and j % 4 == 0 else 1 + j)))
    out = evaluate_policy(
        stub, tok, PROBLEMS, template="chat", answer_style="plain", k=8, temperature=0.7, top_p=0.9, batch_size=5
    )
    assert out["greedy_accuracy"] == 0.0
    assert out["sampled_accuracy"] == pytest.approx(2 / 8)
    assert out["pass_at_k"] == 1.0 and out["maj_at_k"] == 1.0  # 2 votes for the right answer, 1 for each wrong one
    assert out["items"][0]["samples_correct"] == [True, False, False, False, True, False, False, False]
    greedy_call, first_sample_call = stub.calls[0], stub.calls[1]
    assert greedy_call["do_sample"] is False and "temperature" not in greedy_call
    sampled = {k: first_sample_call[k] for k in ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty")}
    assert sampled == {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 0, "repetition_penalty": 1.0}
    # the stop set (repro/models/stops.py): the smoke tokenizer's eos is also its template's end of turn, and the stub
    # has no generation_config, so it is that one token
    assert (
        first_sample_call["eos_token_id"] == [tok.eos_token_id]
        and first_sample_call["pad_token_id"] == tok.pad_token_id
    )
    # greedy in one batch of 3 rows; samples in calls of whole groups: 5 rows hold no group of 8, so one per call
    assert [len(call["input_ids"]) for call in stub.calls] == [3, 8, 8, 8]
    ids, mask = greedy_call["input_ids"], greedy_call["attention_mask"]  # [3, P]
    assert mask[0, 0] == 0 and ids[0, 0] == tok.pad_token_id and mask[0, -1] == 1  # left padding
    assert tok.decode(ids[1][mask[1].bool()]) == "<|im_start|>user\n123+456=<|im_end|>\n<|im_start|>assistant\n"


def test_real_model_evaluation_is_seeded_and_bounded(tok: Any) -> None:
    model = build_tiny_model(tok, **SMALL)
    problems = held_out("addition", n=10)
    kw = {"template": "raw", "answer_style": "plain", "k": 4, "max_new_tokens": 5}
    a, b = evaluate_policy(model, tok, problems, seed=7, **kw), evaluate_policy(model, tok, problems, seed=7, **kw)
    c = evaluate_policy(model, tok, problems, seed=8, **kw)
    assert a["items"] == b["items"]
    assert [it["samples"] for it in a["items"]] != [it["samples"] for it in c["items"]]
    assert [it["greedy"] for it in a["items"]] == [it["greedy"] for it in c["items"]]  # greedy ignores the seed
    assert 1 <= a["mean_response_length"] <= 5
    assert all(len(tok(s, add_special_tokens=False)["input_ids"]) <= 5 for it in a["items"] for s in it["samples"])


@pytest.mark.slow
def test_reference_warm_start_lands_in_the_rl_band(tok: Any) -> None:
    """cpu_feasibility.md §3 recipe: 950 steps, bs 128, lr 1e-3 on the 1.06M model (~1.5–3 min on 2 cores).

    Measured with this code: greedy 0.76, sampled avg@8 0.59 (850 steps: 0.58 / 0.39).
    """
    model = build_tiny_model(tok)
    sft_warm_start(model, tok, "addition", steps=950, progress=False)
    out = evaluate_policy(model, tok, held_out("addition"), template="raw", answer_style="plain", k=8, seed=1234)
    assert 0.10 <= out["sampled_accuracy"] <= 0.90
    assert out["greedy_accuracy"] >= out["sampled_accuracy"] - 0.05
