"""The SFT trainer kind (`trainer: sft`): config, the nll / dft losses, BEMA, data, the loop and its verbs.

- config: `trainer: sft`, TRL SFTConfig names and defaults, the `bema:` block, fix-it errors (packing included);
- losses by hand (values, DFT's stop-gradient, the window normaliser) and equal to TRL 1.16's
  `SFTTrainer.compute_loss` (loss and parameter gradients, nll and dft) on a real tiny model and TRL's own batch;
- BEMA: β_t, α_t and the update schedule by hand (TRL's own test cases), and θ₀ / EMA / BEMA weights equal to
  `trl.BEMACallback` driven over the same weight sequence;
- data: the shifted task is outside the training support, training never draws an excluded problem, the local
  Alpaca file loads prompt-disjoint, conversational rows;
- the loop: GA 2 × 4 = one batch of 8, a killed run resumes to the uninterrupted result (BEMA buffers included),
  a short real train + eval round trip (loss falls, formula gap, iterates, base numbers).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from repro.data.sft_data import SFTExample, TrainingStream, examples_from_rows, real_examples
from repro.losses.sft import SFT_LOSSES, sft_loss, target_logps
from repro.schema import ConfigError
from repro.sft_config import BemaConfig, SFTRunConfig, resolve_sft
from repro.trainers.bema import BemaAverager, bema_alpha, ema_beta, schedule_action, trainable_parameters

ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sft" / "alpaca_en_demo.jsonl"
EXAMPLES = [
    SFTExample("12+3=", "15"),
    SFTExample("100+200=", "300"),
    SFTExample("7+8=", "15"),
    SFTExample("41+1=", "42"),
    SFTExample("9+9=", "18"),
    SFTExample("2+2=", "4"),
    SFTExample("30+3=", "33"),
    SFTExample("5+50=", "55"),
]


def raw_config(train: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {
        "trainer": "sft",
        "model": {"name_or_path": "unused"},
        "data": {"dataset": "local.jsonl"},
        "train": {"max_steps": 4, "learning_rate": 1e-2, "per_device_train_batch_size": 8, "save_steps": 0,
                  **(train or {})},
        **top,
    }  # fmt: skip


def config(train: dict[str, Any] | None = None, **top: Any) -> SFTRunConfig:
    return resolve_sft(raw_config(train, **top), "test")


# ----------------------------------------------------------------------------- config


def test_trainer_key_selects_the_sft_config_with_trl_defaults(tmp_path: Path):
    from repro.config import load_config_file

    path = tmp_path / "run.yaml"
    path.write_text(
        "trainer: sft\nmodel: {name_or_path: m}\ndata: {dataset: 'synthetic:addition'}\n"
        "train: {max_steps: 3, learning_rate: 5.0e-5, loss_type: dft, warmup_ratio: 0.1}\n"
        "bema: {update_freq: 2}\n",
        encoding="utf-8",
    )
    cfg = load_config_file(path)
    assert isinstance(cfg, SFTRunConfig)
    assert cfg.train.completion_only_loss is True and cfg.train.packing is False  # TRL's defaults for prompt/completion
    assert cfg.train.warmup == 1  # ⌈0.1 · 3⌉, as transformers computes warm-up from a ratio
    assert cfg.bema == BemaConfig(update_freq=2)  # every other BEMACallback argument at TRL's default
    assert (cfg.bema.ema_power, cfg.bema.bias_power, cfg.bema.lag) == (0.5, 0.2, 10)
    assert cfg.synthetic_task == "addition" and cfg.eval_task == "addition"
    assert config().bema is None  # no bema block: no averaging


@pytest.mark.parametrize(
    ("train", "top", "message"),
    [
        ({"packing": True}, {}, "set packing: false"),
        ({"loss_type": "dtf"}, {}, "Did you mean 'dft'"),
        ({"max_length": 1}, {}, "train.max_length: is 1; it must be at least 2 (tokens"),
        ({"warmup_ratio": 1.5}, {}, "[0, 1)"),
        ({}, {"bema": {"update_freq": 0}}, "bema.update_freq: is 0; it must be at least 1"),
        ({}, {"bema": {"ema_power": -1.0}}, "bema.ema_power: is -1.0; it must be at least 0"),
        ({}, {"bema": {"update_freq": 1, "gamma": 2.0}}, "Valid keys here"),
        ({}, {"eval": {"shifted_task": "addition_padded"}}, "needs a synthetic evaluation task"),
        ({}, {"eval": {"task": "additon"}}, "Did you mean 'addition'"),
        ({}, {"data": {"dataset": "local.jsonl", "n_train": 100}}, "use data.limit"),
        ({}, {"data": {"dataset": "synthetic:addition"}, "eval": {"seed": 7}}, "must use seed 1234"),
        ({}, {"rewards": {"correctness": {"weight": 1.0}}}, "remove the rewards section"),
    ],
)
def test_bad_sft_configs_fail_with_the_fix(train: dict, top: dict, message: str):
    with pytest.raises(ConfigError, match=None) as err:
        config(train, **top)
    assert message in str(err.value)


# ----------------------------------------------------------------------------- losses by hand


def test_nll_and_dft_per_token_values_and_the_window_normaliser():
    p = torch.tensor([[0.5, 0.25, 0.9]])  # [1, 3] target-token probabilities
    logps = p.log().requires_grad_(True)
    mask = torch.tensor([[True, True, False]])
    assert SFT_LOSSES.get("nll")(logps).tolist()[0][:2] == pytest.approx([math.log(2), math.log(4)])
    dft = SFT_LOSSES.get("dft")(logps)  # −p·log p
    assert dft.tolist()[0][:2] == pytest.approx([0.5 * math.log(2), 0.25 * math.log(4)])
    # Σ over the masked tokens / N, with N the whole accumulation window's label count (here 4, not 2)
    loss = sft_loss(dft, mask, num_items=4)
    assert loss.item() == pytest.approx((0.5 * math.log(2) + 0.25 * math.log(4)) / 4)
    loss.backward()
    # sg(p): d(−p·log p)/d log p = −p (not −p·(1 + log p)); masked and padded tokens get no gradient
    assert logps.grad.tolist()[0] == pytest.approx([-0.5 / 4, -0.25 / 4, 0.0])


def test_target_logps_shift_and_mask_by_hand():
    logits = torch.log(torch.tensor([[[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]]]))  # [1, 3, 2]
    labels = torch.tensor([[-100, 1, 0]])  # position 0 predicts label 1, position 1 predicts label 0
    logps, mask = target_logps(logits, labels)
    assert mask.tolist() == [[True, True]]
    assert logps.tolist()[0] == pytest.approx([math.log(0.9), math.log(0.6)])
    logps, mask = target_logps(logits, torch.tensor([[-100, -100, 0]]))
    assert mask.tolist() == [[False, True]] and logps[0, 0].item() == 0.0


# ----------------------------------------------------------------------------- parity with TRL on a real model


def perturbed_copy(model: Any, seed: int = 1, scale: float = 0.3) -> Any:
    policy = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return policy


@pytest.mark.parametrize("loss_type", ["nll", "dft"])
def test_loss_and_gradient_equal_trl_sft_trainer_on_a_real_model(tiny_model_dir: str, tmp_path: Path, loss_type: str):
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    from repro.models.loading import load_policy
    from repro.trainers.sft_loop import encode, label_count

    rows = [{"prompt": e.prompt, "completion": e.completion} for e in EXAMPLES]
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "trl"), bf16=False, use_cpu=True, gradient_checkpointing=False, report_to="none",
        per_device_train_batch_size=len(rows), loss_type=loss_type, save_strategy="no",
    )  # fmt: skip
    trainer = trl.SFTTrainer(model=tiny_model_dir, args=args, train_dataset=Dataset.from_list(rows))
    start, tok = load_policy(tiny_model_dir)
    policy = perturbed_copy(start)
    theirs = trainer.model
    theirs.load_state_dict(policy.state_dict())
    theirs.train()
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])

    ours = encode(tok, EXAMPLES, max_length=None)
    for key in ("input_ids", "labels", "attention_mask"):  # our tokenization is TRL's (prompt + completion + EOS)
        assert torch.equal(ours[key], trl_batch[key]), key
    n_window = 2 * label_count(ours)  # as if this micro-batch were half of a GA window (num_items_in_batch)
    trl_loss = trainer.compute_loss(theirs, dict(trl_batch), num_items_in_batch=torch.tensor(n_window))
    trl_loss.backward()

    logits = policy(input_ids=ours["input_ids"], attention_mask=ours["attention_mask"]).logits
    logps, mask = target_logps(logits, ours["labels"])
    loss = sft_loss(SFT_LOSSES.get(loss_type)(logps), mask, n_window)
    loss.backward()
    torch.testing.assert_close(loss.detach(), trl_loss.detach(), rtol=1e-5, atol=1e-6)
    for (name, mine), other in zip(policy.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, other.grad, rtol=1e-4, atol=1e-6, msg=name)


# ----------------------------------------------------------------------------- BEMA


def test_beta_alpha_by_hand_and_trl_callback_update_steps():
    cfg = BemaConfig()  # ρ = 10, γ = 1, κ = 0.5, η = 0.2
    assert ema_beta(cfg, 6) == pytest.approx(16**-0.5) == pytest.approx(0.25)
    assert bema_alpha(cfg, 22) == pytest.approx(32**-0.2) == pytest.approx(0.5)
    assert ema_beta(BemaConfig(min_ema_multiplier=0.3), 90) == 0.3  # (100)^−0.5 = 0.1, floored
    assert ema_beta(BemaConfig(ema_power=0.0), 5) == 1.0 and bema_alpha(BemaConfig(bias_power=0.0), 5) == 1.0

    def updates(**kw: int) -> list[int]:
        return [t for t in range(1, 10) if schedule_action(BemaConfig(**kw), t) == "update"]

    # TRL's tests/test_callbacks.py::TestBEMACallback (9 optimizer steps)
    assert updates(update_freq=2) == [2, 4, 6, 8]
    assert updates(update_freq=3) == [3, 6, 9]
    assert updates(update_freq=2, update_after=3) == [5, 7, 9]
    assert schedule_action(BemaConfig(update_after=3), 3) == "snapshot"
    assert schedule_action(BemaConfig(update_after=3), 2) == "skip"


@pytest.mark.parametrize(
    "kw",
    [
        {"update_freq": 1},
        {"update_freq": 3, "update_after": 2, "min_ema_multiplier": 0.3},
        {"update_freq": 2, "ema_power": 0.0},
        {"update_freq": 2, "bias_power": 0.0, "lag": 3, "multiplier": 2.0},
    ],
)
def test_bema_weights_equal_trl_bema_callback_over_the_same_weights(tiny_model_dir: str, kw: dict[str, Any]):
    trl = pytest.importorskip("trl")
    from repro.models.loading import load_policy

    model, _ = load_policy(tiny_model_dir)
    callback = trl.BEMACallback(**kw)
    callback.on_train_begin(None, SimpleNamespace(global_step=0), None, model=model)
    ours = BemaAverager(BemaConfig(**kw), trainable_parameters(model))
    g = torch.Generator().manual_seed(0)
    for t in range(1, 10):  # a weight trajectory: drift plus noise, as SGD iterates
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 + 0.05 * torch.randn(p.shape, generator=g))
        callback.on_step_end(None, SimpleNamespace(global_step=t), None, model=model)
        ours.on_step_end(t, trainable_parameters(model))
        for mine, theirs in zip(ours.ema, callback.ema_params, strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7)
        for mine, theirs in zip(ours.theta0, callback.theta0_params, strict=True):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
        for mine, theirs in zip(ours.bema, callback.running_model.parameters(), strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7)
    assert ours.updates and all(schedule_action(ours.cfg, t) == "update" for t in ours.updates)
    moved = max(
        float((b - t.detach()).abs().max()) for b, t in zip(ours.bema, trainable_parameters(model), strict=True)
    )
    assert moved > 1e-3  # the averaged iterate is not the raw one


# ----------------------------------------------------------------------------- data


def test_shifted_task_prompts_are_outside_the_addition_support():
    from repro.data.synthetic import TASKS, held_out

    shifted = held_out("addition_padded")
    for p in shifted:
        a, b = p.prompt[:-1].split("+")
        assert len(a) == len(b) == 3 and (a.startswith("0") or b.startswith("0"))  # a leading zero
        assert p.answer == p.target == str(int(a) + int(b))
    assert held_out("addition_padded")[0].prompt == "007+092="  # pinned: the held-out set must never drift
    train = TASKS.get("addition").make(5000, 7)
    assert not {p.prompt for p in train} & {p.prompt for p in shifted}
    operands = [x for p in train for x in p.prompt[:-1].split("+")]
    assert not any(len(x) > 1 and x.startswith("0") for x in operands)  # `addition` never pads


def test_training_stream_never_draws_an_excluded_problem_and_is_a_function_of_the_step():
    from repro.data.synthetic import TASKS

    free = TrainingStream(seed=3, batch_size=64, grad_accum=2, task="addition")
    drawn = {e.prompt for step in (1, 2) for m in (0, 1) for e in free.micro_batch(step, m)}
    # exclude exactly what the unconstrained stream draws: the constrained one must avoid all of it
    stream = TrainingStream(seed=3, batch_size=64, grad_accum=2, task="addition", exclude=frozenset(drawn))
    again = {e.prompt for step in (1, 2) for m in (0, 1) for e in stream.micro_batch(step, m)}
    assert len(drawn) > 200 and not drawn & again
    assert [e.prompt for e in stream.micro_batch(2, 1)] == [e.prompt for e in stream.micro_batch(2, 1)]
    assert TASKS.get("addition").make(3, 5)[0].prompt != stream.micro_batch(1, 0)[0].prompt
    fixed = TrainingStream(seed=0, batch_size=3, grad_accum=1, examples=EXAMPLES)
    epoch0 = [e.prompt for s in (1, 2) for e in fixed.micro_batch(s, 0)][:6] + [fixed.micro_batch(3, 0)[0].prompt]
    assert len(set(epoch0[: len(EXAMPLES)])) == len(epoch0[: len(EXAMPLES)])  # no repeat within an epoch
    assert fixed.epoch(2) == 0 and fixed.epoch(3) == 1  # step 3 reads examples 7–9 of 8: into epoch 1


def test_training_exclusions_hold_out_both_evaluation_sets():
    from repro.data.sft_data import training_exclusions
    from repro.data.synthetic import held_out

    cfg = config(data={"dataset": "synthetic:addition"}, eval={"shifted_task": "addition_padded"})
    keys = training_exclusions(cfg)
    assert {p.key for p in held_out("addition")} <= keys and {p.key for p in held_out("addition_padded")} <= keys
    assert len(keys) == 400


@pytest.mark.skipif(not ALPACA.is_file(), reason="the local Alpaca demo file is not beside the project")
def test_the_local_alpaca_file_loads_prompt_disjoint(tiny_model_dir: str):
    cfg = config(data={"dataset": str(ALPACA)}, eval={"n_problems": 50})
    train, held = real_examples(cfg, tokenizer=None)
    assert len(held) == 50 and len(train) + len(held) <= 999 and len(train) > 900
    assert not {e.prompt for e in train} & {e.prompt for e in held}
    first = next(e for e in train + held if e.id == "alpaca-en-demo-0")
    assert first.prompt == "Describe a process of making crepes." and first.completion.startswith("Making crepes")
    subset, _ = real_examples(config(data={"dataset": str(ALPACA), "limit": 100}, eval={"n_problems": 50}), None)
    assert len(subset) == 100 and {e.id for e in subset} <= {e.id for e in train}


def test_conversational_rows_and_their_errors():
    cfg = config()
    rows = [
        {"messages": [{"role": "user", "content": "2+2="}, {"role": "assistant", "content": "4"}]},
        {"prompt": [{"role": "user", "content": "3+3="}], "completion": [{"role": "assistant", "content": "6"}]},
    ]
    a, b = examples_from_rows(rows, cfg, tokenizer=None, source="x")
    assert (a.prompt, a.completion) == ("User: 2+2=\n\nAssistant:", "4")  # the plain fallback rendering
    assert (b.prompt, b.completion) == ("User: 3+3=\n\nAssistant:", "6")
    with pytest.raises(ConfigError, match="end with an assistant turn"):
        examples_from_rows([{"messages": [{"role": "user", "content": "hi"}]}], cfg, None, "x")
    with pytest.raises(ConfigError, match="set data.prompt_field"):
        examples_from_rows([{"question": "q", "answer": "a"}], cfg, None, "x")


# ----------------------------------------------------------------------------- the loop


def make_trainer(model: Any, tok: Any, out: Path, *, bs: int = 8, ga: int = 1, steps: int = 3, **top: Any) -> Any:
    from repro.trainers.sft_loop import SFTTrainer

    cfg = config({"per_device_train_batch_size": bs, "gradient_accumulation_steps": ga, "max_steps": steps,
                  "lr_scheduler_type": "constant", **top.pop("train", {})}, **top)  # fmt: skip
    stream = TrainingStream(seed=0, batch_size=bs, grad_accum=ga, examples=EXAMPLES)
    return SFTTrainer(cfg, model, tok, stream, out, held_out=EXAMPLES[:4])


def test_two_accumulated_micro_batches_equal_one_batch(tiny_model_dir: str, tmp_path: Path):
    from repro.models.loading import load_policy

    start, tok = load_policy(tiny_model_dir)
    a, b = copy.deepcopy(start), copy.deepcopy(start)
    row_a = make_trainer(a, tok, tmp_path / "a", bs=8, ga=1, steps=1, train={"loss_type": "dft"}).train(False)[0]
    row_b = make_trainer(b, tok, tmp_path / "b", bs=4, ga=2, steps=1, train={"loss_type": "dft"}).train(False)[0]
    assert row_a["loss"] == pytest.approx(row_b["loss"], rel=1e-6)  # Σ ℓ / N over the window, not a mean of means
    assert row_a["num_tokens"] == row_b["num_tokens"] == sum(len(e.completion) + 1 for e in EXAMPLES)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)


def test_resume_from_checkpoint_reproduces_the_uninterrupted_run_with_bema(tiny_model_dir: str, tmp_path: Path):
    from repro.models.loading import load_policy

    start, tok = load_policy(tiny_model_dir)
    kw: dict[str, Any] = {"bs": 3, "steps": 4, "train": {"save_steps": 2, "eval_every": 2}, "bema": {"update_freq": 1}}
    whole = make_trainer(copy.deepcopy(start), tok, tmp_path / "whole", **copy.deepcopy(kw))
    rows_whole = whole.train(False)

    out = tmp_path / "cut"
    killed = make_trainer(copy.deepcopy(start), tok, out, **copy.deepcopy(kw))
    step = killed._optimizer_step

    def die_after_two() -> dict[str, Any]:
        if killed.step == 2:  # the checkpoint of step 2 is written; the process dies before step 3
            raise KeyboardInterrupt
        return step()

    killed._optimizer_step = die_after_two
    with pytest.raises(KeyboardInterrupt):
        killed.train(False)
    resumed = make_trainer(copy.deepcopy(start), tok, out, **copy.deepcopy(kw))  # a fresh process
    rows = resumed.train(False)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["eval_loss_bema"] == pytest.approx(rows_whole[-1]["eval_loss_bema"], rel=1e-5)
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    for pa, pb in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-7)
    for name in ("theta0", "ema", "bema"):
        for pa, pb in zip(getattr(whole.bema, name), getattr(resumed.bema, name), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-7)
    assert resumed.bema.updates == whole.bema.updates == [1, 2, 3, 4]


def test_a_short_run_trains_evaluates_iterates_and_scores_the_base(tiny_model_dir: str, tmp_path: Path):
    from repro.runs_sft import eval_sft_run, train_sft_run

    cfg = resolve_sft(
        {
            "trainer": "sft",
            "model": {"name_or_path": tiny_model_dir},
            "data": {"dataset": "synthetic:addition"},
            "train": {"loss_type": "dft", "max_steps": 30, "learning_rate": 1e-2, "per_device_train_batch_size": 32,
                      "lr_scheduler_type": "constant", "eval_every": 15, "eval_problems": 40, "max_length": 32,
                      "save_steps": 0},
            "bema": {"update_freq": 5},
            "eval": {"shifted_task": "addition_padded", "n_problems": 40, "k": 2, "max_new_tokens": 5},
        },
        "test",
    )  # fmt: skip
    out = tmp_path / "run"
    summary = train_sft_run(cfg, "dft", "smoke", "dft", 0, out, tiny_model_dir)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["steps"] == 30 and [r["step"] for r in rows if "eval_loss" in r] == [15, 30]
    assert max(r["loss_formula_gap"] for r in rows) < 1e-6  # the logged loss is −sg(p)·log p, recomputed
    assert [r["bema_update"] for r in rows[:5]] == [0, 0, 0, 0, 1]  # φ = 5
    assert all((out / d / "model.safetensors").is_file() for d in ("model", "model_ema", "model_bema"))
    result = eval_sft_run(out, cfg, out / "eval.json")
    assert result["trainer"] == "sft" and result["eval_loss"] < result["base"]["eval_loss"] - 0.3  # it learned
    assert result["eval_loss"] == pytest.approx(rows[-1]["eval_loss"], rel=1e-4)  # same iterate, same problems
    assert result["bema_eval_loss"] == pytest.approx(rows[-1]["eval_loss_bema"], rel=1e-4)
    assert result["ema_eval_loss"] != pytest.approx(result["bema_eval_loss"])
    assert 0.0 <= result["shifted_sampled_accuracy"] <= 1.0 and "shifted_eval_loss" in result["base"]
    assert set(result["headline"]) <= set(result) and "items" in result and "bema_items" not in result


def test_lag_and_fluctuation_reducers_by_hand():
    from repro.report.claims import REDUCERS

    curve = [4.0, 2.0, 1.0, 3.0, 1.0, 2.0]
    assert REDUCERS.get("mean_first")(curve, 0.5) == pytest.approx(7 / 3)  # first 3 of 6 points
    # last 3 points 3, 1, 2: changes −2, +1 → sample std √4.5; a trend without noise has none
    assert REDUCERS.get("fluctuation")(curve, 0.5) == pytest.approx(math.sqrt(4.5))
    assert REDUCERS.get("fluctuation")([5.0, 4.0, 3.0, 2.0], 1.0) == pytest.approx(0.0)
    assert math.isnan(REDUCERS.get("fluctuation")([1.0, 2.0], 0.5))  # two points: no spread of changes
