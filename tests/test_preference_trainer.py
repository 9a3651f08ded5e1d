"""The offline preference loop, its config and synthetic data, and the alignment evaluation.

- config: `trainer: preference`, TRL's removed fields, exo_pair's default ε, fix-it errors;
- synthetic pairs: the gold reward by hand, deterministic / Bradley–Terry / flipped labels (frequencies),
  Llama 2 rating margins, unpaired thumbs;
- summed completion log-probs and the DPO loss equal TRL 1.16's DPOTrainer on a real tiny model (padding,
  EOS, different prompt and completion lengths), gradient included;
- the loop: precomputed reference = frozen reference model, GA 2 × 4 = one batch of 8, resume from a checkpoint
  reproduces the uninterrupted run, unpaired BCO's step by hand;
- evaluation: a policy evaluated against itself has KL 0 and win rate ½; quantile dominance and win rate by hand.
"""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from repro.data.preference import PreferencePair, UnpairedExample
from repro.data.preference_synthetic import digit_match, make_pairs, rating_margin, unpaired_from_samples
from repro.eval.alignment import EvalPrompt, evaluate_alignment, quantile_dominance, win_rate
from repro.losses.preference import PREFERENCE_LOSSES, PreferenceParams, RunningMoments, bco_unpaired_loss
from repro.preference_config import PreferenceRunConfig, resolve_preference
from repro.schema import ConfigError

PAIRS = [
    PreferencePair("12+3=", "15", "16"),
    PreferencePair("7+80=", "87", "78"),
    PreferencePair("100+200=", "300", "3000"),
    PreferencePair("5+5=", "10", "1"),
    PreferencePair("41+1=", "42", "24"),
    PreferencePair("9+9=", "18", "81"),
    PreferencePair("2+2=", "4", "5"),
    PreferencePair("30+3=", "33", "333"),
]


def raw_config(**train: Any) -> dict[str, Any]:
    return {
        "trainer": "preference",
        "model": {"name_or_path": "unused"},
        "data": {"pairs": "local.jsonl"},
        "train": {"max_steps": 4, "learning_rate": 1e-2, "per_device_train_batch_size": 8, "save_steps": 0, **train},
    }


def config(**train: Any) -> PreferenceRunConfig:
    return resolve_preference(raw_config(**train), "test")


# ----------------------------------------------------------------------------- config


def test_trainer_key_selects_the_preference_config_and_trl_names_map(tmp_path: Path):
    from repro.config import load_config_file

    path = tmp_path / "run.yaml"
    path.write_text(
        "trainer: preference\nmodel: {name_or_path: m}\ndata: {pairs: p.jsonl}\n"
        "train: {max_steps: 3, learning_rate: 1.0e-6, loss_type: aot_pair, max_prompt_length: 128, bf16: false}\n",
        encoding="utf-8",
    )
    cfg = load_config_file(path)
    assert isinstance(cfg, PreferenceRunConfig)
    assert cfg.data.max_prompt_length == 128  # TRL 1.16 removed it from DPOConfig; it lands in data
    assert cfg.train.loss_type == "aot_pair"  # the pre-1.16 name of aot_unpaired is accepted
    assert cfg.train.label_smoothing == 0.0


# The paper index's DPO-family settings in TRL's vocabulary, exactly as written (../shared/PAPERS.md): four of them
# fail in TRL 1.16 (removed max_prompt_length / max_completion_length, renamed aot_pair, exo_pair without ε).
SEED_CONFIGS = {
    "robust": {"loss_type": "robust", "per_device_train_batch_size": 16, "learning_rate": 1e-3, "beta": 0.01,
               "label_smoothing": 0.1, "max_prompt_length": 128, "max_length": 512},
    "bco_pair": {"loss_type": "bco_pair", "per_device_train_batch_size": 128, "learning_rate": 5e-7, "beta": 0.01,
                 "max_prompt_length": 1536, "max_completion_length": 512},
    "apo_zero": {"loss_type": "apo_zero", "per_device_train_batch_size": 64, "learning_rate": 2e-7, "beta": 0.1,
                 "max_prompt_length": 512, "max_completion_length": 512},
    "aot_pair": {"loss_type": "aot_pair"},
    "exo_pair": {"loss_type": "exo_pair", "per_device_train_batch_size": 64, "learning_rate": 1e-6, "beta": 0.1},
    "alphapo": {"loss_type": "alphapo", "alpha": 0.25, "beta": 2.5, "simpo_gamma": 0.1, "learning_rate": 7e-7},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SEED_CONFIGS))
