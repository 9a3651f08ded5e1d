"""The online RL loop: rollout contract, dynamic sampling with refill, overlong masking, resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from repro.config import load_paper_config
from repro.data.synthetic import TASKS
from repro.models.loading import load_policy
from repro.models.tiny import build_char_tokenizer, build_tiny_model
from repro.rollout.base import RolloutBatch, SamplingParams
from repro.rollout.hf import HFRollout, eos_mask
from repro.trainers.group_filter import GROUP_FILTERS, group_rows
from repro.trainers.logprobs import completion_logprobs
from repro.trainers.online_rl import OnlineRLTrainer

DAPO = Path(__file__).resolve().parents[1] / "papers" / "dapo"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    tok = build_char_tokenizer()
    model = build_tiny_model(
        tok, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, seed=0
    )
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def smoke_cfg(variant: str, **train):
    cfg = load_paper_config(DAPO, "smoke", variant)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def test_eos_mask_keeps_tokens_up_to_the_first_eos() -> None:
    ids = torch.tensor([[5, 9, 2, 7], [5, 5, 5, 5], [9, 9, 9, 2]])  # eos = 9
    mask, truncated = eos_mask(ids, stop_ids=9)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert truncated.tolist() == [False, True, False]
    mask, truncated = eos_mask(ids, stop_ids=[2, 7])  # several stop tokens: the first of any ends the row
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    assert truncated.tolist() == [False, True, False]


def test_group_rows_are_prompt_major() -> None:
    assert group_rows(torch.tensor([0, 2]), G=3).tolist() == [0, 1, 2, 6, 7, 8]


def test_trainer_logprobs_match_the_sampler_with_left_padding(tiny_dir: Path) -> None:
    """At T=1 and no top-k/p, the trainer's log-probs of sampled tokens equal the sampler's."""
    model, tok = load_policy(str(tiny_dir))
    torch.manual_seed(0)
    batch = HFRollout(model, tok).generate(["1+2=", "123+456="], SamplingParams(num_generations=3, max_new_tokens=6))
    assert batch.prompt_mask[:3].sum(1).tolist() == [4, 4, 4] and batch.prompt_mask[3:].sum(1).tolist() == [8, 8, 8]
    with torch.no_grad():
        logp, _ = completion_logprobs(
            model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask
        )
    gap = ((logp - batch.sampler_logprobs).abs() * batch.completion_mask).max()
    assert gap < 1e-4


class ScriptedRollout:
    """Returns completions from a script, one list per generate call (correct answer = 'ok')."""

    def __init__(self, tok, script: list[list[str]]) -> None:
        self.tok, self.script, self.calls = tok, list(script), 0

    def sync_weights(self, model) -> None:
        pass

    def generate(self, prompts: list[str], params: SamplingParams) -> RolloutBatch:
        texts = self.script[self.calls % len(self.script)]
        self.calls += 1
        assert len(texts) == len(prompts) * params.num_generations
        enc = self.tok([p for p in prompts for _ in range(params.num_generations)], return_tensors="pt", padding=True)
        comp = self.tok(
            [t + self.tok.eos_token for t in texts], return_tensors="pt", padding=True, padding_side="right"
        )
        ids = comp["input_ids"][:, : params.max_new_tokens]
        mask, truncated = eos_mask(ids, self.tok.eos_token_id)
        texts = [t[: params.max_new_tokens] for t in texts]  # one token per character
        return RolloutBatch(
            enc["input_ids"], enc["attention_mask"], ids, mask.float(), torch.zeros(ids.shape), truncated, texts
        )


def test_dynamic_sampling_refills_until_every_group_has_signal(tiny_dir: Path, tmp_path: Path) -> None:
    model, tok = load_policy(str(tiny_dir))
    cfg = smoke_cfg("dapo", per_device_train_batch_size=4, steps_per_generation=1, num_generations=2, max_steps=1)
    problems = [dataclasses.replace(p, answer="7") for p in TASKS.get("addition").make(8, seed=0)]
    # generation batch = 2 groups of 2. Round 1: group 0 mixed, group 1 all wrong. Round 2: group 0 all wrong, group 1 mixed.
    script = [["7", "3", "3", "3"], ["3", "3", "7", "3"]]
    rollout = ScriptedRollout(tok, script)
    assert cfg.train.dynamic_sampling  # the dapo variant's config picks the filter (repro/trainers/group_filter.py)
    trainer = OnlineRLTrainer(cfg, model, tok, problems, rollout, tmp_path, seed=0)
    assert trainer.group_filter is GROUP_FILTERS.get("dynamic_sampling")
    gen = trainer._sample_generation()
    assert rollout.calls == 2
    assert gen.correct.tolist() == [1.0, 0.0, 1.0, 0.0]  # the mixed group of each round
    assert gen.metrics["refill_batches"] == 1 and gen.metrics["kept_group_frac"] == 0.5
    assert gen.metrics["frac_zero_std"] == 0.5  # before filtering, half the groups had no signal
    metrics = trainer._generation_metrics(gen)
    assert metrics["frac_zero_std_update"] == 0.0
    assert (metrics["accuracy"], metrics["accuracy_update"]) == (2 / 8, 0.5)  # all sampled vs trained on


def test_without_a_filter_zero_std_groups_reach_the_update(tiny_dir: Path, tmp_path: Path) -> None:
    model, tok = load_policy(str(tiny_dir))
    cfg = smoke_cfg(
        "token_level_loss", per_device_train_batch_size=4, steps_per_generation=1, num_generations=2, max_steps=1
    )
    problems = [dataclasses.replace(p, answer="7") for p in TASKS.get("addition").make(8, seed=0)]
    rollout = ScriptedRollout(tok, [["7", "3", "7", "7"]])
    trainer = OnlineRLTrainer(cfg, model, tok, problems, rollout, tmp_path, seed=0)
    gen = trainer._sample_generation()
    assert rollout.calls == 1 and trainer._generation_metrics(gen)["frac_zero_std_update"] == 0.5


def run_steps(tiny_dir: Path, out: Path, max_steps: int, save_steps: int, seeding: str = "batch") -> list[dict]:
    torch.manual_seed(0)
    model, tok = load_policy(str(tiny_dir))
    cfg = smoke_cfg(
        "dapo",
        per_device_train_batch_size=8,
        steps_per_generation=2,
        num_generations=4,
        max_steps=max_steps,
        save_steps=save_steps,
        rollout_seeding=seeding,
    )
    problems = TASKS.get("addition").make(64, seed=0)
    trainer = OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), out, seed=0)
    return trainer.train(progress=False)


@pytest.mark.parametrize("seeding", ["batch", "per_group"])  # per_group: the checkpoint holds the groups drawn
def test_resume_from_checkpoint_gives_the_same_trajectory(tiny_dir: Path, tmp_path: Path, seeding: str) -> None:
    straight = run_steps(tiny_dir, tmp_path / "straight", max_steps=4, save_steps=0, seeding=seeding)
    run_steps(tiny_dir, tmp_path / "resumed", max_steps=2, save_steps=2, seeding=seeding)  # "killed" after step 2
    resumed = run_steps(tiny_dir, tmp_path / "resumed", max_steps=4, save_steps=2, seeding=seeding)
    keys = ["reward_mean", "response_length", "loss", "entropy", "clip_frac", "grad_norm"]
    assert [r[k] for r in resumed for k in keys] == pytest.approx([r[k] for r in straight for k in keys], rel=1e-5)
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


@pytest.mark.parametrize("variant, masked", [("overlong_filtering", True), ("naive_grpo", False)])
def test_overlong_filtering_removes_truncated_rows_from_the_loss(
    tiny_dir: Path, tmp_path: Path, variant: str, masked: bool
) -> None:
    """Every completion is cut at 5 tokens (no EOS) but rewards differ: only the filter zeroes the loss."""
    model, tok = load_policy(str(tiny_dir))
    cfg = smoke_cfg(
        variant,
        per_device_train_batch_size=4,
        steps_per_generation=1,
        num_generations=2,
        max_steps=1,
        max_completion_length=5,
    )
    problems = [dataclasses.replace(p, answer="77777") for p in TASKS.get("addition").make(8, seed=0)]
    rollout = ScriptedRollout(tok, [["777777", "333333", "777777", "333333"]])
    trainer = OnlineRLTrainer(cfg, model, tok, problems, rollout, tmp_path, seed=0)
    rows = trainer.train(progress=False)
    assert rows[0]["truncation_rate"] == 1.0 and rows[0]["accuracy"] == 0.5
    assert (rows[0]["grad_norm"] == 0.0) == masked


class ShiftedSampler:
    """An HF rollout whose reported sampler log-probs sit `shift` below the trainer's: a known mismatch."""

    def __init__(self, inner: HFRollout, shift: float) -> None:
        self.inner, self.shift = inner, shift

    def generate(self, prompts: list[str], params: SamplingParams) -> RolloutBatch:
        batch = self.inner.generate(prompts, params)
        return dataclasses.replace(batch, sampler_logprobs=batch.sampler_logprobs - self.shift)

    def sync_weights(self, model: torch.nn.Module) -> None:
        self.inner.sync_weights(model)


