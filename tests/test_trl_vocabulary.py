"""repro/trl_vocabulary.py is TRL 1.16's vocabulary: its field lists and defaults equal the installed TRL's."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from repro.trl_vocabulary import CONFIG_FIELDS, DEFAULTS_DIFFERING, TRAINING_ARGUMENTS, TRL_VERSION

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

SOURCES = {
    "online_rl": [("trl", "GRPOConfig"), ("trl", "RLOOConfig")],
    "preference": [("trl", "DPOConfig"), ("trl.experimental.cpo", "CPOConfig")],
    "sft": [("trl", "SFTConfig")],
    "reward_model": [("trl", "RewardConfig")],
    "distillation": [("trl.experimental.gkd", "GKDConfig")],
}


def _config(module: str, name: str) -> type:
    return getattr(importlib.import_module(module), name)


def test_the_installed_trl_is_the_one_the_vocabulary_was_taken_from() -> None:
    assert trl.__version__ == TRL_VERSION


def test_field_lists_equal_the_installed_trl() -> None:
    shared = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    assert shared == TRAINING_ARGUMENTS
    for kind, sources in SOURCES.items():
        own = set().union(*({f.name for f in dataclasses.fields(_config(*s))} for s in sources)) - shared
        assert own == CONFIG_FIELDS[kind], kind


def test_the_trl_defaults_we_say_differ_are_trls() -> None:
    for kind, keys in DEFAULTS_DIFFERING.items():
        fields = {f.name: f for f in dataclasses.fields(_config(*SOURCES[kind][0]))}
        for key, (trl_default, _why) in keys.items():
            assert fields[key].default == trl_default, (kind, key)