def test_seed_configs_run_as_written(name: str, tmp_path: Path):
    import yaml

    from repro.config import load_config_file

    raw = raw_config()
    raw["train"] = {"max_steps": 1, "learning_rate": 1e-6, **SEED_CONFIGS[name]}
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    cfg = load_config_file(tmp_path / "seed.yaml")  # through read_layer: TRL's removed names are mapped there
    assert cfg.train.loss_type == SEED_CONFIGS[name]["loss_type"]
    if "max_prompt_length" in SEED_CONFIGS[name]:
        assert cfg.data.max_prompt_length == SEED_CONFIGS[name]["max_prompt_length"]
    if "max_completion_length" in SEED_CONFIGS[name]:
        assert cfg.train.max_completion_length == SEED_CONFIGS[name]["max_completion_length"]


def test_exo_pair_defaults_label_smoothing_and_writes_it():
    from repro.config import dump
    from repro.preference_config import EXO_DEFAULT_LABEL_SMOOTHING

    cfg = config(loss_type="exo_pair")
    assert cfg.train.label_smoothing == EXO_DEFAULT_LABEL_SMOOTHING == 1e-3
    assert "label_smoothing: 0.001" in dump(cfg)
    with pytest.raises(ConfigError, match="exo_pair needs 0 < ε < 1"):
        config(loss_type="exo_pair", label_smoothing=0.0)


@pytest.mark.parametrize(
    ("train", "data", "message"),
    [
        ({"loss_type": "sigmoidd"}, {}, "Did you mean 'sigmoid'"),
        ({"loss_type": "bco_unpaired"}, {}, "set data.format: unpaired"),
        ({"loss_type": "sigmoid"}, {"format": "unpaired"}, "set data.format: paired"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, {}, "robust DPO's flip rate"),
        ({"beta": 0.0}, {}, "β scales the implicit reward"),
        ({}, {"label_flip": 0.6}, "must be in \\[0, 0.5\\)"),
        ({}, {"pairs": "prepared:smoke_pref"}, "eval.gold_reward"),
    ],
)
def test_bad_preference_configs_fail_with_the_fix(train: dict, data: dict, message: str):
    raw = raw_config(**train)
    raw["data"].update(data)
    with pytest.raises(ConfigError, match=message):
        resolve_preference(raw, "test")


@pytest.mark.parametrize(
    ("ev", "message"),
    [
        ({"judged_benchmarks": {"hh_harmless": {}}}, "judged_benchmarks need a judge"),
        ({"judged_benchmarks": {"hh_harmles": {}}, "judge": {"kind": "llm_judge"}}, "Did you mean 'hh_harmless'"),
        (
            {"judged_benchmarks": {"hh_harmless": {"seed": 1}}, "judge": {"kind": "llm_judge"}},
            "only limit and generation",
        ),
        ({"judge": {"kind": "gpt4"}}, "unknown judge 'gpt4'"),
    ],
)
def test_judged_benchmarks_and_judges_are_checked_at_load(ev: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        resolve_preference({**raw_config(), "eval": ev}, "test")


def test_rewards_section_is_rejected():
    with pytest.raises(ConfigError, match="remove the rewards section"):
        resolve_preference({**raw_config(), "rewards": {"correctness": {"weight": 1.0}}}, "test")


# ----------------------------------------------------------------------------- synthetic pairs


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [("579", "579", 1.0), ("578", "579", 2 / 3), ("1579", "579", 3 / 4), ("79", "579", 2 / 3), ("", "5", 0.0),
     ("5a", "5", 0.0), ("975", "579", 1 / 3)],
)  # fmt: skip
def test_digit_match_by_hand(completion: str, answer: str, expected: float):
    assert digit_match(completion, answer) == pytest.approx(expected)