def first_step(tiny_dir: Path, out: Path, shift: float, **train) -> dict:
    torch.manual_seed(0)
    model, tok = load_policy(str(tiny_dir))
    cfg = smoke_cfg("naive_grpo", per_device_train_batch_size=8, num_generations=4, max_steps=1, save_steps=0, **train)
    problems = TASKS.get("addition").make(32, seed=0)
    rollout = ShiftedSampler(HFRollout(model, tok), shift)
    return OnlineRLTrainer(cfg, model, tok, problems, rollout, out, seed=0).train(progress=False)[0]


def test_token_tis_weights_every_token_by_the_truncated_ratio(tiny_dir: Path, tmp_path: Path) -> None:
    """Sampler log-probs 0.1 below the trainer's: ρ_t = e^0.1 = 1.105, truncated at C_max = 1.05, so the
    on-policy first step's loss is exactly 1.05 × the uncorrected one (β = 0, same samples)."""
    plain = first_step(tiny_dir, tmp_path / "plain", 0.1)
    tis = first_step(tiny_dir, tmp_path / "tis", 0.1, rollout_correction="token_truncate",
                     rollout_correction_clip_max=1.05)  # fmt: skip
    assert "is_ratio_mean" not in plain
    assert tis["is_ratio_min"] == pytest.approx(1.05) and tis["is_ratio_max"] == pytest.approx(1.05)
    assert tis["loss"] == pytest.approx(1.05 * plain["loss"], rel=1e-4)
    assert tis["logprob_gap"] == pytest.approx(0.1, abs=1e-4)


