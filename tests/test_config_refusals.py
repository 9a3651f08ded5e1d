"""Nothing silently ignored: each way a config used to be accepted and then ignored, misapplied or refused late
(issue 25) is now refused before any weights load with the file or key and the fix, or takes effect as TRL 1.16
gives it that name."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from repro.config import load_config_file, merged_paper_config, resolve
from repro.io import YamlFileError, read_yaml
from repro.schema import BOUNDS, SEED_MAX, ConfigError

PAPERS = Path(__file__).resolve().parents[1] / "papers"


def smoke(paper: str, variant: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A shipped smoke config with `sections` merged over it (train={...}, data={...})."""
    raw = copy.deepcopy(merged_paper_config(PAPERS / paper, "smoke", variant))
    for name, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(name, {}).update(values)
        else:
            raw[name] = values
    return raw


def refused(raw: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        resolve(raw, "test")


# ----------------------------------------------------------------------------------------------- YAML and layers


def test_yaml_errors_name_the_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  beta: [0.1, 0.2\n  epsilon: 0.2\n", encoding="utf-8")
    with pytest.raises(YamlFileError, match=rf"{broken}:3:\d+: not valid YAML"):
        read_yaml(broken)
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("train: !!python/object:os.system {}\n", encoding="utf-8")
    with pytest.raises(YamlFileError, match=rf"{tagged}:1:\d+: .*python/object.*only plain YAML"):
        read_yaml(tagged)


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("train:\n  beta: 0.1\n  epsilon: 0.2\n  beta: 0.04\n", encoding="utf-8")
    with pytest.raises(YamlFileError, match=rf"{path}:4:3: key 'beta' appears twice .*first on line 2.*keep one"):
        read_yaml(path)


def test_a_base_that_is_not_a_file_name_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("base: 5\ntrain: {max_steps: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"base: is 5; it must name the YAML file"):
        load_config_file(path)


def test_null_in_an_overlay_resets_a_lower_layers_setting_to_the_default() -> None:
    raw = smoke("on_policy_distillation", "on_policy", train={"beta": None})
    assert resolve(raw, "test").train.beta == 0.5  # GKD's default β


# ------------------------------------------------------------------------------------- numbers, NaN, ranges, seeds


@pytest.mark.parametrize("value", [float("inf"), float("nan"), "nan", "-inf"])
def test_nan_and_infinities_are_refused(value: Any) -> None:
    refused(smoke("dapo", "naive_grpo", train={"epsilon": value}), r"train.epsilon: .*NaN and infinities")
    refused(smoke("dpo", "dpo", train={"beta": value}), r"train.beta: .*NaN and infinities")
    # inside a free-form mapping too (a reward's parameters)
    rewards = {"correctness": {"weight": 1.0, "incorrect": value}}
    refused(smoke("dapo", "naive_grpo", rewards=rewards), r"rewards.correctness.incorrect: .*NaN|rewards.correctness")


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1])
def test_seeds_outside_32_bits_are_refused(seed: int) -> None:
    refused(smoke("dapo", "naive_grpo", seeds=[0, seed]), rf"seeds \({seed}\): is {seed}; it must be in \[0, ")
    refused(smoke("dpo", "dpo", data={"data_seed": seed}), r"data.data_seed: .*32-bit")


@pytest.mark.parametrize("length", [-3, 0])
def test_zero_or_negative_lengths_are_refused(length: int) -> None:
    refused(smoke("dapo", "naive_grpo", data={"max_prompt_length": length}), r"data.max_prompt_length: .*at least 1")
    refused(smoke("dpo", "dpo", data={"max_prompt_length": length}), r"data.max_prompt_length: .*at least 1")
    refused(smoke("dpo", "dpo", train={"max_completion_length": length}), r"train.max_completion_length: .*at least 1")
    refused(smoke("dft", "sft", train={"max_length": length}), r"train.max_length: .*at least 2")


RL, SFT, DPO = ("dapo", "naive_grpo"), ("dft", "sft"), ("dpo", "dpo")
GKD, RM = ("on_policy_distillation", "on_policy"), ("centered_rm", "rm")
# (run, key, a value just outside its range, the range as the message must state it): fields of every kind whose
# hand-written range check was a twin of BOUNDS' (now deleted), and the ranges BOUNDS tightened or annotated
BOUNDS_ONLY = [
    (RL, "train.learning_rate", 0.0, "positive"),
    (RL, "train.temperature", 0.0, "positive (sampling; greedy decoding (0) is not a rollout)"),
    (RL, "train.delta", 1.0, "> 1 (the two-sided clip δ; INTELLECT-2 uses 4)"),
    (RL, "train.mask_ratio", 1.5, "in [0, 1]"),
    (RL, "train.der_loss_weight1", -0.5, "at least 0 (the sign is in the loss)"),
    (RL, "train.rollout_correction_clip_min", -0.5, "at least 0"),
    (RL, "train.gfpo_retain", 1, "at least 2 (completions kept per group)"),
    (RL, "eval.k", 0, "at least 1"),
    (SFT, "train.max_length", 1, "at least 2 (tokens: one of the prompt and one of the completion; null = no limit)"),
    (SFT, "train.warmup_ratio", 1.0, "in [0, 1)"),
    (SFT, "bema.lag", 0, "at least 1"),
    (SFT, "bema.min_ema_multiplier", 1.5, "in [0, 1]"),
    (DPO, "train.beta", -0.1, "at least 0"),
    (DPO, "data.label_flip", 0.5, "in [0, 0.5)"),
    (DPO, "train.max_length", 1, "at least 2 (tokens"),
    (GKD, "train.lmbda", 1.5, "in [0, 1]"),
    (GKD, "train.top_p", 0.0, "in (0, 1]"),
    (GKD, "eval.target_gap_fraction", 0.0, "in (0, 1]"),
    (RM, "train.center_rewards_coefficient", -0.1, "at least 0 (η of the centring term; null switches it off"),
    (RM, "data.bt_temperature", 0.0, "positive"),
]


@pytest.mark.parametrize("run, key, value, allowed", BOUNDS_ONLY)
def test_a_value_outside_its_range_gets_the_bounds_message(
    run: tuple[str, str], key: str, value: float, allowed: str
) -> None:
    """Exactly BOUNDS' sentence, naming the key, the value and the range: no other check states a plain range."""
    section, name = key.split(".")
    with pytest.raises(ConfigError) as err:
        resolve(smoke(*run, **{section: {name: value}}), "test")
    assert str(err.value) == f"test: {key}: is {value!r}; it must be {BOUNDS[key].describe()}"
    assert str(err.value).startswith(f"test: {key}: is {value!r}; it must be {allowed}")


# A kind's own bound, stricter than BOUNDS' (which these values pass) or relating two fields, keeps its own reason.
STRICTER = [
    (RL, {"num_generations": 1}, r"train.num_generations: is 1; group advantages need at least 2"),
    (RL, {"gfpo_retain": 16, "num_generations": 8}, r"train.gfpo_retain: keeps 16 of num_generations=8"),
    (RL, {"rollout_correction_clip_min": 3.0, "rollout_correction_clip_max": 3.0}, r"clip_min < clip_max"),
    (DPO, {"beta": 0.0}, r"train.beta: is 0.0; β scales the implicit reward and must be positive"),
    (GKD, {"beta": 1.5}, r"train.beta: is 1.5; .*must lie in \[0, 1\]"),
]


@pytest.mark.parametrize("run, train, message", STRICTER)
def test_a_kinds_stricter_or_relational_bound_keeps_its_reason(
    run: tuple[str, str], train: dict[str, Any], message: str
) -> None:
    refused(smoke(*run, train=train), message)


# ------------------------------------------------------------------------------- keys that mean nothing are refused


@pytest.mark.parametrize(
    "loss,key,value",
    [
        ("sigmoid", "label_smoothing", 0.1),
        ("ipo", "label_smoothing", 0.1),
        ("hinge", "label_smoothing", 0.1),
        ("sigmoid", "simpo_gamma", 1.0),
        ("sigmoid", "alpha", 0.25),
        ("sigmoid", "discopop_tau", 0.1),
    ],
)
def test_a_preference_coefficient_its_loss_does_not_read_is_refused(loss: str, key: str, value: float) -> None:
    refused(smoke("dpo", "dpo", train={"loss_type": loss, key: value}), rf"train.{key}: .*has no effect")


def test_the_same_coefficients_are_accepted_where_their_loss_reads_them() -> None:
    cfg = resolve(smoke("dpo", "dpo", train={"loss_type": "robust", "label_smoothing": 0.1}), "test")
    assert cfg.train.label_smoothing == 0.1
    cfg = resolve(smoke("dpo", "dpo", train={"loss_type": "discopop", "discopop_tau": 0.1}), "test")
    assert cfg.train.discopop_tau == 0.1


def test_online_rl_keys_without_their_mechanism_are_refused() -> None:
    cispo = {"loss_type": "cispo", "epsilon_high": 5.0, "delta": 4.0}
    refused(smoke("dapo", "naive_grpo", train=cispo), r"train.delta: .*PPO-clip")
    refused(smoke("dapo", "naive_grpo", train={"gfpo_score": "reward_per_token"}), r"train.gfpo_score: .*gfpo_retain")
    refused(smoke("dapo", "naive_grpo", train={"warmup_steps": 5}), r"train.warmup_steps: .*constant_with_warmup")
    ok = resolve(smoke("dapo", "naive_grpo", train={"warmup_steps": 5, "lr_scheduler_type": "linear"}), "test")
    assert ok.train.warmup_steps == 5


# ------------------------------------------------------------------------------------------------ TRL vocabulary


def test_trl_names_not_implemented_here_say_so_instead_of_suggesting_another_key() -> None:
    with pytest.raises(ConfigError, match=r"train.num_train_epochs: a TRL 1.16.0 setting that is not implemented.*"
                       r"max_steps") as err:  # fmt: skip
        resolve(smoke("dapo", "naive_grpo", train={"num_train_epochs": 3}), "test")
    assert "num_iterations" not in str(err.value)
    refused(smoke("dpo", "dpo", train={"use_weighting": True}), r"train.use_weighting: a TRL .* not implemented")
    refused(smoke("dapo", "naive_grpo", train={"label_smoothing": 0.1}), r"TRL's name for a preference setting")


@pytest.mark.parametrize("loss", ["sapo", "luspo", "vespo"])
def test_trl_grpo_losses_the_harness_lacks_are_named_as_such(loss: str) -> None:
    refused(smoke("dapo", "naive_grpo", train={"loss_type": loss}), rf"'{loss}' is a TRL 1.16.0 loss .*not implemented")


def test_trl_flags_with_another_value_than_ours_are_refused_not_dropped(tmp_path: Path) -> None:
    import yaml

    def load(**train: Any) -> Any:
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(smoke("dapo", "naive_grpo", train=train)), encoding="utf-8")
        return load_config_file(path)

    assert load(bf16=False, report_to="none", logging_steps=1).train.max_steps > 0  # our behaviour: accepted
    for key, value, fix in [("bf16", True, "model.dtype: bfloat16"), ("logging_steps", 10, "every optimizer step"),
                            ("output_dir", "out", "the DAG chooses the run directory")]:  # fmt: skip
        with pytest.raises(ConfigError, match=rf"train.{key}: is .*{fix}"):
            load(**{key: value})