def rows(n: int, rewards: list[float]) -> list[dict[str, Any]]:
    return [
        {"id": i, "prompt": f"p{i}", "answer": "", "completions": [f"c{j}" for j in range(len(rewards))],
         "gold_rewards": list(rewards)}
        for i in range(n)
    ]  # fmt: skip


def test_deterministic_pairs_follow_the_gold_reward_and_drop_ties():
    samples = rows(50, [0.2, 0.9, 0.5, 0.5]) + rows(5, [0.7, 0.7])
    pairs = make_pairs(samples, preferences="deterministic", seed=3)
    assert len(pairs) == 50  # the all-tied prompts give no pair
    assert all(p.gold_chosen > p.gold_rejected for p in pairs)
    assert {(p.gold_chosen, p.gold_rejected) for p in pairs} <= {(0.9, 0.2), (0.5, 0.2), (0.9, 0.5)}


def test_bradley_terry_label_frequency_matches_sigmoid():
    tau, gap = 0.1, 0.1
    pairs = make_pairs(rows(4000, [0.5, 0.5 + gap]), preferences="bradley_terry", bt_temperature=tau, seed=0)
    share = sum(p.gold_chosen > p.gold_rejected for p in pairs) / len(pairs)
    expected = 1 / (1 + math.exp(-gap / tau))  # σ(1) ≈ 0.731
    assert abs(share - expected) < 3 * math.sqrt(expected * (1 - expected) / len(pairs))


def test_label_flip_swaps_the_stated_share_and_margins_are_rated():
    pairs = make_pairs(rows(4000, [0.0, 1.0]), preferences="deterministic", label_flip=0.2, seed=1)
    flipped = sum(p.gold_chosen < p.gold_rejected for p in pairs) / len(pairs)
    assert abs(flipped - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(pairs))  # 4σ: a seeded draw, not a tuned bound
    assert all(p.margin == 1.0 for p in pairs)  # a gap of 1: "significantly better"
    assert [rating_margin(g) for g in (0.1, 0.25, 0.5, 0.75)] == [0.0, 1 / 3, 2 / 3, 1.0]
    with pytest.raises(ConfigError, match="label_flip"):
        make_pairs(rows(2, [0.0, 1.0]), label_flip=0.5)


def test_unpaired_thumbs_are_absolute_judgements():
    samples = [{"id": 0, "prompt": "p", "answer": "", "completions": ["a", "a", "b", "c"],
                "gold_rewards": [1.0, 1.0, 0.4, 1.0]}]  # fmt: skip
    out = unpaired_from_samples(samples, threshold=1.0, per_prompt=3, seed=0)
    assert sorted((e.completion, e.label) for e in out) == [("a", True), ("b", False), ("c", True)]


# ----------------------------------------------------------------------------- parity with TRL on a real model


def load_tiny(model_dir: str) -> tuple[Any, Any]:
    from repro.models.loading import load_policy

    return load_policy(model_dir)


def perturbed_copy(model: Any, seed: int = 1) -> Any:
    """The policy a few updates away from the reference: every weight nudged by seeded noise."""
    policy = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return policy


def make_trainer(cfg: PreferenceRunConfig, model: Any, tok: Any, tmp_path: Path, **kw: Any) -> Any:
    from repro.trainers.preference import PreferenceTrainer

    return PreferenceTrainer(cfg, model, tok, kw.pop("examples", PAIRS), tmp_path, seed=0, **kw)