def test_sequence_mis_drops_sequences_outside_the_band(tiny_dir: Path, tmp_path: Path) -> None:
    """A sequence ratio e^{0.1·|o|} ≥ e^0.1 > C_max = 1.05 for every sequence: all masked, loss 0."""
    mis = first_step(tiny_dir, tmp_path / "mis", 0.1, rollout_correction="sequence_mask",
                     rollout_correction_clip_max=1.05)  # fmt: skip
    assert mis["is_ratio_zeroed"] == 1.0 and mis["loss"] == 0.0


def test_gfpo_each_group_keeps_its_own_best_k() -> None:
    """Two groups of G=4, k=2: group 0's shortest are rows 1 and 3; group 1's are rows 4 and 6 (not 5 and 7,
    which the first group's positions would pick)."""
    from repro.trainers.group_filter import RETAIN_SCORES, retain_top_k

    lengths = torch.tensor([9, 2, 7, 3, 1, 8, 1, 9])
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    rows = retain_top_k(RETAIN_SCORES.get("length")(rewards, lengths), G=4, k=2)
    assert rows.tolist() == [1, 3, 4, 6]  # the tie at length 1 in group 1 keeps both
    # reward per token: group 0 -> 1/7 (row 2) and 1/3 (row 3); group 1 -> 1/1 (row 6) and 1/8 (row 5)
    rows = retain_top_k(RETAIN_SCORES.get("reward_per_token")(rewards, lengths), G=4, k=2)
    assert rows.tolist() == [2, 3, 5, 6]
    assert retain_top_k(torch.zeros(8), G=4, k=4).tolist() == list(range(8))
    with pytest.raises(ValueError, match="1 <= k <= G"):
        retain_top_k(torch.zeros(8), G=4, k=5)


def test_gfpo_trains_on_each_groups_shortest_k(tiny_dir: Path, tmp_path: Path) -> None:
    """Same seed, same samples: the GFPO generation is exactly the plain one with retain_top_k applied."""
    from repro.trainers.group_filter import retain_top_k

    def generation(out: Path, **train):
        torch.manual_seed(0)
        model, tok = load_policy(str(tiny_dir))
        cfg = smoke_cfg("naive_grpo", num_generations=4, max_steps=1, **train)
        problems = TASKS.get("addition").make(32, seed=0)
        trainer = OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), out, seed=0)
        return trainer, trainer._sample_generation()

    # both sample 16 prompts × 4: the plain batch trains on 64 rows, GFPO's (half the size) on the 2 kept per prompt
    _, plain = generation(tmp_path / "plain", per_device_train_batch_size=16)
    trainer, gfpo = generation(tmp_path / "gfpo", per_device_train_batch_size=8, gfpo_retain=2, gfpo_score="length")
    rows = retain_top_k(-plain.batch.completion_lengths.float(), G=4, k=2)
    assert gfpo.batch.completions == [plain.batch.completions[i] for i in rows.tolist()]
    assert torch.equal(gfpo.rewards, plain.rewards[rows])
    metrics = trainer._generation_metrics(gfpo)
    n_groups = trainer.t.generation_batch_size // 2  # the batch counts rows that reach the loss: 2 per group
    assert metrics["num_groups"] == n_groups == 16 and gfpo.rewards.numel() == 2 * n_groups  # groups of 4 -> of 2
    assert metrics["response_length"] <= metrics["response_length_sampled"]
    # the sampled length is the plain run's length: the policy's own, comparable with GRPO's
    assert gfpo.metrics["response_length_sampled"] == plain.metrics["response_length_sampled"]
    assert plain.metrics["response_length_sampled"] == pytest.approx(plain.batch.completion_lengths.float().mean())