def test_loss_type_as_trls_one_item_list_is_that_loss() -> None:
    cfg = resolve(smoke("dpo", "dpo", train={"loss_type": ["sigmoid"]}), "test")
    assert cfg.train.loss_type == "sigmoid"


def test_mpo_loss_list_with_weights_sums_the_weighted_losses() -> None:
    from repro.losses.preference import PREFERENCE_LOSSES, PreferenceLogps, PreferenceParams, combined_loss

    train = {"loss_type": ["sigmoid", "bco_pair", "sft"], "loss_weights": [0.8, 0.2, 1.0]}
    cfg = resolve(smoke("dpo", "dpo", train=train), "test")
    assert cfg.train.loss_terms == [("sigmoid", 0.8), ("bco_pair", 0.2), ("sft", 1.0)]
    g = torch.Generator().manual_seed(0)
    x = PreferenceLogps(*(-torch.rand(4, generator=g) * 10 for _ in range(4)), torch.tensor([3.0, 4, 5, 6]),
                        torch.tensor([2.0, 2, 7, 1]))  # fmt: skip
    p = PreferenceParams(beta=0.1)
    got = combined_loss(cfg.train.loss_terms).fn(x, p).losses.mean()
    parts = {n: PREFERENCE_LOSSES.get(n).fn(x, p).losses.mean() for n in ("sigmoid", "bco_pair")}
    nll = -x.chosen.sum() / x.chosen_lengths.sum()  # TRL's sft term: token mean of the chosen NLL
    assert torch.allclose(got, 0.8 * parts["sigmoid"] + 0.2 * parts["bco_pair"] + nll)
    refused(smoke("dpo", "dpo", train={"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]}), r"one per loss_type")


def test_cpo_alpha_follows_trl_simpo_default_one_alphapo_zero() -> None:
    simpo = resolve(smoke("alphapo", "alphapo", train={"loss_type": "simpo"}), "test")
    assert simpo.train.cpo_alpha == 1.0 and simpo.train.loss_terms[-1] == ("sft", 1.0)
    alphapo = resolve(smoke("alphapo", "alphapo"), "test")
    assert alphapo.train.cpo_alpha == 0.0 and [n for n, _ in alphapo.train.loss_terms] == ["alphapo"]
    refused(smoke("alphapo", "alphapo", train={"cpo_alpha": 1.0}), r"train.cpo_alpha: .*sets it to 0 for .*alphapo")
    refused(smoke("dpo", "dpo", train={"cpo_alpha": 0.5}), r"train.cpo_alpha: .*\[<loss>, sft\]")


def test_defaults_that_differ_from_trl_are_named_in_the_resolved_config(tmp_path: Path) -> None:
    from repro.runs import write_resolved

    write_resolved(tmp_path, resolve(smoke("dapo", "naive_grpo"), "test"))
    header = (tmp_path / "config.resolved.yaml").read_text(encoding="utf-8").split("\nmodel:")[0]
    assert "train.lr_scheduler_type: 'constant' here, 'linear' in TRL 1.16.0" in header
    assert "train.max_completion_length" not in header  # the smoke tier sets it (to its own value)


# ----------------------------------------------------------------------- found by `repro check`, not by `train`


def test_check_refuses_vllm_where_it_is_not_installed(standin_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from repro.preflight import check_sources

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    cfg = resolve(smoke("dapo", "naive_grpo", train={"rollout_backend": "vllm"}), "test")
    with pytest.raises(ConfigError, match=r"train.use_vllm / train.rollout_backend: vllm is not installed"):
        check_sources(cfg, "test")


def test_check_refuses_papo_losses_on_a_text_model(standin_dir: str) -> None:
    from repro.preflight import check_sources

    raw = smoke("papo", "papo", model={"name_or_path": standin_dir}, train={"perception_loss_weight": 0.1})
    cfg = resolve(raw, "test")
    with pytest.raises(ConfigError, match=r"train.perception_loss_weight: PAPO's losses need a vision-language"):
        check_sources(cfg, "test")