MPO = (["sigmoid", "bco_pair", "sft"], [0.8, 0.2, 1.0])  # TRL's MPO combination, with weights


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "apo_down", MPO])
def test_loss_and_gradient_equal_trl_dpo_trainer_on_a_real_model(tiny_model_dir: str, tmp_path: Path, loss_type: Any):
    trl = pytest.importorskip("trl")
    loss_type, loss_weights = loss_type if isinstance(loss_type, tuple) else (loss_type, None)
    from datasets import Dataset

    rows_ = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in PAIRS]
    args = trl.DPOConfig(
        output_dir=str(tmp_path / "trl"), bf16=False, use_cpu=True, gradient_checkpointing=False, report_to="none",
        per_device_train_batch_size=len(PAIRS), loss_type=loss_type, loss_weights=loss_weights, beta=0.1,
        save_strategy="no",
    )  # fmt: skip
    trainer = trl.DPOTrainer(model=tiny_model_dir, args=args, train_dataset=Dataset.from_list(rows_))
    reference, tok = load_tiny(tiny_model_dir)
    policy = perturbed_copy(reference)
    trl_policy = trainer.model
    trl_policy.load_state_dict(policy.state_dict())
    trl_policy.train()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    trl_loss = trainer._compute_loss(trl_policy, batch, False)
    trl_loss.backward()

    cfg = config(loss_type=loss_type, loss_weights=loss_weights, beta=0.1, precompute_ref_log_probs=False)
    ours = make_trainer(cfg, policy, tok, tmp_path / "ours", ref_model=reference.eval())
    loss, stats = ours._micro_batch(list(range(len(PAIRS))))
    loss.backward()
    assert loss.item() != pytest.approx(math.log(2))  # the policy differs from the reference
    torch.testing.assert_close(loss.detach(), trl_loss.detach(), rtol=1e-4, atol=1e-6)
    for (name, mine), theirs in zip(policy.named_parameters(), trl_policy.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-3, atol=1e-6, msg=name)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert stats["rewards_chosen"] == pytest.approx(metrics["rewards/chosen"], rel=1e-4, abs=1e-6)
    assert stats["accuracy"] == pytest.approx(metrics["rewards/accuracies"])
    assert stats["logps_chosen"] == pytest.approx(metrics["logps/chosen"], rel=1e-4)


# ----------------------------------------------------------------------------- the loop


def trajectory(model_dir: str, out: Path, *, precompute: bool, bs: int = 8, ga: int = 1, steps: int = 3) -> Any:
    reference, tok = load_tiny(model_dir)
    policy = perturbed_copy(reference)
    cfg = config(precompute_ref_log_probs=precompute, per_device_train_batch_size=bs,
                 gradient_accumulation_steps=ga, max_steps=steps)  # fmt: skip
    trainer = make_trainer(cfg, policy, tok, out, ref_model=None if precompute else reference.eval())
    if precompute:  # TRL's precompute scores the reference: here the unperturbed model stands in via ref_model
        trainer.ref_model = reference.eval()
    rows_ = trainer.train(progress=False)
    return policy, rows_


def test_precomputed_reference_equals_a_frozen_reference_model(tiny_model_dir: str, tmp_path: Path):
    a, rows_a = trajectory(tiny_model_dir, tmp_path / "a", precompute=True)
    b, rows_b = trajectory(tiny_model_dir, tmp_path / "b", precompute=False)
    assert (tmp_path / "a" / "ref_logps.json").is_file()
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5)
        assert ra["logratio_chosen"] == pytest.approx(rb["logratio_chosen"], rel=1e-4, abs=1e-6)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)
    assert rows_a[-1]["loss"] < rows_a[0]["loss"]  # lr 1e-2 on 8 repeated pairs: the loss falls