def test_mismatched_sampler_differs_from_the_trainer_by_its_precision(tiny_dir: Path) -> None:
    """hf_mismatch samples from a bf16 round trip of the weights (+ optional noise): a real, small
    log-prob gap that follows the trainer after every sync."""
    from repro.rollout.hf import make_backend

    torch.manual_seed(0)
    model, tok = load_policy(str(tiny_dir))
    rollout = make_backend("hf_mismatch", model, tok, dtype="bfloat16")
    weight = model.model.embed_tokens.weight
    assert torch.equal(rollout.copy.model.embed_tokens.weight, weight.to(torch.bfloat16).float())
    assert not torch.equal(rollout.copy.model.embed_tokens.weight, weight)
    params = SamplingParams(num_generations=4, max_new_tokens=6, temperature=1.0, top_p=1.0, top_k=0)
    batch = rollout.generate(["12+34=", "5+6="], params)
    trainer_logp, _ = completion_logprobs(
        model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask, 1.0
    )
    gap = (
        (trainer_logp.detach() - batch.sampler_logprobs).abs() * batch.completion_mask
    ).sum() / batch.completion_mask.sum()
    assert 1e-4 < float(gap) < 0.1
    with torch.no_grad():
        weight.add_(0.01)  # an optimizer step
    rollout.sync_weights(model)
    assert torch.equal(rollout.copy.model.embed_tokens.weight, weight.to(torch.bfloat16).float())
    noisy = make_backend("hf_mismatch", model, tok, dtype="float32", noise_std=0.01, seed=3)
    delta = (noisy.copy.model.embed_tokens.weight - weight.detach()).abs() / weight.detach().abs().clamp(min=1e-12)
    assert 0.001 < float(delta.mean()) < 0.02  # relative noise of σ = 0.01


def test_rloo_kl_in_reward_is_the_only_signal_when_rewards_are_flat(tiny_dir: Path, tmp_path: Path) -> None:
    """The untrained model earns reward 0 everywhere, so every group has zero reward variance; with a
    reference that differs from the policy, β·KL_i in the reward is what makes the advantages non-zero."""
    import copy

    from repro.config import resolve
    from repro.schema import to_dict

    torch.manual_seed(0)
    model, tok = load_policy(str(tiny_dir))
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = smoke_cfg("naive_grpo", loss_type="rloo", advantage_estimator=None, scale_rewards=None,
                    importance_sampling_level=None, aggregation=None, kl_estimator=None, beta=0.05,
                    kl_in_reward=True, per_device_train_batch_size=8, num_generations=4, max_steps=1,
                    steps_per_generation=1, gradient_accumulation_steps=1, save_steps=0)  # fmt: skip
    cfg = resolve(to_dict(cfg), "test")  # expand the rloo preset into its axes
    assert cfg.train.importance_sampling_level == "sequence_sum" and cfg.train.advantage_estimator == "leave_one_out"
    problems = TASKS.get("addition").make(32, seed=0)
    trainer = OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), tmp_path, seed=0, ref_model=ref)
    row = trainer.train(progress=False)[0]
    assert row["reward_std"] == 0.0 and row["frac_zero_std_update"] == 1.0  # no signal from the reward itself
    assert trainer.loss_spec.beta == 0.0 and "kl" not in row  # no KL term in the loss
    assert row["kl_penalty"] != 0.0 and row["grad_norm"] > 0.0
    no_ref = OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), tmp_path / "no_ref", seed=0)
    with pytest.raises(ValueError, match="needs a reference model"):  # never a silently dropped penalty
        no_ref.train(progress=False)


# ----------------------------------------------------------------------------------------------------------------
# Split-half gradient variance (RLOO's variance claim)
# ----------------------------------------------------------------------------------------------------------------


