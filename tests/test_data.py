"""Synthetic tasks, the held-out split, prompt templates, and the prompt loader."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from repro.data.prompts import load_prompts
from repro.data.synthetic import HELD_OUT_N, TASKS, Problem, Task, held_out, make_train
from repro.data.templates import DAPO_INSTRUCTION, TEMPLATES, render
from repro.models.tiny import build_char_tokenizer
from repro.registry import RegistryError
from repro.schema import ConfigError

GSM8K_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "math" / "gsm8k_train.jsonl"


# --- synthetic tasks -------------------------------------------------------------------------


def test_registry_lists_the_tasks_and_suggests_on_typos() -> None:
    assert TASKS.names() == ["addition", "addition_padded", "addition_working", "count_colour"]
    with pytest.raises(RegistryError, match="Did you mean 'addition'"):
        TASKS.get("adition")


def test_addition_problems_are_correct_and_deterministic_per_seed() -> None:
    a, b, c = (TASKS.get("addition").make(300, seed=s) for s in (3, 3, 4))
    assert a == b and a != c
    assert a[0].id == "addition-3-0" and len({p.id for p in a}) == 300
    for p in a:
        m = re.fullmatch(r"(\d{1,3})\+(\d{1,3})=", p.prompt)
        assert m, p.prompt
        assert p.answer == p.target == str(int(m[1]) + int(m[2]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a[0].answer = "0"  # type: ignore[misc]


def test_addition_working_shows_running_sums_then_the_answer() -> None:
    problems = TASKS.get("addition_working").make(400, seed=5)
    n_operands = set()
    for p in problems:
        ops = [int(x) for x in p.prompt.removesuffix("=").split("+")]
        assert 2 <= len(ops) <= 4 and all(0 <= x <= 999 for x in ops)
        n_operands.add(len(ops))
        working, answer = p.target.split("#")
        running = [int(s) for s in working.split(",")]
        assert running == [sum(ops[: i + 1]) for i in range(1, len(ops))]
        assert p.answer == answer == str(sum(ops))
    assert n_operands == {2, 3, 4}
    assert len({len(p.target) for p in problems}) >= 8  # the completion length really varies


def test_hand_example_of_the_working_format() -> None:
    task = TASKS.get("addition_working")
    p = next(p for p in task.make(2000, seed=0) if p.prompt.count("+") == 2)
    a, b, c = (int(x) for x in p.prompt[:-1].split("+"))
    assert p.target == f"{a + b},{a + b + c}#{a + b + c}"


def test_held_out_is_distinct_fixed_and_prefix_stable() -> None:
    for task in TASKS.names():
        held = held_out(task)
        assert len(held) == HELD_OUT_N == len({p.key for p in held})  # key = prompt (and image, visual tasks)
        assert held == held_out(task)
        assert held_out(task, n=50) == held[:50]  # a smaller evaluation set is still excluded from training


def test_training_problems_never_contain_held_out_prompts() -> None:
    for task in TASKS.names():
        held = {p.key for p in held_out(task)}
        train = make_train(task, 20_000, seed=0)
        assert len(train) == 20_000 and not held & {p.key for p in train}
    # addition_working has small prompts that recur; the exclusion must actually remove some draws
    raw = {p.prompt for p in TASKS.get("addition_working").make(20_000, seed=1)}
    assert raw & {p.prompt for p in held_out("addition_working")}


def test_make_train_honours_an_explicit_exclude_set() -> None:
    first = make_train("addition", 10, seed=7, exclude=set())
    again = make_train("addition", 10, seed=7, exclude={first[0].prompt})
    assert first[0].prompt not in {p.prompt for p in again}
    assert again[0] == dataclasses.replace(first[1], id=again[0].id)  # the stream just skips it


def test_an_exhausted_task_space_raises_instead_of_hanging() -> None:
    constant = Task("constant", lambda rng: ("1+1=", "2", "2"), answer_style="plain")
    assert len(constant.make(3, seed=0)) == 3
    with pytest.raises(ValueError, match="could not produce 2 problems"):
        constant.make(2, seed=0, distinct=True)


# --- templates -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return build_char_tokenizer()


def test_templates_render_exact_strings(tok: PreTrainedTokenizerFast) -> None:
    assert TEMPLATES.names() == ["chat", "dapo", "qwen_math", "raw"]
    assert render("raw", "1+2=", tok) == "1+2="
    assert render("chat", "1+2=", tok) == "<|im_start|>user\n1+2=<|im_end|>\n<|im_start|>assistant\n"
    assert render("dapo", "What is 1+2?", tok) == (
        "<|im_start|>user\nSolve the following math problem step by step. The last line of your response should be "
        "of the form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\nWhat is 1+2?\n\n"
        'Remember to put your answer on its own line after "Answer:".<|im_end|>\n<|im_start|>assistant\n'
    )
    assert render("qwen_math", "1+2", tok) == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\n1+2<|im_end|>\n<|im_start|>assistant\n"
    )
    with pytest.raises(RegistryError, match="Did you mean 'dapo'"):
        render("dap", "x", tok)


def test_every_template_survives_the_char_tokenizer(tok: PreTrainedTokenizerFast) -> None:
    problem = "If $x^2 = 4$ and 50% of y is #3 @ ~5 | `z`, find \\frac{x}{y}."
    for name in TEMPLATES.names():
        text = render(name, problem, tok)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids and tok.decode(ids) == text, name
    assert "{problem}" in DAPO_INSTRUCTION


# --- prompt loader ---------------------------------------------------------------------------


@pytest.mark.skipif(not GSM8K_TRAIN.is_file(), reason="../shared/data is not beside the checkout")
def test_load_prompts_reads_gsm8k_train() -> None:
    rows = load_prompts(str(GSM8K_TRAIN))
    assert len(rows) == 7473
    assert rows[0] == Problem("gsm8k-train-0", rows[0].prompt, "72")
    assert rows[0].prompt.startswith("Natalia sold clips to 48 of her friends")
    assert [p.id for p in load_prompts(str(GSM8K_TRAIN), limit=3)] == [f"gsm8k-train-{i}" for i in range(3)]
    with pytest.raises(
        ConfigError, match=r"no field 'question' \(data.problem_field\); available: answer, id, problem"
    ):
        load_prompts(str(GSM8K_TRAIN), problem_field="question", limit=2)


def test_load_prompts_from_json_parquet_dotted_and_chat_fields(tmp_path: Path) -> None:
    rows = [
        {"prompt": [{"role": "user", "content": "What is 2+2?"}], "reward_model": {"ground_truth": 4}},
        {"prompt": [{"role": "user", "content": "What is 3+3?"}], "reward_model": {"ground_truth": 6}},
    ]
    kwargs = {"problem_field": "prompt", "answer_field": "reward_model.ground_truth"}
    (tmp_path / "d.json").write_text(json.dumps({"test": rows}))
    got = load_prompts(str(tmp_path / "d.json"), split="test", **kwargs)
    assert [(p.id, p.prompt, p.answer) for p in got] == [("d-0", "What is 2+2?", "4"), ("d-1", "What is 3+3?", "6")]
    with pytest.raises(ConfigError, match="no split 'train'.*splits: test"):
        load_prompts(str(tmp_path / "d.json"), **kwargs)
    pd = pytest.importorskip("pandas")
    pd.DataFrame([{"problem": "1+1", "answer": "2"}, {"problem": "x", "answer": "\\frac{1}{2}"}]).to_parquet(
        tmp_path / "d.parquet"
    )
    assert [p.answer for p in load_prompts(str(tmp_path / "d.parquet"))] == ["2", "\\frac{1}{2}"]
    (tmp_path / "u.jsonl").write_text(json.dumps({"problem": "a\u2028b", "answer": "1"}) + "\n\n")
    assert load_prompts(str(tmp_path / "u.jsonl"))[0].prompt == "a\u2028b"  # not split at U+2028


def test_load_prompts_synthetic_source_is_seeded_and_excludes_held_out() -> None:
    a = load_prompts("synthetic:addition", limit=500, seed=0)
    assert a == load_prompts("synthetic:addition", limit=500, seed=0)
    assert a != load_prompts("synthetic:addition", limit=500, seed=1)
    assert a == make_train("addition", 500, seed=0)
    assert not {p.prompt for p in a} & {p.prompt for p in held_out("addition")}
    assert len(load_prompts("synthetic:addition_working", seed=0)) == 20_000


def test_load_prompts_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'missing.jsonl' does not exist"):
        load_prompts("missing.jsonl")
    with pytest.raises(ConfigError, match="Did you mean 'addition'"):
        load_prompts("synthetic:adition")
    with pytest.raises(ConfigError, match="data.limit must be at least 1"):
        load_prompts("synthetic:addition", limit=0)
    (tmp_path / "x.jsonl").write_text('{"question": "q", "answer": "1"}\n')
    with pytest.raises(ConfigError, match=r"row 0 has no field 'problem'.*available: answer, question"):
        load_prompts(str(tmp_path / "x.jsonl"))


@pytest.mark.skipif(os.environ.get("HF_HUB_OFFLINE") != "1", reason="needs HF_HUB_OFFLINE=1 to fail fast")
def test_uncached_hub_dataset_offline_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="could not load dataset 'repro-test/no-such-dataset'.*local file path"):
        load_prompts("repro-test/no-such-dataset")