def test_a_short_run_scores_only_the_examples_it_draws(tiny_model_dir: str, tmp_path: Path):
    from repro.trainers.sequence_logps import sequence_logps_batched

    reference, tok = load_tiny(tiny_model_dir)
    cfg = config(precompute_ref_log_probs=True, per_device_train_batch_size=3, max_steps=1)
    short = make_trainer(cfg, reference, tok, tmp_path / "short")
    ref = short._precompute_reference()  # [8, 2]
    drawn = sorted(set(short._visited_indices()))
    assert drawn == sorted(set(short._next_indices(3))) and len(drawn) == 3  # the replay is the run's own draw
    stored = json.loads((tmp_path / "short" / "ref_logps.json").read_text(encoding="utf-8"))
    assert stored["indices"] == drawn and stored["n_examples"] == len(PAIRS)
    full = sequence_logps_batched(reference, [r for rows in short.rows for r in rows], tok.pad_token_id).view(-1, 2)
    torch.testing.assert_close(ref[drawn], full[drawn], rtol=1e-5, atol=1e-5)
    assert torch.isnan(ref[[i for i in range(len(PAIRS)) if i not in drawn]]).all()
    again = make_trainer(cfg, reference, tok, tmp_path / "short")._precompute_reference()  # from the cache
    torch.testing.assert_close(again, ref, equal_nan=True)
    with pytest.raises(RuntimeError, match="lacks reference log-probs"):
        short.ref_logps = ref
        short._reference([i for i in range(len(PAIRS)) if i not in drawn][:1], [])
    whole = make_trainer(config(precompute_ref_log_probs=True, per_device_train_batch_size=8, max_steps=1),
                         reference, tok, tmp_path / "whole")  # fmt: skip
    torch.testing.assert_close(whole._precompute_reference(), full)  # every example drawn: the full pass
    assert "indices" not in json.loads((tmp_path / "whole" / "ref_logps.json").read_text(encoding="utf-8"))


def test_two_accumulated_micro_batches_equal_one_batch(tiny_model_dir: str, tmp_path: Path):
    a, _ = trajectory(tiny_model_dir, tmp_path / "a", precompute=True, bs=8, ga=1, steps=1)
    b, _ = trajectory(tiny_model_dir, tmp_path / "b", precompute=True, bs=4, ga=2, steps=1)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)


def test_resume_from_checkpoint_reproduces_the_uninterrupted_run(tiny_model_dir: str, tmp_path: Path):
    reference, tok = load_tiny(tiny_model_dir)
    whole = perturbed_copy(reference)
    cfg = config(max_steps=4, per_device_train_batch_size=3, save_steps=2)
    make_trainer(cfg, whole, tok, tmp_path / "whole").train(progress=False)

    out = tmp_path / "cut"
    killed = make_trainer(cfg, perturbed_copy(reference), tok, out)
    step = killed._optimizer_step

    def die_after_two() -> dict[str, Any]:
        if killed.step == 2:  # the checkpoint of step 2 is written; the process dies before step 3
            raise KeyboardInterrupt
        return step()

    killed._optimizer_step = die_after_two
    with pytest.raises(KeyboardInterrupt):
        killed.train(progress=False)
    resumed = perturbed_copy(reference)  # a fresh process: initial weights, state from the checkpoint
    rows_ = make_trainer(cfg, resumed, tok, out).train(progress=False)
    assert [r["step"] for r in rows_] == [1, 2, 3, 4]
    for pa, pb in zip(whole.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-7)


def test_unpaired_bco_step_by_hand(tiny_model_dir: str, tmp_path: Path):
    from repro.trainers.sequence_logps import sequence_logps

    reference, tok = load_tiny(tiny_model_dir)
    policy = perturbed_copy(reference)
    examples = [
        UnpairedExample(p.prompt, c, lab) for p in PAIRS[:4] for c, lab in ((p.chosen, True), (p.rejected, False))
    ]
    raw = raw_config(loss_type="bco_unpaired", beta=0.5)
    raw["data"]["format"] = "unpaired"
    trainer = make_trainer(resolve_preference(raw, "t"), policy, tok, tmp_path, examples=examples, ref_model=reference)
    trainer.ref_logps = None  # score the reference model directly
    trainer.uses_reference = True
    idx = list(range(len(examples)))
    loss, stats = trainer._micro_batch(idx)
    rows_ = [trainer.rows[i][0] for i in idx]
    with torch.no_grad():
        logps, _ = sequence_logps(policy, rows_, tok.pad_token_id)
        ref, _ = sequence_logps(reference, rows_, tok.pad_token_id)
    labels = torch.tensor([e.label for e in examples])
    rewards = 0.5 * (logps - ref)
    delta = float(rewards.mean())  # one update from the 1e-24 prior: the batch mean
    expected, _ = bco_unpaired_loss(logps, ref, labels, 0.5, delta)
    assert stats["delta"] == pytest.approx(delta, rel=1e-5)
    assert loss.item() == pytest.approx(float(expected.mean()), rel=1e-5)
    assert RunningMoments().update(rewards)[0] == pytest.approx(delta, rel=1e-6)