def test_split_halves_are_disjoint_whole_groups() -> None:
    from repro.trainers.grad_variance import split_halves

    a, b = split_halves(5, torch.Generator().manual_seed(0))
    assert len(a) == len(b) == 2 and not set(a.tolist()) & set(b.tolist())  # the odd group is left out
    with pytest.raises(ValueError, match="at least 2 groups"):
        split_halves(1, torch.Generator())


def test_split_half_variance_by_hand() -> None:
    """Loss over rows = Σ_rows x_r·w, so a half's gradient is Σ x_r over its rows, in closed form."""
    from repro.trainers.grad_variance import split_half_variance, split_halves

    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0], [-1.0, 1.0]])  # 4 rows = 2 groups of G=2
    w = torch.nn.Linear(2, 1, bias=False)
    out = split_half_variance(w, 2, 2, lambda rows: w(x[rows]).sum(), torch.Generator().manual_seed(3))
    first, _ = split_halves(2, torch.Generator().manual_seed(3))
    g = {0: torch.tensor([1.0, 2.0]), 1: torch.tensor([2.0, 2.0])}  # Σ x over group 0 rows / group 1 rows
    g_a, g_b = g[int(first[0])], g[1 - int(first[0])]
    assert out["grad_var"] == pytest.approx(float((g_a - g_b).pow(2).sum()) / 2)  # (1² + 0²)/2 = 0.5
    assert out["grad_var"] == pytest.approx(0.5)
    assert out["grad_mean_sq_norm"] == pytest.approx(1.5**2 + 2.0**2)
    assert w.weight.grad is None  # left empty for the training step


def rloo_cfg(preset: str, **train):
    from repro.config import resolve
    from repro.schema import to_dict

    axes = dict.fromkeys(["advantage_estimator", "scale_rewards", "importance_sampling_level", "aggregation",
                          "kl_estimator"])  # fmt: skip
    batch = dict(per_device_train_batch_size=8, num_generations=2, steps_per_generation=1)
    cfg = smoke_cfg("naive_grpo", loss_type=preset, **axes, **{**batch, **train}, save_steps=0)
    return resolve(to_dict(cfg), "test")


@pytest.mark.parametrize("preset, zero", [("rloo", True), ("reinforce", False)])
def test_all_correct_groups_give_rloo_zero_gradient_variance(
    tiny_dir: Path, tmp_path: Path, preset: str, zero: bool
) -> None:
    """Every completion right: RLOO's baseline cancels the reward exactly (no gradient, no variance),
    vanilla REINFORCE still pushes every sample up, and its two halves disagree."""
    model, tok = load_policy(str(tiny_dir))
    cfg = rloo_cfg(preset, max_steps=1, grad_variance_every=1)
    problems = [dataclasses.replace(p, answer="7") for p in TASKS.get("addition").make(8, seed=0)]
    rollout = ScriptedRollout(tok, [["7"] * 8])  # 4 prompts × G=2, every answer right
    row = OnlineRLTrainer(cfg, model, tok, problems, rollout, tmp_path, seed=0).train(progress=False)[0]
    assert row["reward_std"] == 0.0
    assert (row["grad_var"] == 0.0) is zero and (row["grad_norm"] == 0.0) is zero


def test_other_estimators_are_measured_on_the_same_samples_and_split(tiny_dir: Path, tmp_path: Path) -> None:
    """grad_var_<name>: the same weights, samples and halves with another advantage estimator. RLOO's own
    measurement equals its `leave_one_out` copy exactly; on all-correct groups REINFORCE's is not 0."""
    model, tok = load_policy(str(tiny_dir))
    cfg = rloo_cfg("rloo", max_steps=1, grad_variance_every=1, grad_variance_estimators=["leave_one_out", "reward"])
    problems = [dataclasses.replace(p, answer="7") for p in TASKS.get("addition").make(8, seed=0)]
    row = OnlineRLTrainer(cfg, model, tok, problems, ScriptedRollout(tok, [["7"] * 8]), tmp_path, seed=0).train(
        progress=False
    )[0]
    assert row["grad_var"] == row["grad_var_leave_one_out"] == 0.0
    assert row["grad_var_reward"] > 0.0 and row["grad_mean_sq_norm_reward"] > 0.0
    with pytest.raises(Exception, match="Did you mean 'reward'"):
        rloo_cfg("rloo", grad_variance_every=1, grad_variance_estimators=["rewards"])


