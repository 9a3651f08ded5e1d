"""The trainer kinds a paper config can select with its top-level `trainer:` key.

`online_rl` (the default, repro/config.py RunConfig) is built in. Every other kind names, as
"module:attribute" strings so that nothing heavy is imported until a run of that kind is resolved:
- `config`: its frozen run-config dataclass (config.resolved.yaml is read back into it);
- `resolve`: `(raw mapping, where) -> config`, validating with fix-it messages (ConfigError);
- `train`: `(cfg, paper, tier, variant, seed, out_dir, model_path) -> summary dict` (the `train` verb);
- `evaluate`: `(run_dir, cfg, out_path) -> eval dict` (the `eval` verb), written atomically to out_path;
- `data_parallel`: whether its loop shards a global batch over processes (repro/distributed.py), so that it may run
  under `accelerate launch`; a kind without it refuses a multi-process launch;
- `samples`: whether it samples completions during training, so that several processes need each prompt sampled
  from its own seed (`train.rollout_seeding: per_group`) to sample what one process would.

A new kind is one entry here plus its modules; repro/config.py and repro/runs.py dispatch through it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

ONLINE_RL = "online_rl"


@dataclass(frozen=True)
class TrainerKind:
    name: str
    config: str
    resolve: str
    train: str
    evaluate: str
    data_parallel: bool = False
    samples: bool = False

    def load(self, role: str) -> Any:
        """The object behind one of the "module:attribute" fields (config, resolve, train, evaluate)."""
        module, attribute = getattr(self, role).split(":")
        return getattr(importlib.import_module(module), attribute)


TRAINER_KINDS: dict[str, TrainerKind] = {
    "preference": TrainerKind(
        "preference",
        config="repro.preference_config:PreferenceRunConfig",
        resolve="repro.preference_config:resolve_preference",
        train="repro.runs_preference:train_preference_run",
        evaluate="repro.runs_preference:eval_preference_run",
        data_parallel=True,
    ),
    "sft": TrainerKind(
        "sft",
        config="repro.sft_config:SFTRunConfig",
        resolve="repro.sft_config:resolve_sft",
        train="repro.runs_sft:train_sft_run",
        evaluate="repro.runs_sft:eval_sft_run",
        data_parallel=True,
    ),
    "distillation": TrainerKind(
        "distillation",
        config="repro.distillation_config:DistillationRunConfig",
        resolve="repro.distillation_config:resolve_distillation",
        train="repro.runs_distillation:train_distillation_run",
        evaluate="repro.runs_distillation:eval_distillation_run",
        data_parallel=True,
        samples=True,
    ),
    "reward_model": TrainerKind(
        "reward_model",
        config="repro.reward_model_config:RewardRunConfig",
        resolve="repro.reward_model_config:resolve_reward_model",
        train="repro.runs_reward_model:train_reward_model_run",
        evaluate="repro.runs_reward_model:eval_reward_model_run",
        data_parallel=True,
    ),
}


def trainer_kind(name: str, where: str) -> TrainerKind:
    """The registered kind `name`; a ConfigError listing the valid names otherwise."""
    if name not in TRAINER_KINDS:
        from repro.registry import unknown_name_message
        from repro.schema import ConfigError

        raise ConfigError(f"{where}: trainer: " + unknown_name_message("trainer", name, [ONLINE_RL, *TRAINER_KINDS]))
    return TRAINER_KINDS[name]


def shards_batch(name: str) -> bool:
    """Whether the trainer kind `name` runs data parallel (online RL, the built-in kind, does)."""
    return name == ONLINE_RL or (name in TRAINER_KINDS and TRAINER_KINDS[name].data_parallel)


def samples_during_training(name: str) -> bool:
    """Whether the trainer kind `name` samples completions while it trains (online RL, distillation)."""
    return name == ONLINE_RL or (name in TRAINER_KINDS and TRAINER_KINDS[name].samples)


def kind_of(cfg: Any) -> TrainerKind | None:
    """The kind of a resolved config; None for an online-RL RunConfig (which has no `trainer` field)."""
    name = getattr(cfg, "trainer", ONLINE_RL)
    return None if name == ONLINE_RL else TRAINER_KINDS[name]