# ----------------------------------------------------------------------------- evaluation


def test_win_rate_and_quantile_dominance_by_hand():
    assert win_rate([1.0, 0.5, 0.2, 0.7], [0.5, 0.5, 0.9, 0.1]) == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    c, r = torch.tensor([3.0, -1.0, 2.0, 0.0]), torch.tensor([1.0, 2.5, -2.0, -0.5])
    # sorted: c = [-1, 0, 2, 3], r = [-2, -0.5, 1, 2.5] -> every level c > r
    assert quantile_dominance(c, r) == 1.0
    assert quantile_dominance(r, c) == 0.0
    assert quantile_dominance(torch.tensor([0.0, 5.0]), torch.tensor([1.0, 2.0])) == 0.5


def test_a_policy_against_itself_has_zero_kl_and_half_win_rate(tiny_model_dir: str):
    model, tok = load_tiny(tiny_model_dir)
    prompts = [EvalPrompt(p.prompt, p.chosen, str(i)) for i, p in enumerate(PAIRS)]
    result = evaluate_alignment(
        model, model, tok, prompts, PAIRS, loss=PREFERENCE_LOSSES.get("sigmoid"), params=PreferenceParams(),
        limits={}, k=3, max_new_tokens=4, temperature=1.0, top_p=1.0, seed=5, gold=digit_match,
    )  # fmt: skip
    assert result["kl"] == 0.0
    assert result["win_rate"] == 0.5  # identical samples under the same seed: every comparison a tie
    assert result["gold_reward"] == result["base"]["gold_reward"]
    assert result["logratio_chosen"] == 0.0 and result["preference_accuracy"] == 0.0
    assert len(result["items"]) == len(PAIRS) and len(result["items"][0]["samples"]) == 3
    expected = sum(digit_match(s, it["answer"]) for it in result["items"] for s in it["samples"]) / (3 * len(PAIRS))
    assert result["gold_reward"] == pytest.approx(expected)


def test_sampled_kl_is_positive_and_matches_the_logprob_difference(tiny_model_dir: str):
    from repro.eval.alignment import sample_scores

    reference, tok = load_tiny(tiny_model_dir)
    policy = perturbed_copy(reference)
    prompts = [EvalPrompt(p.prompt, p.chosen) for p in PAIRS]
    s = sample_scores(policy, reference, tok, prompts, k=8, max_new_tokens=4, temperature=1.0, top_p=1.0,
                      seed=0, gold=None)  # fmt: skip
    assert sum(s["kl"]) / len(s["kl"]) > 0.0  # E_π[log π − log π_ref] = KL ≥ 0; far from 0 after the nudge
    random.seed(0)
    assert len(s["texts"]) == 8 * len(PAIRS) == len(s["logps"])


# ----------------------------------------------------------------------------- real data, end to end

HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "preference"


def shorter_response(prompt: str, response: str) -> float:
    """A judge score the test can predict: shorter replies win."""
    return -float(len(response))