def test_gradient_variance_measurement_leaves_training_unchanged(tiny_dir: Path, tmp_path: Path) -> None:
    rows = {}
    for every in (0, 1):
        torch.manual_seed(0)
        model, tok = load_policy(str(tiny_dir))
        # REINFORCE: the untrained model's rewards are all −1, which RLOO's baseline would cancel to 0
        cfg = rloo_cfg("reinforce", max_steps=2, grad_variance_every=every)
        problems = TASKS.get("addition").make(32, seed=0)
        trainer = OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), tmp_path / str(every), seed=0)
        rows[every] = trainer.train(progress=False)
    keys = ["reward_mean", "loss", "grad_norm", "entropy"]
    assert [r[k] for r in rows[1] for k in keys] == [r[k] for r in rows[0] for k in keys]
    assert all(r["grad_var"] > 0 for r in rows[1]) and "grad_var" not in rows[0][0]


def test_accumulation_across_generations_equals_one_big_generation(tiny_dir: Path, tmp_path: Path) -> None:
    """Lite PPO's seed has spg 8 < GA 32: one optimizer step spans GA/spg generations. With the per-sequence
    mean, two generations of 2 groups accumulated (GA 2, spg 1) give the gradient of one generation of 4."""
    texts = ["7", "3", "77", "7", "12", "7", "7", "8"]  # 4 prompts × G=2
    rows = {}
    for name, (batch, ga, script) in {"two": (4, 2, [texts[:4], texts[4:]]), "one": (8, 1, [texts])}.items():
        model, tok = load_policy(str(tiny_dir))
        cfg = smoke_cfg("naive_grpo", per_device_train_batch_size=batch, num_generations=2, steps_per_generation=1,
                        gradient_accumulation_steps=ga, max_steps=1, save_steps=0)  # fmt: skip
        problems = [dataclasses.replace(p, answer="7") for p in TASKS.get("addition").make(8, seed=0)]
        rollout = ScriptedRollout(tok, script)
        rows[name] = OnlineRLTrainer(cfg, model, tok, problems, rollout, tmp_path / name, seed=0).train(progress=False)
        assert rollout.calls == len(script)  # GA/spg generations for the one step
    (two,), (one,) = rows["two"], rows["one"]
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-5)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5, abs=1e-7)


def test_lite_ppo_seed_batch_arithmetic_is_accepted() -> None:
    from repro.config import resolve
    from repro.schema import ConfigError, to_dict

    cfg = smoke_cfg("naive_grpo", per_device_train_batch_size=4, num_generations=4, steps_per_generation=8,
                    gradient_accumulation_steps=32)  # fmt: skip
    assert resolve(to_dict(cfg), "test").train.gradient_accumulation_steps == 32
    bad = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps_per_generation=3,
                                                             gradient_accumulation_steps=2))  # fmt: skip
    with pytest.raises(ConfigError, match="must divide one another"):
        resolve(to_dict(bad), "test")


# Off-policy by a second update on the generation (spg 2: 16 rows, 8 per update) or by a second pass over it
# (spg 1: 8 rows, all in the first update); 4 steps are 2 generations either way.
@pytest.mark.parametrize("spg, iterations, full, later", [(2, 1, [16, 16], [8, 8]), (1, 2, [8, 8], [])])
def test_first_window_scores_its_old_log_probs_with_its_own_forward(
    tiny_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spg: int,
    iterations: int,
    full: list[int],
    later: list[int],
) -> None:
    """The first optimizer step of a generation sees pre-update weights, so its rows' old log-probs are their
    training forward's: only the later rows are scored without grad, and training is what scoring all gave."""
    import repro.trainers.online_rl as online_rl

    scored: list[int] = []  # rows per no-grad scoring call

    def counting(*args, **kwargs):
        if not torch.is_grad_enabled():
            scored.append(args[1].size(0))
        return completion_logprobs(*args, **kwargs)

    monkeypatch.setattr(online_rl, "completion_logprobs", counting)
    rows, calls = {}, {}
    for reuse in (False, True):
        torch.manual_seed(0)
        model, tok = load_policy(str(tiny_dir))
        cfg = smoke_cfg("dapo", per_device_train_batch_size=8, steps_per_generation=spg, num_generations=4,
                        num_iterations=iterations, max_steps=4, save_steps=0)  # fmt: skip
        problems = TASKS.get("addition").make(64, seed=0)
        trainer = OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), tmp_path / str(reuse), seed=0)
        assert trainer.needs_old_logp and trainer.reuse_first_window_logp
        trainer.reuse_first_window_logp = reuse
        scored.clear()
        rows[reuse] = trainer.train(progress=False)
        calls[reuse] = list(scored)
    assert calls == {False: full, True: later}  # rows scored without grad, per generation
    keys = ["loss", "clip_frac", "grad_norm", "entropy", "logprob_gap", "reward_mean"]
    assert [r[k] for r in rows[True] for k in keys] == pytest.approx(
        [r[k] for r in rows[False] for k in keys], rel=1e-5, abs=1e-7
    )


