"""Distillation (`trainer: distillation`): the generalised JSD, its config, the loop, and the evaluation.

- the divergence by hand on a two-token vocabulary (forward / reverse KL, the β = ½ mixture), its masked
  normalisation, the temperature, TRL's discontinuities at β → 0 and β → 1, and the SFT baseline's NLL;
- parity with TRL 1.16's GKDTrainer.generalized_jsd_loss and GOLDTrainer.generalized_jsd_loss (value and gradient);
- config: GKD / GOLD names, GOLD's loss temperature, the fix-it errors;
- the loop on real tiny models: the λ draw (frequency, extremes, routing to student / teacher / dataset), GA 2 × 4
  equals one batch of 8, resume after a kill, the monitor leaves training unchanged, and a train + eval round
  trip through the verbs (reverse KL to the teacher falls; eval.json's teacher and base numbers are the real ones).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from repro.distillation_config import DistillationRunConfig, resolve_distillation
from repro.losses.distillation import DISTILLATION_LOSSES, DistillationParams, generalized_jsd, token_divergence
from repro.schema import ConfigError


def raw_config(**train: Any) -> dict[str, Any]:
    return {
        "trainer": "distillation",
        "model": {"name_or_path": "student"},
        "data": {"prompts": "synthetic:addition"},
        "train": {"max_steps": 4, "learning_rate": 1e-2, "teacher_model_name_or_path": "teacher", **train},
    }


def config(**train: Any) -> DistillationRunConfig:
    return resolve_distillation(raw_config(**train), "test")


# ----------------------------------------------------------------------------- the divergence by hand

# Two positions over a two-token vocabulary. Position 0: P_s = (½, ½), P_t = (¾, ¼). Position 1 is masked out.
S_LOGITS = torch.tensor([[[0.0, 0.0], [5.0, -5.0]]])  # [1, 2, 2]
T_LOGITS = torch.tensor([[[math.log(3.0), 0.0], [-5.0, 5.0]]])  # [1, 2, 2]
MASK = torch.tensor([[1, 0]])
FORWARD = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(P_t ‖ P_s)
REVERSE = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # KL(P_s ‖ P_t)
M = (0.625, 0.375)  # ½·P_t + ½·P_s
JSD_HALF = 0.5 * (0.75 * math.log(0.75 / M[0]) + 0.25 * math.log(0.25 / M[1])) + 0.5 * (
    0.5 * math.log(0.5 / M[0]) + 0.5 * math.log(0.5 / M[1])
)


@pytest.mark.parametrize(("beta", "expected"), [(0.0, FORWARD), (1.0, REVERSE), (0.5, JSD_HALF)])
def test_generalized_jsd_by_hand(beta: float, expected: float):
    assert float(generalized_jsd(S_LOGITS, T_LOGITS, MASK, beta)) == pytest.approx(expected, abs=1e-7)
    # summed over valid positions, divided by num_items when given (the step's token count under GA)
    assert float(generalized_jsd(S_LOGITS, T_LOGITS, MASK, beta, num_items=4)) == pytest.approx(expected / 4, abs=1e-7)
    both = generalized_jsd(S_LOGITS, T_LOGITS, torch.ones(1, 2), beta)  # position 1 now counts: mean of the two
    assert float(both) == pytest.approx((expected + float(token_divergence(S_LOGITS, T_LOGITS, beta)[0, 1])) / 2)


def test_divergence_is_zero_for_equal_distributions_and_an_empty_mask_is_zero_not_nan():
    z = torch.randn(2, 3, 7)
    for beta in (0.0, 0.3, 1.0):
        assert float(generalized_jsd(z, z.clone(), torch.ones(2, 3), beta)) == pytest.approx(0.0, abs=1e-6)
    assert float(generalized_jsd(S_LOGITS, T_LOGITS, torch.zeros(1, 2), 1.0)) == 0.0


def test_temperature_divides_both_logits():
    s, t = torch.randn(2, 4, 9), torch.randn(2, 4, 9)
    mask = torch.ones(2, 4)
    for beta in (0.0, 0.5, 1.0):
        tempered = generalized_jsd(s, t, mask, beta, temperature=2.0)
        torch.testing.assert_close(tempered, generalized_jsd(s / 2.0, t / 2.0, mask, beta))
        assert float(tempered) < float(generalized_jsd(s, t, mask, beta))  # flatter distributions, closer


def test_the_beta_endpoints_are_discontinuous_as_in_trl():
    """β → 0: M → P_s and JSD_β → 0, but β = 0 is the full forward KL; likewise β → 1 vs the reverse KL."""
    near_zero = float(generalized_jsd(S_LOGITS, T_LOGITS, MASK, 1e-6))
    near_one = float(generalized_jsd(S_LOGITS, T_LOGITS, MASK, 1.0 - 1e-6))
    assert near_zero < 1e-6 and near_one < 1e-6
    assert float(generalized_jsd(S_LOGITS, T_LOGITS, MASK, 0.0)) == pytest.approx(FORWARD) and FORWARD > 0.1
    assert float(generalized_jsd(S_LOGITS, T_LOGITS, MASK, 1.0)) == pytest.approx(REVERSE) and REVERSE > 0.1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        generalized_jsd(S_LOGITS, T_LOGITS, MASK, 1.5)


def test_sft_loss_is_the_token_nll_of_the_completion():
    labels = torch.tensor([[0, 1]])
    loss = DISTILLATION_LOSSES.get("sft").fn(S_LOGITS, None, labels, MASK, DistillationParams(beta=1.0))
    assert float(loss) == pytest.approx(math.log(2.0))  # −log ½ at the one valid position
    assert (
        not DISTILLATION_LOSSES.get("sft").needs_teacher_logits and DISTILLATION_LOSSES.get("jsd").needs_teacher_logits
    )


# ----------------------------------------------------------------------------- TRL 1.16 parity


def _trl_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 5, 11, generator=g) * 2
    t = torch.randn(3, 5, 11, generator=g) * 2
    labels = torch.randint(0, 11, (3, 5), generator=g)
    labels[0, :2] = -100  # a prompt
    labels[2, 3:] = -100  # padding after EOS
    return s, t, labels


@pytest.mark.parametrize("trainer", ["gkd", "gold"])
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 0.1])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("num_items", [None, 17])
def test_loss_and_gradient_equal_trl(trainer: str, beta: float, temperature: float, num_items: int | None):
    if trainer == "gkd":
        from trl.experimental.gkd import GKDTrainer

        trl_loss = GKDTrainer.generalized_jsd_loss
    else:
        from trl.experimental.gold import GOLDTrainer

        trl_loss = GOLDTrainer.generalized_jsd_loss  # the same-tokenizer path (use_uld_loss=False)
    s, t, labels = _trl_inputs()
    s_ours, s_trl = s.clone().requires_grad_(True), s.clone().requires_grad_(True)
    ours = generalized_jsd(s_ours, t, labels != -100, beta, temperature, num_items)
    theirs = trl_loss(s_trl, t, labels=labels, beta=beta, temperature=temperature, num_items_in_batch=num_items)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(s_ours.grad, s_trl.grad, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- config


def test_trainer_key_selects_the_distillation_config_and_trl_names_map(tmp_path: Path):
    from repro.config import dump, load_config_file, load_resolved

    path = tmp_path / "run.yaml"
    path.write_text(
        "trainer: distillation\nmodel: {name_or_path: s}\ndata: {prompts: 'synthetic:addition'}\n"
        "train: {max_steps: 3, learning_rate: 1.0e-4, teacher_model_name_or_path: t, lmbda: 1.0, beta: 1.0,\n"
        "        max_completion_length: 16, disable_dropout: true, bf16: false, gold: true, temperature: 0.9,\n"
        "        top_p: 0.95}\n",
        encoding="utf-8",
    )
    cfg = load_config_file(path)
    assert isinstance(cfg, DistillationRunConfig)
    assert cfg.train.max_new_tokens == 16  # GOLDConfig's max_completion_length
    assert cfg.train.loss_temperature == 0.9  # GOLD applies the sampling temperature in the loss
    assert config().train.loss_temperature == 1.0  # GKD does not
    (tmp_path / "config.resolved.yaml").write_text(dump(cfg), encoding="utf-8")
    assert load_resolved(tmp_path / "config.resolved.yaml") == cfg


@pytest.mark.parametrize(
    ("train", "data", "message"),
    [
        ({"lmbda": 1.5}, {}, r"train.lmbda: is 1.5; .* \[0, 1\]"),
        ({"beta": -0.1}, {}, r"train.beta: is -0.1"),
        ({"loss_type": "jsdd"}, {}, "Did you mean 'jsd'"),
        ({"loss_type": "sft", "lmbda": 0.5}, {}, "set lmbda: 0"),
        ({"gold": True, "seq_kd": True}, {}, "GOLDTrainer stores seq_kd but never uses it"),
        ({"gold": True, "temperature": 0.9, "loss_temperature": 1.0}, {}, "drop loss_temperature or gold"),
        ({"lmbda": 0.5}, {"prompts": "prompts.jsonl"}, "set seq_kd: true"),
        ({"teacher_model_name_or_path": "student"}, {}, "the student itself"),
        ({"max_completion_length": 8, "max_new_tokens": 16}, {}, "the same setting; keep one"),
        ({"temperature": 0.0}, {}, "must be positive"),
        ({}, {"prompts": "synthetic:additon"}, "Did you mean 'addition'"),
    ],
)
def test_bad_distillation_configs_fail_with_the_fix(train: dict, data: dict, message: str):
    raw = raw_config(**train)
    raw["data"].update(data)
    with pytest.raises(ConfigError, match=message):
        resolve_distillation(raw, "test")


def test_missing_teacher_and_bad_eval_settings_are_named():
    raw = raw_config()
    del raw["train"]["teacher_model_name_or_path"]
    with pytest.raises(ConfigError, match="missing required key 'train.teacher_model_name_or_path'"):
        resolve_distillation(raw, "test")
    with pytest.raises(ConfigError, match="target_gap_fraction"):
        resolve_distillation({**raw_config(), "eval": {"target_gap_fraction": 0.0}}, "test")
    raw = raw_config(seq_kd=True)
    raw["data"]["prompts"] = "prompts.jsonl"
    with pytest.raises(ConfigError, match="eval.prompts"):
        resolve_distillation(raw, "test")


def test_the_dag_builds_a_prepared_teacher(tmp_path: Path):
    from repro import workflow as wf

    paper = tmp_path / "papers" / "p"
    (paper / "configs" / "variants").mkdir(parents=True)
    (paper / "paper.yaml").write_text("variants: [v]\n", encoding="utf-8")
    (paper / "configs" / "smoke.yaml").write_text(
        "trainer: distillation\nmodel: {name_or_path: 'prepared:smoke'}\n"
        "train: {teacher_model_name_or_path: 'prepared:smoke_teacher'}\n",
        encoding="utf-8",
    )
    (paper / "configs" / "variants" / "v.yaml").write_text("train: {lmbda: 1.0}\n", encoding="utf-8")
    assert wf.prepared_bases("p", "smoke", "v", tmp_path / "papers") == ["smoke", "smoke_teacher"]
    assert "results/base/smoke_teacher/prepare.json" in wf.run_inputs("p", "smoke", "v", tmp_path / "papers")


# ----------------------------------------------------------------------------- the loop on real tiny models


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(student dir, teacher dir): two tiny Llamas with the project's char tokenizer; the teacher is larger."""
    from repro.models.tiny import save_tiny

    root = tmp_path_factory.mktemp("distill_models")
    small = {"intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    student = save_tiny(root / "student", hidden_size=32, seed=0, **small)
    teacher = save_tiny(root / "teacher", hidden_size=48, seed=1, **small)
    return str(student), str(teacher)


def run_config(student: str, teacher: str, **train: Any) -> DistillationRunConfig:
    raw = {
        "trainer": "distillation",
        "model": {"name_or_path": student},
        "data": {"prompts": "synthetic:addition", "limit": 64},
        "train": {
            "max_steps": 4, "learning_rate": 1e-2, "teacher_model_name_or_path": teacher, "lmbda": 1.0, "beta": 1.0,
            "temperature": 1.0, "max_new_tokens": 5, "per_device_train_batch_size": 4, "save_steps": 0, **train,
        },
        "eval": {"n_problems": 8, "k": 2, "max_new_tokens": 5},
    }  # fmt: skip
    return resolve_distillation(raw, "test")


def make_trainer(cfg: DistillationRunConfig, out: Path, seed: int = 0, monitor: Any = None):
    from repro.models.loading import load_policy
    from repro.runs import seed_everything
    from repro.runs_distillation import load_teacher, training_problems
    from repro.trainers.distillation import DistillationTrainer

    seed_everything(seed)
    model, tok = load_policy(cfg.model.name_or_path)
    teacher = load_teacher(cfg, tok)
    return DistillationTrainer(cfg, model, tok, teacher, training_problems(cfg), out, seed, monitor=monitor)


def test_lambda_draws_on_policy_micro_batches_at_its_rate(tiny_pair: tuple[str, str], tmp_path: Path):
    draws = {}
    for lmbda in (0.0, 0.3, 1.0):
        trainer = make_trainer(run_config(*tiny_pair, lmbda=lmbda, seq_kd=True), tmp_path / str(lmbda))
        draws[lmbda] = [trainer.policy_rng.random() < lmbda for _ in range(4000)]
    assert not any(draws[0.0]) and all(draws[1.0])
    share = sum(draws[0.3]) / 4000
    assert abs(share - 0.3) < 3 * math.sqrt(0.3 * 0.7 / 4000)  # within 3σ of λ
    again = make_trainer(run_config(*tiny_pair, lmbda=0.3, seq_kd=True), tmp_path / "again")
    assert [again.policy_rng.random() < 0.3 for _ in range(4000)] == draws[0.3]  # seeded: the same sequence


@pytest.mark.parametrize(
    ("lmbda", "seq_kd", "source"), [(1.0, False, "student"), (0.0, True, "teacher"), (0.0, False, "dataset")]
)
def test_each_micro_batch_comes_from_the_drawn_source(
    tiny_pair: tuple[str, str], tmp_path: Path, lmbda: float, seq_kd: bool, source: str
):
    trainer = make_trainer(run_config(*tiny_pair, lmbda=lmbda, seq_kd=seq_kd), tmp_path)
    batch = trainer._draw()
    assert batch.source == source and batch.prompt_ids.size(0) == 4
    if source == "dataset":  # the synthetic task's gold answer + EOS
        first = trainer.problems[trainer.order[0]]
        ids = batch.completion_ids[0][batch.completion_mask[0].bool()].tolist()
        assert ids == trainer.tok(first.target, add_special_tokens=False)["input_ids"] + [trainer.tok.eos_token_id]
        assert all(batch.correct)
    else:  # sampled: every completion ends at its first EOS or at max_new_tokens
        assert batch.completion_ids.size(1) <= 5
    row = trainer._optimizer_step()
    assert row["on_policy_share"] == (1.0 if source == "student" else 0.0)
    assert row["flops"] > 0 and math.isfinite(row["loss"]) and row["train_reverse_kl"] >= 0


def test_two_accumulated_micro_batches_equal_one_batch(tiny_pair: tuple[str, str], tmp_path: Path):
    """Dataset completions (deterministic): the step normalises by the whole step's tokens, so GA is exact."""
    a = make_trainer(run_config(*tiny_pair, lmbda=0.0, max_steps=1, per_device_train_batch_size=8), tmp_path / "a")
    b = make_trainer(
        run_config(*tiny_pair, lmbda=0.0, max_steps=1, per_device_train_batch_size=4, gradient_accumulation_steps=2),
        tmp_path / "b",
    )
    ra, rb = a.train(progress=False), b.train(progress=False)
    assert ra[0]["loss"] == pytest.approx(rb[0]["loss"], rel=1e-5)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)