@pytest.mark.skipif(not (HH / "hh_rlhf_harmless_base_test.jsonl").is_file(), reason="../shared/data/preference absent")
def test_a_run_on_the_local_hh_file_trains_holds_out_prompts_and_scores_a_judged_benchmark(
    tiny_model_dir: str, tmp_path: Path
):
    from repro.runs_preference import eval_preference_run, real_pairs, train_preference_run

    raw = raw_config(max_steps=2, per_device_train_batch_size=4, max_completion_length=24)
    raw["model"]["name_or_path"] = tiny_model_dir
    raw["data"].update(pairs=str(HH / "hh_rlhf_harmless_base_test.jsonl"), split="train", eval_split="train",
                       limit=32, max_prompt_length=48)  # fmt: skip
    raw["eval"] = {
        "n_prompts": 6, "samples_per_prompt": 1, "max_new_tokens": 4,
        "judge": {"kind": "callable", "fn": "test_preference_trainer:shorter_response"},
        "judged_benchmarks": {"hh_harmless": {"limit": 3, "generation": {"max_new_tokens": 4}}},
        "data_dir": str(HH),
    }  # fmt: skip
    cfg = resolve_preference(raw, "hh")
    train, held = real_pairs(cfg)
    assert len(train) == 32 and len(held) == 6
    assert not {p.prompt for p in train} & {p.prompt for p in held}  # the single file is split by prompt
    out = tmp_path / "run"
    summary = train_preference_run(cfg, "dpo", "smoke", "dpo", 0, out, tiny_model_dir)
    assert summary["steps"] == 2 and summary["n_examples"] == 32
    result = eval_preference_run(out, cfg, out / "eval.json")
    assert "gold_reward" not in result and result["n_pairs"] == 6  # real data: no gold reward, held-out pairs
    judged = result["judged"]["hh_harmless"]
    assert judged["n"] == 3
    expected = [1.0 if len(it["response"]) < len(it["baseline"]) else 0.5 if len(it["response"]) == len(it["baseline"])
                else 0.0 for it in judged["items"]]  # fmt: skip
    assert judged["win_rate"] == pytest.approx(sum(expected) / 3)
    probs = [p for p in [result["judge_win_rate"]] if p is not None]
    assert 0.0 <= probs[0] <= 1.0


def test_label_flip_also_applies_to_real_pairs_and_never_to_held_out(tmp_path: Path):
    import json

    from repro.runs_preference import real_pairs

    path = tmp_path / "pairs.jsonl"
    rows_ = [{"prompt": f"q{i}=", "chosen": "good", "rejected": "bad"} for i in range(400)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows_), encoding="utf-8")
    raw = raw_config()
    raw["data"].update(pairs=str(path), eval_split="train", label_flip=0.25)
    raw["eval"] = {"n_prompts": 100}
    train, held = real_pairs(resolve_preference(raw, "flip"))
    flipped = sum(p.chosen == "bad" for p in train) / len(train)
    assert len(train) == 300 and abs(flipped - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 300)
    assert all(p.chosen == "good" for p in held)
    raw["data"].update(format="unpaired")
    raw["train"]["loss_type"] = "bco_unpaired"
    with pytest.raises(ConfigError, match="unpaired rows have no pair to flip"):
        resolve_preference(raw, "flip")


def test_rows_are_encoded_in_one_batch_as_one_by_one(tiny_model_dir: str) -> None:
    """The trainer's batched encoding gives each row what encoding it alone gives, under every length limit."""
    from transformers import AutoTokenizer

    from repro.trainers.sequence_logps import EncodedRow, encode_row, encode_rows

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    # the last two share their prompts with the first two, as a pair's chosen and rejected rows do
    pairs = [("12+3=", "15"), ("7*8=", "56 is it"), ("", "1"), ("100-1=", ""), ("12+3=", "16"), ("7*8=", "5")]
    limits = [(None, None, None), (3, None, None), (None, 2, None), (None, None, 7), (4, 3, 6)]
    for limit in limits:
        one_by_one = [
            encode_row(tok, p, c, **dict(zip(("max_prompt_length", "max_completion_length", "max_length"), limit)))
            for p, c in pairs
        ]
        assert encode_rows(tok, pairs, *limit) == one_by_one
    row = encode_rows(tok, pairs[:1])[0]
    assert row == EncodedRow(
        tok("12+3=", add_special_tokens=False)["input_ids"],
        tok("15", add_special_tokens=False)["input_ids"] + [tok.eos_token_id],
    )
    assert encode_rows(tok, pairs, None, None, 7)[1].completion == encode_rows(tok, pairs)[1].completion[: 7 - 4]
    with pytest.raises(ValueError, match="raise max_length"):
        encode_rows(tok, pairs, None, None, 3)