# --------------------------------------------------------------------------- samples.jsonl and over-long prompts


def test_sample_rows_take_each_groups_first_row_then_its_second() -> None:
    from repro.trainers.samples import pick_rows

    assert pick_rows(16, 4, 4) == [0, 4, 8, 12]
    assert pick_rows(16, 4, 4, offset=4) == [1, 5, 9, 13]  # the next optimizer step on the same generation
    assert pick_rows(16, 4, 3, offset=15) == [15, 0, 4]  # wraps around
    assert pick_rows(5, 2, 4) == [0, 2, 4, 1]  # a short last group counts
    assert pick_rows(4, 4, 9) == [0, 1, 2, 3] and pick_rows(8, 2, 0) == []


def sampled_run(tiny_dir: Path, out: Path, log: int, max_steps: int = 3, save_steps: int = 0, data=None) -> list[dict]:
    torch.manual_seed(0)
    model, tok = load_policy(str(tiny_dir))
    cfg = smoke_cfg(
        "dapo", per_device_train_batch_size=8, steps_per_generation=2, num_generations=4, max_steps=max_steps,
        save_steps=save_steps, log_completions_per_step=log,
    )  # fmt: skip
    if data:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **data))
    problems = TASKS.get("addition").make(64, seed=0)
    trainer = OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), out, seed=0)
    return trainer.train(progress=False)


def read_samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()]


def test_samples_jsonl_holds_decoded_samples_and_leaves_training_unchanged(tiny_dir: Path, tmp_path: Path) -> None:
    from repro.data.templates import render
    from repro.rewards.grader import extract_answer, grade

    off = sampled_run(tiny_dir, tmp_path / "off", log=0)
    on = sampled_run(tiny_dir, tmp_path / "on", log=4)
    timing = {"step_time", "tokens_per_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in on] == [
        {k: v for k, v in r.items() if k not in timing} for r in off
    ]  # bit-identical: picking samples draws no random number
    assert not (tmp_path / "off" / "samples.jsonl").exists()
    samples = read_samples(tmp_path / "on")
    assert [s["step"] for s in samples] == [1] * 4 + [2] * 4 + [3] * 4
    cfg = smoke_cfg("dapo")
    _, tok = load_policy(str(tiny_dir))
    prompts = {render(cfg.data.template, p.prompt, tok) for p in TASKS.get("addition").make(64, seed=0)}
    eos = tok.eos_token
    for s in samples:
        assert set(s) == {"step", "prompt", "completion", "reward", "rewards", "correct", "answer", "truncated"}
        assert s["prompt"] in prompts  # padding dropped, nothing cut (no max_prompt_length)
        assert s["truncated"] == (not s["completion"].endswith(eos))  # the stop token is kept in the text
        assert s["truncated"] == (eos not in s["completion"])
        assert set(s["rewards"]) == set(cfg.rewards)  # each function's own value; the total is their weighted sum
        weighted = sum(spec.get("weight", 1.0) * s["rewards"][name] for name, spec in cfg.rewards.items())
        assert s["reward"] == pytest.approx(weighted)
        text = s["completion"].removesuffix(eos)
        assert s["correct"] == grade(extract_answer(text, cfg.data.answer_style), s["answer"])
    # one generation (4 groups of 4) serves steps 1 and 2: step 2 shows the next row of each group, not the same
    assert [s["prompt"] for s in samples[:4]] == [s["prompt"] for s in samples[4:8]]
    assert len({s["prompt"] for s in samples[:4]}) == 4  # the first row of four different groups


def test_resume_keeps_exactly_the_samples_of_the_steps_the_run_has(tiny_dir: Path, tmp_path: Path) -> None:
    sampled_run(tiny_dir, tmp_path / "straight", log=4, max_steps=4)
    cut = tmp_path / "cut"
    sampled_run(tiny_dir, cut, log=4, max_steps=2, save_steps=2)
    # killed during step 3, after its samples were written but before a checkpoint: a whole line and a cut-off one
    with open(cut / "samples.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": 3, "prompt": "stale"}) + "\n" + '{"step": 3, "pro')
    sampled_run(tiny_dir, cut, log=4, max_steps=4, save_steps=2)
    assert read_samples(cut) == read_samples(tmp_path / "straight")  # same trajectory, same samples, once each
    assert [s["step"] for s in read_samples(cut)] == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4


