"""The reward-model trainer (`trainer: reward_model`): config, loss, margins, data, TRL parity, the loop, evaluation.

- config: RewardConfig names, fix-it errors before any model loads;
- the loss −mean log σ(r_c − r_r − m) + η·mean (r_c + r_r)² by hand, and its gradient;
- Llama 2's rating → margin tables, gold-gap ratings, held-out pairs of synthetic samples, real margin / rating
  columns, prompts held out of one file, pairs over max_length dropped and counted;
- loss and parameter gradients equal TRL 1.16's RewardTrainer.compute_loss on a real tiny model (margin and
  center_rewards_coefficient on and off);
- a short train + eval round trip on synthetic pairs (values), resume after a kill, the trained RM as a judge.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from repro.data.preference import PreferencePair
from repro.data.reward_pairs import (
    LLAMA2_MARGINS,
    RewardPair,
    all_held_out_pairs,
    from_synthetic,
    gold_gap_level,
    hold_out_prompts,
    load_real_pairs,
    rating_level,
)
from repro.losses.reward_model import reward_model_loss
from repro.reward_model_config import RewardRunConfig, resolve_reward_model
from repro.schema import ConfigError

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "preference" / "hh_rlhf_harmless_base_test.jsonl"

PAIRS = [
    RewardPair("12+3=", "15", "16", margin=1.0),
    RewardPair("7+80=", "87", "78", margin=2 / 3),
    RewardPair("100+200=", "300", "3000", margin=1 / 3),
    RewardPair("5+5=", "10", "1", margin=0.0),
    RewardPair("41+1=", "42", "24", margin=1.0),
    RewardPair("9+9=", "18", "81", margin=2 / 3),
]


def raw_config(data: dict[str, Any] | None = None, **train: Any) -> dict[str, Any]:
    return {
        "trainer": "reward_model",
        "model": {"name_or_path": "unused"},
        "data": {"pairs": "local.jsonl", **(data or {})},
        "train": {"max_steps": 4, "learning_rate": 1e-2, "per_device_train_batch_size": 6, "save_steps": 0, **train},
    }


def config(data: dict[str, Any] | None = None, **train: Any) -> RewardRunConfig:
    return resolve_reward_model(raw_config(data, **train), "test")


# ----------------------------------------------------------------------------- config


def test_trainer_key_selects_the_reward_config_and_trl_fields_load(tmp_path: Path):
    from repro.config import load_config_file

    path = tmp_path / "run.yaml"
    path.write_text(
        "trainer: reward_model\nmodel: {name_or_path: m}\ndata: {pairs: p.jsonl}\n"
        "train: {max_steps: 3, center_rewards_coefficient: 0.01, bf16: false, report_to: none}\n",
        encoding="utf-8",
    )
    cfg = load_config_file(path)
    assert isinstance(cfg, RewardRunConfig)
    assert cfg.train.center_rewards_coefficient == 0.01
    assert cfg.train.learning_rate == 1e-4 and cfg.train.max_length == 1024  # RewardConfig's defaults


@pytest.mark.parametrize(
    ("data", "train", "message"),
    [
        ({}, {"center_rewards_coefficient": -0.1}, "null switches it off"),
        ({}, {"max_steps": 0}, "train.max_steps: is 0"),
        ({}, {"learning_rate": 0.0}, "must be positive"),
        ({}, {"max_length": 1}, "train.max_length: is 1; it must be at least 2"),
        ({"margin": "llama2_small"}, {}, "set data.rating_field"),
        ({"pairs": "prepared:smoke_pref", "margin": "column"}, {}, "synthetic pairs have no data columns"),
        ({"margin": "llama3"}, {}, "data.margin"),
        ({}, {"centre_rewards_coefficient": 0.01}, "Did you mean 'center_rewards_coefficient'"),
    ],
)
def test_bad_reward_configs_fail_with_the_fix(data: dict, train: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        config(data, **train)


def test_rewards_section_is_rejected():
    raw = raw_config()
    raw["rewards"] = {"accuracy": {"weight": 1.0}}
    with pytest.raises(ConfigError, match="remove the rewards section"):
        resolve_reward_model(raw, "t")


# ----------------------------------------------------------------------------- the loss


def test_loss_by_hand_with_margin_and_centring():
    r_c, r_r = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 2.0, -1.0])
    m = torch.tensor([0.5, 1.0, 3.0])
    out = reward_model_loss(r_c, r_r, m, 0.01)
    log_sig = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
    ranking = -(log_sig(0.5) + log_sig(-3.0) + log_sig(0.0)) / 3  # gaps 1−0.5, −2−1, 3−3
    centering = (1.0 + 4.0 + 1.0) / 3  # (r_c + r_r)² = 1, 4, 1
    assert out.ranking.item() == pytest.approx(ranking, rel=1e-6)
    assert out.centering.item() == pytest.approx(centering, rel=1e-6)
    assert out.loss.item() == pytest.approx(ranking + 0.01 * centering, rel=1e-6)
    plain = reward_model_loss(r_c, r_r)  # no margin, η off: the Bradley–Terry loss
    assert plain.loss.item() == pytest.approx(-(log_sig(1.0) + log_sig(-2.0) + log_sig(3.0)) / 3, rel=1e-6)
    assert reward_model_loss(r_c, r_r, None, 0.0).loss.item() == pytest.approx(plain.loss.item())


def test_centring_gradient_pulls_the_pair_sum_to_zero_and_a_shift_leaves_the_ranking_term():
    r_c = torch.tensor([3.0, 1.0], requires_grad=True)
    r_r = torch.tensor([1.0, 2.0], requires_grad=True)
    reward_model_loss(r_c, r_r, None, 0.5).loss.backward()
    sig = torch.sigmoid(torch.tensor([2.0, -1.0]))
    # ∂/∂r_c = −(1 − σ(gap))/B + η·2(r_c + r_r)/B; ∂/∂r_r = +(1 − σ(gap))/B + η·2(r_c + r_r)/B
    sums = torch.tensor([4.0, 3.0])
    torch.testing.assert_close(r_c.grad, -(1 - sig) / 2 + 0.5 * 2 * sums / 2)
    torch.testing.assert_close(r_r.grad, (1 - sig) / 2 + 0.5 * 2 * sums / 2)
    shifted = reward_model_loss(r_c.detach() + 7.0, r_r.detach() + 7.0, None, 0.5)
    assert shifted.ranking.item() == pytest.approx(reward_model_loss(r_c.detach(), r_r.detach()).ranking.item())
    assert shifted.centering.item() > 100  # only the centring term sees a common offset


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="margin must have shape"):
        reward_model_loss(torch.zeros(3), torch.zeros(3), torch.zeros(2))


# ----------------------------------------------------------------------------- margins and data


def test_llama2_tables_and_ratings():
    assert LLAMA2_MARGINS["llama2_small"] == pytest.approx((0.0, 1 / 3, 2 / 3, 1.0))  # Table 27, Margin Small
    assert LLAMA2_MARGINS["llama2_large"] == (0.0, 1.0, 2.0, 3.0)  # Table 27, Margin Large
    assert rating_level("Significantly Better") == 3 and rating_level("better") == 2
    assert rating_level("slightly-better") == 1 and rating_level("unsure") == 0 and rating_level(2) == 2
    for bad in ("much better", 4, True, None):
        with pytest.raises(ConfigError, match="not a Llama 2 rating"):
            rating_level(bad)
    # gold gaps of the smoke task (digit_match: thirds and quarters) → levels
    assert [gold_gap_level(g) for g in (1.0, 0.75, 2 / 3, 0.5, 1 / 3, 0.25, 0.2)] == [3, 3, 2, 2, 1, 1, 0]


def test_synthetic_pairs_are_rated_by_their_gold_gap_under_each_margin_table():
    pair = PreferencePair("1+1=", "2", "3", id="a", gold_chosen=1.0, gold_rejected=1 / 3)
    assert from_synthetic(pair, "none").margin is None and from_synthetic(pair, "none").level == 2
    assert from_synthetic(pair, "llama2_small").margin == pytest.approx(2 / 3)
    assert from_synthetic(pair, "llama2_large").margin == 2.0
    flipped = PreferencePair("1+1=", "3", "2", id="b", gold_chosen=1 / 3, gold_rejected=1.0)  # a noisy label
    assert from_synthetic(flipped, "llama2_large").margin == 2.0  # rated by |gap|, whatever the label


def test_held_out_pairs_are_every_distinct_pair_labelled_by_the_gold_reward():
    samples = [
        {"id": 0, "prompt": "1+1=", "completions": ["2", "3", "2", "12"], "gold_rewards": [1.0, 0.0, 1.0, 0.5]},
        {"id": 1, "prompt": "2+2=", "completions": ["4", "4", "4", "4"], "gold_rewards": [1.0] * 4},
    ]
    pairs = all_held_out_pairs(samples, "llama2_large")
    # "2" vs "3", "2" vs "12", "3" vs "12" (the second "2" repeats the first's pairs; prompt 1 has no pair)
    assert sorted((p.chosen, p.rejected, p.level, p.margin) for p in pairs) == [
        ("12", "3", 2, 2.0), ("2", "12", 2, 2.0), ("2", "3", 3, 3.0),
    ]  # fmt: skip


def test_real_pairs_read_margin_and_rating_columns_and_hold_out_prompts(tmp_path: Path):
    rows = [
        {"prompt": f"q{i}", "chosen": "a", "rejected": "b", "m": 0.5 * i, "rating": ["better", "unsure"][i % 2]}
        for i in range(10)
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    column = load_real_pairs(str(path), "train", mode="column", margin_field="m", rating_field="rating")
    assert [p.margin for p in column] == [0.5 * i for i in range(10)]
    assert [p.level for p in column] == [2, 0] * 5
    large = load_real_pairs(str(path), "train", mode="llama2_large", margin_field="m", rating_field="rating")
    assert [p.margin for p in large] == [2.0, 0.0] * 5
    with pytest.raises(ConfigError, match="no column 'score'.*data.margin_field"):
        load_real_pairs(str(path), "train", mode="column", margin_field="score", rating_field=None)
    train, held = hold_out_prompts(column, 3, seed=0)
    assert len(held) == 3 and len(train) == 7 and not {p.prompt for p in train} & {p.prompt for p in held}


@pytest.mark.skipif(not HH.is_file(), reason="../shared/data/preference absent")
def test_the_local_hh_file_holds_out_prompts_and_every_pair_has_no_margin():
    pairs = load_real_pairs(str(HH), "train", mode="none", margin_field="margin", rating_field=None)
    train, held = hold_out_prompts(pairs, 50, seed=0)
    assert len(held) == 50 and all(p.margin is None and p.level is None for p in pairs)
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    assert len(train) + len(held) <= len(pairs)


def test_pairs_over_max_length_are_dropped_and_counted(tiny_model_dir: str):
    from repro.trainers.reward_model import encode_pairs, load_reward_model

    _, tok = load_reward_model(tiny_model_dir)
    # "100+200=" + "3000" + EOS = 13 tokens (char tokenizer), the rest ≤ 11
    kept, dropped = encode_pairs(tok, PAIRS, max_length=12)
    assert dropped == 1 and len(kept) == 5
    assert kept[0].chosen == tok("12+3=15")["input_ids"] + [tok.eos_token_id]  # EOS appended as one token
    assert encode_pairs(tok, PAIRS, max_length=None)[1] == 0


# ----------------------------------------------------------------------------- parity with TRL on a real model


def perturbed(model: Any, seed: int = 1) -> Any:
    """A copy with every weight nudged by seeded noise (so rewards are not ~0)."""
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return out


def make_trainer(cfg: RewardRunConfig, model: Any, tok: Any, out: Path, pairs: list[RewardPair] = PAIRS) -> Any:
    from repro.trainers.reward_model import RewardModelTrainer

    return RewardModelTrainer(cfg, model, tok, pairs, out, seed=0)


@pytest.mark.parametrize(("with_margin", "eta"), [(False, None), (True, None), (False, 0.01), (True, 0.5)])
def test_loss_and_gradient_equal_trl_reward_trainer(tiny_model_dir: str, tmp_path: Path, with_margin: bool, eta: Any):
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    from repro.trainers.reward_model import collate_pairs, load_reward_model

    model, tok = load_reward_model(tiny_model_dir, seed=3)
    model = perturbed(model)
    rows = [
        {
            "prompt": p.prompt,
            "chosen": p.chosen,
            "rejected": p.rejected,
            **({"margin": p.margin} if with_margin else {}),
        }
        for p in PAIRS
    ]
    args = trl.RewardConfig(
        output_dir=str(tmp_path / "trl"), bf16=False, use_cpu=True, gradient_checkpointing=False, report_to="none",
        per_device_train_batch_size=len(PAIRS), center_rewards_coefficient=eta, save_strategy="no",
    )  # fmt: skip
    trainer = trl.RewardTrainer(model=copy.deepcopy(model), args=args, train_dataset=Dataset.from_list(rows))
    theirs = trainer.model
    theirs.train()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    assert ("margin" in batch) == with_margin
    trl_loss = trainer.compute_loss(theirs, batch)
    trl_loss.backward()

    pairs = PAIRS if with_margin else [RewardPair(p.prompt, p.chosen, p.rejected) for p in PAIRS]
    ours = make_trainer(config(center_rewards_coefficient=eta, max_length=None), model, tok, tmp_path / "ours", pairs)
    ours_batch = collate_pairs(ours.pairs, tok.pad_token_id)
    assert torch.equal(ours_batch["input_ids"], batch["input_ids"])  # same tokens, EOS, right padding
    model.train()
    loss, stats = ours.micro_batch(list(range(len(PAIRS))))
    loss.backward()
    assert abs(loss.item() - math.log(2)) > 1e-3  # the rewards are not all equal
    torch.testing.assert_close(loss.detach(), trl_loss.detach(), rtol=1e-6, atol=1e-6)
    for (name, mine), other in zip(model.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, other.grad, rtol=1e-5, atol=1e-7, msg=name)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert stats["accuracy"] == pytest.approx(metrics["accuracy"])
    assert stats["reward_gap"] == pytest.approx(metrics["margin"], rel=1e-5, abs=1e-7)
    for key in ("mean_reward", "min_reward", "max_reward"):
        assert stats[key] == pytest.approx(metrics[key], rel=1e-5, abs=1e-7), key


# ----------------------------------------------------------------------------- the loop, evaluation, judge

LETTERS = ["a", "bb", "ccc", "dddd"]  # completions whose gold rewards fall with their letter: easy to learn
GOLD = [1.0, 0.7, 0.4, 0.0]


def prepared_letters(root: Path, n_train: int = 40, n_eval: int = 10) -> None:
    """results/base/letters/: a prepared sample file as repro/data/preference_synthetic.py writes it."""
    base = root / "results" / "base" / "letters"
    base.mkdir(parents=True)
    for split, offset, n in (("train", 0, n_train), ("eval", 100, n_eval)):
        rows = [
            {"id": offset + i, "prompt": f"{offset + i}+1=", "answer": "", "completions": LETTERS, "gold_rewards": GOLD}
            for i in range(n)
        ]
        (base / f"samples_{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (base / "prepare.json").write_text("{}", encoding="utf-8")


def letters_config(model_dir: str, **train: Any) -> RewardRunConfig:
    raw = raw_config({"pairs": "prepared:letters", "preferences": "deterministic", "margin": "llama2_small"}, **train)
    raw["model"]["name_or_path"] = model_dir
    raw["eval"] = {"n_prompts": 10, "n_monitor_pairs": 12, "batch_size": 16}
    raw["train"].update(per_device_train_batch_size=8, max_length=32, eval_every=5)
    return resolve_reward_model(raw, "letters")


def test_train_and_eval_round_trip_learns_the_pairs_and_ranks_levels(
    tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from repro.runs_reward_model import eval_reward_model_run, reward_pairs, train_reward_model_run

    monkeypatch.chdir(tmp_path)
    prepared_letters(tmp_path)
    cfg = letters_config(tiny_model_dir, max_steps=30, learning_rate=1e-2)
    train, held = reward_pairs(cfg)
    assert len(train) == 40 and len(held) == 60  # one pair per training prompt; all 6 pairs of each eval prompt
    # gaps 0.3, 0.6, 1.0, 0.3, 0.7, 0.4 → slightly better ×3, better ×2, significantly better ×1 per prompt
    assert sorted(p.level for p in held[:6]) == [1, 1, 1, 2, 2, 3]
    out = tmp_path / "run"
    summary = train_reward_model_run(cfg, "llama2_margin", "smoke", "margin_small", 0, out, tiny_model_dir)
    assert summary["steps"] == 30 and summary["n_pairs"] == 40 and summary["n_dropped_long"] == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert (
        [r["step"] for r in rows] == list(range(1, 31))
        and "heldout_accuracy" in rows[4]
        and "heldout_accuracy" not in rows[3]
    )
    result = eval_reward_model_run(out, cfg, out / "eval.json")
    assert json.loads((out / "eval.json").read_text())["accuracy"] == result["accuracy"]
    assert result["trainer"] == "reward_model" and result["n_pairs"] == 60
    assert (result["n_slightly_better"], result["n_better"], result["n_significantly_better"]) == (30, 20, 10)
    assert result["accuracy"] == 1.0
    assert abs(result["base"]["reward_gap"]) < 0.1 * result["reward_gap"]  # the untrained head barely separates
    assert result["gap_significantly_better"] > result["gap_better"] > result["gap_slightly_better"] > 0
    assert result["gap_monotone"] == 1.0
    assert result["gap_significantly_better"] > 1.0  # the margin m = 1 of the top level is exceeded
    assert result["abs_mean_reward"] == pytest.approx(abs(result["mean_reward"]))
    assert result["min_reward"] <= result["mean_reward"] <= result["max_reward"]
    assert result["headline"][0] == "accuracy"


def test_resume_after_a_kill_reproduces_the_uninterrupted_run(tiny_model_dir: str, tmp_path: Path):
    from repro.trainers.reward_model import load_reward_model

    cfg = config(max_steps=4, per_device_train_batch_size=4, save_steps=2, center_rewards_coefficient=0.1)
    whole, tok = load_reward_model(tiny_model_dir, seed=0)
    rows_whole = make_trainer(cfg, whole, tok, tmp_path / "whole").train(progress=False)

    out = tmp_path / "cut"
    killed = make_trainer(cfg, load_reward_model(tiny_model_dir, seed=0)[0], tok, out)
    step = killed._optimizer_step

    def die_after_two() -> dict[str, Any]:
        if killed.step == 2:  # the checkpoint of step 2 is written; the process dies before step 3
            raise KeyboardInterrupt
        return step()

    killed._optimizer_step = die_after_two
    with pytest.raises(KeyboardInterrupt):
        killed.train(progress=False)
    resumed = load_reward_model(tiny_model_dir, seed=0)[0]  # a fresh process: the initial weights again
    rows = make_trainer(cfg, resumed, tok, out).train(progress=False)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in rows_whole], rel=1e-5)
    for pa, pb in zip(whole.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-7)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]  # no duplicated rows after the resume


def test_the_untrained_head_is_drawn_from_the_seed(tiny_model_dir: str):
    from repro.trainers.reward_model import load_reward_model

    a, b, c = (load_reward_model(tiny_model_dir, seed=s)[0] for s in (5, 5, 6))
    assert torch.equal(a.score.weight, b.score.weight) and not torch.equal(a.score.weight, c.score.weight)
    assert a.config.num_labels == 1 and a.config.pad_token_id == 0


def test_a_trained_reward_model_directory_is_a_judge_with_the_trainers_rewards(tiny_model_dir: str, tmp_path: Path):
    from repro.eval.judge import make_judge, sigmoid
    from repro.runs import _save_model
    from repro.trainers.reward_model import encode_pairs, load_reward_model, score_pairs

    model, tok = load_reward_model(tiny_model_dir, seed=2)
    model = perturbed(model)
    _save_model(model, tok, tmp_path / "rm")
    judge = make_judge({"kind": "reward_model", "path": str(tmp_path / "rm"), "batch_size": 4, "append_eos": True})
    prompts, chosen, rejected = [p.prompt for p in PAIRS], [p.chosen for p in PAIRS], [p.rejected for p in PAIRS]
    r_c, r_r = score_pairs(model, encode_pairs(tok, PAIRS, None)[0], tok.pad_token_id)
    assert judge.rewards(prompts, chosen) == pytest.approx(r_c.tolist(), rel=1e-5, abs=1e-6)
    assert judge.rewards(prompts, rejected) == pytest.approx(r_r.tolist(), rel=1e-5, abs=1e-6)
    expected = [sigmoid(a - b) for a, b in zip(r_c.tolist(), r_r.tolist(), strict=True)]
    assert judge.win_probabilities(prompts, chosen, rejected) == pytest.approx(expected, rel=1e-5)
    plain = make_judge({"kind": "reward_model", "path": str(tmp_path / "rm")})  # no EOS: another position scored
    assert plain.rewards(prompts, chosen) != pytest.approx(r_c.tolist(), rel=1e-3)