def test_resume_after_a_kill_reproduces_the_uninterrupted_run(tiny_pair: tuple[str, str], tmp_path: Path):
    cfg = run_config(*tiny_pair, lmbda=0.5, seq_kd=True, max_steps=4, save_steps=2, gradient_accumulation_steps=2)
    whole = make_trainer(cfg, tmp_path / "whole")
    rows_whole = whole.train(progress=False)
    assert 0 < sum(r["on_policy_share"] for r in rows_whole) < 4  # both sources occur: the λ stream matters

    killed = make_trainer(cfg, tmp_path / "cut")
    step = killed._optimizer_step

    def die_after_two() -> dict[str, Any]:
        if killed.step == 2:  # step 2's checkpoint is written; the process dies before step 3
            raise KeyboardInterrupt
        return step()

    killed._optimizer_step = die_after_two
    with pytest.raises(KeyboardInterrupt):
        killed.train(progress=False)
    resumed = make_trainer(cfg, tmp_path / "cut", seed=0)  # a fresh process: initial weights, state from the ckpt
    rows = resumed.train(progress=False)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["on_policy_share"] for r in rows] == [r["on_policy_share"] for r in rows_whole]
    assert rows[-1]["flops"] == pytest.approx(rows_whole[-1]["flops"])
    for pa, pb in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-7)