def test_cut_prompt_keeps_the_configured_end() -> None:
    from repro.rollout.base import cut_prompt

    assert cut_prompt([1, 2, 3, 4, 5], 3, "keep_end") == [3, 4, 5]
    assert cut_prompt([1, 2, 3, 4, 5], 3, "keep_start") == [1, 2, 3]
    assert cut_prompt([1, 2, 3], 3, "keep_start") == [1, 2, 3] and cut_prompt([1, 2, 3], None) == [1, 2, 3]
    with pytest.raises(ValueError, match="keep_middle"):
        cut_prompt([1, 2, 3, 4], 2, "keep_middle")


@pytest.mark.parametrize("mode, kept", [("keep_end", ["56=", "+2="]), ("keep_start", ["123", "1+2"])])
def test_a_long_prompt_is_cut_on_the_configured_side_and_flagged(tiny_dir: Path, mode: str, kept: list[str]) -> None:
    model, tok = load_policy(str(tiny_dir))
    params = SamplingParams(num_generations=2, max_new_tokens=3, max_prompt_length=3, truncation_mode=mode)
    batch = HFRollout(model, tok).generate(["123+456=", "1+2=", "9="], params)
    ids = lambda text: tok.convert_tokens_to_ids(list(text))  # noqa: E731  (one token per character)
    pad = tok.pad_token_id
    expected = [ids(kept[0])] * 2 + [ids(kept[1])] * 2 + [[pad] + ids("9=")] * 2  # left-padded to 3
    assert batch.prompt_ids.tolist() == expected
    assert batch.prompt_mask.tolist() == [[1, 1, 1]] * 4 + [[0, 1, 1]] * 2
    assert batch.prompt_truncated.tolist() == [True] * 4 + [False] * 2
    assert batch.select(torch.tensor([5, 0])).prompt_truncated.tolist() == [False, True]


@pytest.mark.parametrize(
    "mode, variant", [("keep_end", "naive_grpo"), ("keep_start", "naive_grpo"), ("keep_end", "dapo")]
)
def test_over_long_prompts_are_counted_per_step_and_the_samples_show_the_cut(
    tiny_dir: Path, tmp_path: Path, mode: str, variant: str
) -> None:
    """Every generation draws all 8 prompts (8 groups of 2); the 4 long ones are cut to 6 tokens. DAPO's refills
    draw them again: each try's prompts count."""
    torch.manual_seed(0)
    model, tok = load_policy(str(tiny_dir))
    cfg = smoke_cfg(variant, per_device_train_batch_size=16, steps_per_generation=1, num_generations=2, max_steps=2,
                    save_steps=0, log_completions_per_step=8)  # fmt: skip
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, max_prompt_length=6, truncation_mode=mode))
    base = TASKS.get("addition").make(8, seed=0)
    long, short = "12345+67890=", "1+1="
    problems = [dataclasses.replace(p, prompt=long if i % 2 else short) for i, p in enumerate(base)]
    rows = OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), tmp_path, seed=0).train(progress=False)
    assert [r["prompts_truncated"] for r in rows] == [4 * (1 + r.get("refill_batches", 0)) for r in rows]
    assert variant != "dapo" or sum(r["refill_batches"] for r in rows) > 0  # the refills are exercised
    shown = {s["prompt"] for s in read_samples(tmp_path)}
    assert shown == {short, "67890=" if mode == "keep_end" else "12345+"}


def test_a_bad_truncation_mode_or_sample_count_is_a_config_error_naming_the_key() -> None:
    from repro.config import merged_paper_config, resolve
    from repro.schema import ConfigError

    raw = merged_paper_config(DAPO, "smoke", "dapo")
    raw["data"]["truncation_mode"] = "left"
    with pytest.raises(ConfigError, match=r"data\.truncation_mode: is 'left'; it must be keep_end .* or keep_start"):
        resolve(raw, "dapo")
    raw["data"].update(truncation_mode="keep_start", max_prompt_length=0)
    with pytest.raises(ConfigError, match=r"data\.max_prompt_length: is 0"):
        resolve(raw, "dapo")
    raw["data"]["max_prompt_length"] = 64
    assert resolve(raw, "dapo").data.truncation_mode == "keep_start"
    raw["train"]["log_completions_per_step"] = -1
    with pytest.raises(ConfigError, match=r"train\.log_completions_per_step: is -1; it must be at least 0"):
        resolve(raw, "dapo")
    assert load_paper_config(DAPO, "smoke", "dapo").data.truncation_mode == "keep_end"  # TRL's side for prompts
