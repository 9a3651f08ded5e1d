"""Config loading: overlays, TRL vocabulary, presets, and fix-it errors before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from repro.config import deep_merge, load_config_file, load_paper_config, read_layer
from repro.schema import ConfigError

DAPO = Path(__file__).resolve().parents[1] / "papers" / "dapo"

MINIMAL = {
    "model": {"name_or_path": "some/model"},
    "data": {"prompts": "synthetic:addition"},
    "train": {"max_steps": 10, "learning_rate": 1e-4, "num_generations": 4, "per_device_train_batch_size": 8},
    "rewards": {"correctness": {"weight": 1.0}},
}


def write(tmp_path: Path, data: dict, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def with_train(**train) -> dict:
    return deep_merge(MINIMAL, {"train": train})


def test_preset_fills_unset_axes_and_explicit_axes_win(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path, with_train(loss_type="dr_grpo")))
    assert (cfg.train.aggregation, cfg.train.scale_rewards) == ("constant_length", "none")
    cfg = load_config_file(write(tmp_path, with_train(loss_type="dr_grpo", scale_rewards="group")))
    assert (cfg.train.aggregation, cfg.train.scale_rewards) == ("constant_length", "group")


def test_trl_names_are_accepted_and_mapped(tmp_path: Path) -> None:
    raw = with_train(num_completions=4, max_prompt_length=64, bf16=False, report_to="none")
    raw["train"].pop("num_generations")
    cfg = load_config_file(write(tmp_path, raw))
    assert cfg.train.num_generations == 4
    assert cfg.data.max_prompt_length == 64


def test_unknown_key_suggests_the_close_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'train.epsilon_hihg'.*Did you mean 'epsilon_high'"):
        load_config_file(write(tmp_path, with_train(epsilon_hihg=0.28)))


def test_unknown_loss_type_suggests_the_close_preset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train.loss_type.*'dapoo'.*Did you mean 'dapo'"):
        load_config_file(write(tmp_path, with_train(loss_type="dapoo")))


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train.num_generations must be an integer, got 'eight'"):
        load_config_file(write(tmp_path, with_train(num_generations="eight")))


def test_batch_not_divisible_by_num_generations_says_how_to_fix(tmp_path: Path) -> None:
    raw = with_train(num_generations=3, per_device_train_batch_size=8, steps_per_generation=1)
    with pytest.raises(ConfigError, match=r"8 × 1 = 8\) must be divisible by num_generations=3"):
        load_config_file(write(tmp_path, raw))


def test_single_generation_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"num_generations: is 1; group advantages need at least 2"):
        load_config_file(write(tmp_path, with_train(num_generations=1, per_device_train_batch_size=1)))


def test_cispo_needs_an_absolute_cap(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"CISPO needs epsilon_high"):
        load_config_file(write(tmp_path, with_train(loss_type="cispo")))


def test_unknown_reward_and_reward_parameter(tmp_path: Path) -> None:
    raw = deep_merge(MINIMAL, {"rewards": {"corectness": {"weight": 1.0}}})
    with pytest.raises(ConfigError, match=r"Did you mean 'correctness'"):
        load_config_file(write(tmp_path, raw))
    raw = deep_merge(MINIMAL, {"rewards": {"soft_overlong_punishment": {"cahce": 4}}})
    with pytest.raises(ConfigError, match=r"rewards.soft_overlong_punishment.cahce: unknown parameter"):
        load_config_file(write(tmp_path, raw))


def test_base_overlay_chain_and_null_removes_a_reward(tmp_path: Path) -> None:
    base = deep_merge(MINIMAL, {"rewards": {"format": {"weight": 0.5}}})
    write(tmp_path, base, "base.yaml")
    write(tmp_path, {"base": "base.yaml", "train": {"epsilon_high": 0.28}, "rewards": {"format": None}}, "child.yaml")
    cfg = load_config_file(tmp_path / "child.yaml")
    assert cfg.train.epsilon_high == 0.28 and cfg.train.learning_rate == 1e-4
    assert set(cfg.rewards) == {"correctness"}


def test_base_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path, {"base": "b.yaml"}, "a.yaml")
    write(tmp_path, {"base": "a.yaml"}, "b.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        read_layer(tmp_path / "a.yaml")


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path, MINIMAL))
    with pytest.raises(AttributeError):
        cfg.train.beta = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("tier", ["smoke", "small", "paper"])
def test_every_dapo_variant_resolves_at_every_tier(tier: str) -> None:
    variants = yaml.safe_load((DAPO / "paper.yaml").read_text())["variants"]
    for variant in variants:
        cfg = load_paper_config(DAPO, tier, variant)
        assert cfg.train.num_generations >= 2


def test_dapo_ablation_rows_switch_one_mechanism_each() -> None:
    rows = {
        v: load_paper_config(DAPO, "smoke", v).train
        for v in ["naive_grpo", "overlong_filtering", "clip_higher", "token_level_loss", "dapo"]
    }
    assert rows["naive_grpo"].epsilon_high_value == 0.2 and not rows["naive_grpo"].mask_truncated_completions
    assert (
        rows["overlong_filtering"].mask_truncated_completions and rows["overlong_filtering"].epsilon_high_value == 0.2
    )
    assert rows["clip_higher"].epsilon_high_value == 0.28
    assert (rows["clip_higher"].aggregation, rows["token_level_loss"].aggregation) == (
        "sequence_mean",
        "global_token_mean",
    )
    assert not rows["token_level_loss"].dynamic_sampling and rows["dapo"].dynamic_sampling
    soft = {
        v: load_paper_config(DAPO, "smoke", v).rewards["soft_overlong_punishment"]["weight"]
        for v in ["clip_higher", "soft_overlong"]
    }
    assert soft == {"clip_higher": 0.0, "soft_overlong": 1.0}


def test_paper_tier_keeps_the_seed_settings() -> None:
    cfg = load_paper_config(DAPO, "paper", "dapo")
    t = cfg.train
    assert (t.loss_type, t.epsilon, t.epsilon_high, t.beta) == ("dapo", 0.2, 0.28, 0.0)
    assert (t.num_generations, t.max_completion_length) == (16, 20480)
    processes = cfg.resources.gpus * cfg.resources.nodes  # 128, sharded (§4.1's batch, split over them)
    assert t.per_device_train_batch_size * processes * t.spg == 512 * 16  # 512 prompts × 16 per rollout
    assert t.per_device_train_batch_size * processes * t.gradient_accumulation_steps == 512  # mini-batch 512
    assert t.mask_truncated_completions and t.dynamic_sampling
    assert (t.rollout_seeding, cfg.resources.data_parallel) == ("per_group", "fsdp")


def test_unknown_variant_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"Did you mean 'clip_higher'"):
        load_paper_config(DAPO, "smoke", "clip_highr")


def test_soft_overlong_cache_must_fit_inside_the_length(tmp_path: Path) -> None:
    raw = deep_merge(with_train(max_completion_length=8), {"rewards": {"soft_overlong_punishment": {"cache": 8}}})
    with pytest.raises(ConfigError, match=r"cache: is 8; it must be an integer in \[0, 8\)"):
        load_config_file(write(tmp_path, raw))


def test_unknown_paper_and_tier_suggest_close_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown paper 'dapoo'. Did you mean 'dapo'"):
        load_paper_config(DAPO.parent / "dapoo", "smoke", "dapo")
    with pytest.raises(ConfigError, match=r"unknown tier 'smok'. Did you mean 'smoke'"):
        load_paper_config(DAPO, "smok", "dapo")


def test_synthetic_evaluation_cannot_overlap_training(tmp_path: Path) -> None:
    raw = deep_merge(MINIMAL, {"eval": {"task": "addition", "n_problems": 500}})
    with pytest.raises(ConfigError, match=r"n_problems ≤ 200"):
        load_config_file(write(tmp_path, raw))


def test_trl_importance_sampling_names_map_onto_the_rollout_correction(tmp_path: Path) -> None:
    seed = load_config_file(write(tmp_path, with_train(vllm_importance_sampling_correction=True,
                                                       vllm_importance_sampling_cap=2.0)))  # fmt: skip
    assert (seed.train.rollout_correction, seed.train.rollout_correction_clip_max) == ("sequence_mask", 2.0)
    token = with_train(vllm_importance_sampling_correction=True, vllm_importance_sampling_mode="token_truncate",
                       vllm_importance_sampling_clip_min=0.5)  # fmt: skip
    cfg = load_config_file(write(tmp_path, token))
    assert (cfg.train.rollout_correction, cfg.train.rollout_correction_clip_min) == ("token_truncate", 0.5)
    off = load_config_file(write(tmp_path, with_train(vllm_importance_sampling_correction=False)))
    assert off.train.rollout_correction == "none"
    with pytest.raises(ConfigError, match="Did you mean 'token_truncate'"):
        load_config_file(write(tmp_path, with_train(rollout_correction="token_truncated")))
    with pytest.raises(ConfigError, match="clip_min < clip_max"):
        load_config_file(write(tmp_path, with_train(rollout_correction_clip_min=3.0, rollout_correction_clip_max=2.0)))


def test_gfpo_retain_must_fit_in_the_group(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path, with_train(gfpo_retain=2, gfpo_score="reward_per_token")))
    assert cfg.train.update_group_size == 2 and cfg.train.num_generations == MINIMAL["train"]["num_generations"]
    with pytest.raises(ConfigError, match=r"train.gfpo_retain: is 1; it must be at least 2"):
        load_config_file(write(tmp_path, with_train(gfpo_retain=1)))
    with pytest.raises(ConfigError, match="need 2 <= k <= G"):
        load_config_file(write(tmp_path, with_train(gfpo_retain=5)))
    with pytest.raises(ConfigError, match="Did you mean 'length'"):
        load_config_file(write(tmp_path, with_train(gfpo_retain=2, gfpo_score="lenght")))


def test_rollout_backend_options_are_checked(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path, with_train(rollout_backend="hf_mismatch",
                                                      rollout_options={"dtype": "bfloat16", "noise_std": 0.01})))  # fmt: skip
    assert cfg.train.rollout_options == {"dtype": "bfloat16", "noise_std": 0.01}
    with pytest.raises(ConfigError, match="takes dtype, noise_std, seed, not noise"):
        load_config_file(write(tmp_path, with_train(rollout_backend="hf_mismatch", rollout_options={"noise": 0.1})))
    with pytest.raises(ConfigError, match="Did you mean 'hf_mismatch'"):
        load_config_file(write(tmp_path, with_train(rollout_backend="hf_mismatched")))


def test_use_vllm_names_the_vllm_backend_which_says_what_to_use_instead(tmp_path: Path) -> None:
    from repro.rollout.hf import make_backend

    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump(with_train(use_vllm=True)), encoding="utf-8")
    assert load_config_file(paper).train.rollout_backend == "vllm"
    assert load_config_file(write(tmp_path, with_train(use_vllm=False))).train.rollout_backend == "hf"
    smoke = {"base": "paper.yaml", "train": {"rollout_backend": "hf_mismatch"}}  # a tier overlay swaps it
    assert load_config_file(write(tmp_path, smoke, "smoke.yaml")).train.rollout_backend == "hf_mismatch"
    with pytest.raises(ConfigError, match="rollout_backend: hf"):
        make_backend("vllm", model=None, tokenizer=None)


def test_grad_variance_and_fp32_head_options(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path, with_train(grad_variance_every=5, cast_lm_head_to_fp32=True)))
    assert (cfg.train.grad_variance_every, cfg.train.cast_lm_head_to_fp32) == (5, True)
    with pytest.raises(ConfigError, match="at least 2 prompts per generation"):
        load_config_file(write(tmp_path, with_train(grad_variance_every=1, per_device_train_batch_size=4)))
    with pytest.raises(ConfigError, match="grad_variance_every: is -1"):
        load_config_file(write(tmp_path, with_train(grad_variance_every=-1)))


def test_an_unknown_trainer_kind_lists_the_registered_ones() -> None:
    from repro.config import resolve
    from repro.schema import ConfigError

    with pytest.raises(ConfigError, match=r"trainer: unknown trainer 'prefrence'.*Did you mean 'preference'"):
        resolve({"trainer": "prefrence"}, "cfg.yaml")


def test_a_variants_tiers_block_applies_at_its_tier_only(tmp_path: Path) -> None:
    import shutil

    bco = Path(__file__).resolve().parents[1] / "papers" / "bco"
    by_tier = {t: load_paper_config(bco, t, "bco_unpaired").train for t in ("smoke", "nightly", "paper")}
    assert by_tier["paper"].per_device_train_batch_size == 8  # × 8 GPUs × GA 2 = the seed's 128
    assert by_tier["smoke"].per_device_train_batch_size == by_tier["nightly"].per_device_train_batch_size == 64
    assert {t.gradient_accumulation_steps for t in by_tier.values()} == {2}
    paper = tmp_path / "bco"
    shutil.copytree(bco, paper)
    variant = paper / "configs" / "variants" / "bco_unpaired.yaml"
    raw = yaml.safe_load(variant.read_text(encoding="utf-8"))
    for bad, message in [({"huge": {}}, "must map tier names"), ({"paper": 8}, "tiers.paper: must be a mapping")]:
        variant.write_text(yaml.safe_dump({**raw, "tiers": bad}), encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_paper_config(paper, "paper", "bco_unpaired")