def test_the_monitor_leaves_training_unchanged(tiny_pair: tuple[str, str], tmp_path: Path):
    from repro.runs_distillation import _measure, eval_problems

    cfg = run_config(*tiny_pair, lmbda=1.0, max_steps=2, eval_every=1, eval_prompts=4, eval_samples=2)
    plain = make_trainer(cfg, tmp_path / "plain")
    plain.train(progress=False)
    watched = make_trainer(cfg, tmp_path / "watched")
    watched.monitor = _measure(cfg, watched.teacher, watched.tok, eval_problems(cfg, 4), 2, seed=5)
    rows = watched.train(progress=False)
    assert {"eval_sampled_accuracy", "eval_reverse_kl", "eval_forward_kl"} <= set(rows[0])
    reference = (tmp_path / "watched" / "reference.json").read_text(encoding="utf-8")
    assert '"teacher"' in reference and '"base"' in reference
    for pa, pb in zip(plain.model.parameters(), watched.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_time_to_target_by_hand():
    from repro.runs_distillation import time_to_target

    reference = {"base": {"sampled_accuracy": 0.2}, "teacher": {"sampled_accuracy": 0.6}}
    rows = [
        {"step": 1, "flops": 10.0},
        {"step": 2, "flops": 20.0, "eval_sampled_accuracy": 0.5},
        {"step": 4, "flops": 40.0, "eval_sampled_accuracy": 0.57},
    ]
    out = time_to_target(rows, reference, 0.9, max_steps=4, eval_every=2)  # target 0.2 + 0.9 · 0.4 = 0.56
    assert out["target_accuracy"] == pytest.approx(0.56)
    assert (out["steps_to_target"], out["flops_to_target"], out["reached_target"]) == (4, 40.0, True)
    out = time_to_target(rows, reference, 1.0, max_steps=4, eval_every=2)  # 0.6 is never reached: censored
    assert (out["steps_to_target"], out["flops_to_target"], out["reached_target"]) == (6, 60.0, False)
    flat = {"base": {"sampled_accuracy": 0.6}, "teacher": {"sampled_accuracy": 0.6}}
    assert time_to_target(rows, flat, 0.9, max_steps=4, eval_every=2)["steps_to_target"] is None


def test_train_and_eval_round_trip_through_the_verbs(tiny_pair: tuple[str, str], tmp_path: Path):
    """On-policy reverse-KL distillation for 12 steps: the student's per-token reverse KL to the teacher on its own
    held-out samples falls; eval.json's teacher row is the teacher measured (KL 0), its base row the start."""
    from repro.eval.distillation import measure_student
    from repro.io import read_json, read_jsonl
    from repro.models.loading import load_policy
    from repro.runs_distillation import eval_distillation_run, eval_problems, train_distillation_run

    cfg = run_config(*tiny_pair, max_steps=12, eval_every=6, eval_prompts=8, eval_samples=2)
    out = tmp_path / "run"
    summary = train_distillation_run(
        cfg, "on_policy_distillation", "smoke", "on_policy", 0, out, cfg.model.name_or_path
    )
    assert summary["steps"] == 12 and (out / "model" / "config.json").is_file()
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows if "eval_reverse_kl" in r] == [6, 12]
    result = eval_distillation_run(out, cfg, out / "eval.json")
    assert read_json(out / "eval.json") == result and result["trainer"] == "distillation"
    assert result["reverse_kl"] < 0.8 * result["base"]["reverse_kl"]  # the student moved toward the teacher
    assert result["teacher"]["reverse_kl"] == pytest.approx(0.0, abs=1e-6)
    assert result["teacher_sampled_accuracy"] == result["teacher"]["sampled_accuracy"]
    base, tok = load_policy(cfg.model.name_or_path)
    teacher, _ = load_policy(cfg.train.teacher_model_name_or_path)
    direct = measure_student(
        base, teacher, tok, eval_problems(cfg, 8), template="raw", answer_style="plain", k=2, max_new_tokens=5,
        seed=result["sampling_seed"],
    )  # fmt: skip
    assert result["base"] == direct
    reference = read_json(out / "reference.json")  # the monitor's ends of the gap, measured before step 1
    if reference["teacher"]["sampled_accuracy"] > reference["base"]["sampled_accuracy"]:
        assert result["steps_to_target"] in (6, 12, 18)  # a monitored step, or censored at 12 + 6
    else:  # untrained tiny models: no gap to close, so no time to close it
        assert result["steps_to_target"] is None and result["reached_target"] is None
    assert set(result["headline"]) <= set(result)


def test_a_grown_teacher_starts_as_its_source_and_the_dag_builds_the_source_first(tmp_path: Path):
    from repro import workflow as wf
    from repro.models.grow import grow_depth
    from repro.models.tiny import build_char_tokenizer, build_tiny_model
    from repro.prepare import load_base_config

    tok = build_char_tokenizer()
    source = build_tiny_model(tok, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    grown = grow_depth(source, 4, seed=3)
    ids = tok(["12+34=46"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert grown.config.num_hidden_layers == 4 and len(grown.model.layers) == 4
    torch.testing.assert_close(grown(ids).logits, source(ids).logits, rtol=0, atol=0)  # the same function
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in source.parameters())
    with pytest.raises(ValueError, match="cannot grow"):
        grow_depth(source, 1)
    spec = "task: addition\nmodel: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: %d, num_attention_heads: 2}\n"
    (tmp_path / "small.yaml").write_text(spec % 2, encoding="utf-8")
    (tmp_path / "big.yaml").write_text("init_from: small\n" + spec % 4, encoding="utf-8")
    (tmp_path / "wide.yaml").write_text("init_from: small\n" + spec.replace("32", "48") % 4, encoding="utf-8")
    assert load_base_config(tmp_path / "big.yaml").init_from == "small"
    with pytest.raises(ConfigError, match="grows a text model in depth only"):
        load_base_config(tmp_path / "wide.yaml")
    assert "results/base/small/prepare.json" in wf.base_inputs("big", tmp_path)


# ----------------------------------------------------------------------------- samples.jsonl and over-long prompts


def _samples(run_dir: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def test_samples_jsonl_shows_each_steps_micro_batches_and_leaves_training_unchanged(
    tiny_pair: tuple[str, str], tmp_path: Path
):
    rows = {}
    for log in (0, 4):
        cfg = run_config(
            *tiny_pair, lmbda=0.5, max_steps=3, gradient_accumulation_steps=2, log_completions_per_step=log
        )
        rows[log] = make_trainer(cfg, tmp_path / str(log)).train(progress=False)
    drop = lambda r: {k: v for k, v in r.items() if k != "step_time"}  # noqa: E731
    assert [drop(r) for r in rows[4]] == [drop(r) for r in rows[0]]  # bit-identical: no random number drawn
    assert not (tmp_path / "0" / "samples.jsonl").exists()
    samples = _samples(tmp_path / "4")
    assert [s["step"] for s in samples] == [1] * 4 + [2] * 4 + [3] * 4
    _, tok = _student_tokenizer(tiny_pair)
    eos = tok.eos_token
    for step, row in enumerate(rows[4], start=1):
        mine = samples[4 * (step - 1) : 4 * step]  # first rows of micro-batches 1, 2, then their second rows
        assert [s["source"] for s in mine[:2]] == [s["source"] for s in mine[2:]]
        assert sum(s["source"] == "student" for s in mine[:2]) / 2 == row["on_policy_share"]
    assert {s["source"] for s in samples} == {"student", "dataset"}  # λ = ½ over 6 micro-batches drew both
    for s in samples:
        assert set(s) == {"step", "prompt", "completion", "source", "correct", "truncated"}
        assert s["prompt"].endswith("=") and "+" in s["prompt"]  # the addition prompt as the model saw it
        assert s["truncated"] == (not s["completion"].endswith(eos))
        if s["source"] == "dataset":  # the gold answer + EOS: never cut at 5 tokens, always right
            assert not s["truncated"] and s["correct"]


def _student_tokenizer(tiny_pair: tuple[str, str]):
    from repro.models.loading import load_policy

    return load_policy(tiny_pair[0])


def test_resume_keeps_the_samples_of_the_steps_the_run_has(tiny_pair: tuple[str, str], tmp_path: Path):
    cfg = run_config(*tiny_pair, lmbda=0.5, seq_kd=True, max_steps=4, save_steps=2)
    make_trainer(cfg, tmp_path / "whole").train(progress=False)
    killed = make_trainer(cfg, tmp_path / "cut")
    step = killed._optimizer_step

    def die_after_two() -> dict[str, Any]:
        if killed.step == 2:
            with open(tmp_path / "cut" / "samples.jsonl", "a", encoding="utf-8") as f:
                f.write('{"step": 3, "prompt": "stale"}\n{"step": 3, "pr')  # step 3 half logged, never checkpointed
            raise KeyboardInterrupt
        return step()

    killed._optimizer_step = die_after_two
    with pytest.raises(KeyboardInterrupt):
        killed.train(progress=False)
    make_trainer(cfg, tmp_path / "cut").train(progress=False)
    resumed, whole = _samples(tmp_path / "cut"), _samples(tmp_path / "whole")
    assert [s["step"] for s in resumed] == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    assert resumed == whole


@pytest.mark.parametrize("mode, kept", [("keep_end", ["56=", "+2="]), ("keep_start", ["123", "1+2"])])
def test_dataset_prompts_are_cut_on_the_configured_side_and_counted(
    tiny_pair: tuple[str, str], tmp_path: Path, mode: str, kept: list[str]
):
    import dataclasses

    cfg = run_config(*tiny_pair, lmbda=0.0)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, max_prompt_length=3, truncation_mode=mode))
    trainer = make_trainer(cfg, tmp_path)
    batch = trainer._dataset_batch(["123+456=", "1+2=", "9="], ["579", "3", "9"])
    tok = trainer.tok
    ids = lambda text: tok.convert_tokens_to_ids(list(text))  # noqa: E731  (one token per character)
    prompts = [batch.prompt_ids[i][batch.prompt_mask[i].bool()].tolist() for i in range(3)]
    assert prompts == [ids(kept[0]), ids(kept[1]), ids("9=")]
    assert batch.prompts_cut == 2 and batch.truncated == [False, False, False]


@pytest.mark.parametrize("lmbda", [0.0, 1.0])  # dataset completions, student samples
def test_every_prompt_cut_is_counted_in_the_step_metrics(tiny_pair: tuple[str, str], tmp_path: Path, lmbda: float):
    import dataclasses

    cfg = run_config(*tiny_pair, lmbda=lmbda, max_steps=1, gradient_accumulation_steps=2)
    for limit, expected in ((2, 8), (None, 0)):  # every addition prompt "a+b=" has at least 4 tokens
        limited = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, max_prompt_length=limit))
        (row,) = make_trainer(limited, tmp_path / str(limit)).train(progress=False)
        assert row["prompts_truncated"] == expected


def test_bad_truncation_mode_and_sample_count_are_named():
    raw = raw_config()
    raw["data"]["truncation_mode"] = "right"
    with pytest.raises(ConfigError, match=r"data\.truncation_mode: is 'right'; it must be keep_end"):
        resolve_distillation(raw, "test")
    with pytest.raises(ConfigError, match=r"train\.log_completions_per_step: is -2; it must be at least 0"):
        resolve_distillation(raw_config(log_completions_per_step=-2), "test")
    assert config().data.truncation_mode == "keep_end" and config().train.log_completions_per_step == 4
