"""Malformed configs over every key of every trainer kind are refused before any model loads, naming the key.

For each kind, a shipped paper config is the valid starting point; every field of the kind's config tree is then
given a value of the wrong type, each value just outside its bound (repro/schema.py BOUNDS), NaN and ±inf, and every
section an unknown key; and every key that means nothing in that config (repro/relevance.py) a non-default value.
Each case must raise ConfigError from config validation (what `repro check` and `train` run before weights load)
with the key in the message. The number of cases is printed (pytest -s) and bounded below.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import pytest

from repro.config import merged_paper_config, resolve
from repro.relevance import RULES
from repro.schema import BOUNDS, ConfigError
from repro.trainer_kinds import ONLINE_RL, TRAINER_KINDS

PAPERS = Path(__file__).resolve().parents[1] / "papers"
# one shipped (paper, variant) per kind: a valid config to start from
START = {
    ONLINE_RL: ("dapo", "naive_grpo"),
    "preference": ("dpo", "dpo"),
    "sft": ("dft", "sft"),
    "reward_model": ("centered_rm", "rm"),
    "distillation": ("on_policy_distillation", "on_policy"),
}
SKIP = {"trainer", "description"}  # the kind's own tag; free text


def _run_config(kind: str) -> type:
    if kind == ONLINE_RL:
        from repro.config import RunConfig

        return RunConfig
    return TRAINER_KINDS[kind].load("config")


def _start(kind: str) -> dict[str, Any]:
    paper, variant = START[kind]
    return merged_paper_config(PAPERS / paper, "smoke", variant)


def _leaves(cls: type, path: str = "") -> list[tuple[str, Any]]:
    """(dotted key, type) of every field in a config dataclass tree (sections descended into)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp, dotted = hints[f.name], f"{path}{f.name}"
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        section = next((a for a in [tp, *inner] if dataclasses.is_dataclass(a)), None)
        if section is not None:
            out += _leaves(section, dotted + ".")
        elif f.name not in SKIP:
            out.append((dotted, tp))
    return out


def _base_type(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return options[0] if len(options) == 1 else tp
    return tp


def _wrong_values(tp: Any) -> list[Any]:
    base = _base_type(tp)
    origin = typing.get_origin(base)
    if base is bool:
        return ["yes", 1]
    if base in (int, float):
        return ["many", True, [1]] + ([2.5] if base is int else [])
    if base is str:
        return [7, ["a"]]
    if origin is Literal:
        return ["no_such_choice", 3]
    if origin in (list, tuple):
        return [5, "text"]
    if origin is dict:
        return [5, "text", [1]]
    if origin in (Union, types.UnionType):  # e.g. str | list[str]
        return [7, {"a": 1}]
    return []


def _numeric(tp: Any) -> type | None:
    base = _base_type(tp)
    if base in (int, float):
        return base
    if typing.get_origin(base) is list and typing.get_args(base) and typing.get_args(base)[0] in (int, float):
        return typing.get_args(base)[0]
    return None


def _set(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(raw)
    node = out
    *sections, leaf = dotted.split(".")
    for name in sections:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            return out
    node[leaf] = value
    return out


def _cases(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(key the error must name, what was done, the malformed mapping)."""
    raw = _start(kind)
    cases = []
    for dotted, tp in _leaves(_run_config(kind)):
        for value in _wrong_values(tp):
            cases.append((dotted, f"wrong type {value!r}", _set(raw, dotted, value)))
        number = _numeric(tp)
        if number is None:
            continue
        as_list = typing.get_origin(_base_type(tp)) is list
        for value in (math.nan, math.inf, -math.inf):
            cases.append((dotted, f"non-finite {value}", _set(raw, dotted, [value] if as_list else value)))
        bound = BOUNDS[dotted]
        for value in bound.outside(integer=number is int):
            cases.append((dotted, f"out of range {value}", _set(raw, dotted, [value] if as_list else value)))
    for section in {d.split(".")[0] for d, _ in _leaves(_run_config(kind)) if "." in d}:
        cases.append((f"{section}.zz_not_a_key", "unknown key", _set(raw, f"{section}.zz_not_a_key", 1)))
    cfg = resolve(raw, "start")
    for rule in RULES[kind]:
        if not rule.applies(cfg):
            section, name = rule.key.split(".")
            current = getattr(getattr(cfg, section), name)
            value = _irrelevant_value(current)
            cases.append((rule.key, f"irrelevant {value!r}", _set(raw, rule.key, value)))
    return cases


def _irrelevant_value(current: Any) -> Any:
    if isinstance(current, bool):
        return not current
    if isinstance(current, int | float):
        return current + 3 if current > 1 else 0.3  # in range for every bounded key the rules name
    if isinstance(current, list):
        return ["mean"]
    return "other"


@pytest.fixture()
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded while validating a config")

    for auto in ("AutoModelForCausalLM", "AutoModel", "AutoTokenizer", "AutoConfig"):
        monkeypatch.setattr(getattr(transformers, auto), "from_pretrained", refuse)


def test_every_numeric_field_of_every_kind_has_a_bound() -> None:
    missing = [
        f"{kind}: {dotted}"
        for kind in START
        for dotted, tp in _leaves(_run_config(kind))
        if _numeric(tp) is not None and dotted not in BOUNDS
    ]
    assert not missing, f"give these fields a range in repro/schema.py BOUNDS: {missing}"


def test_malformed_configs_of_every_kind_are_refused_naming_the_key(no_model_loads: None) -> None:
    accepted, unnamed, total = [], [], 0
    for kind in START:
        for key, what, raw in _cases(kind):
            total += 1
            try:
                resolve(raw, f"{kind} fuzz")
            except ConfigError as err:
                leaf = key.split(".")[-1]
                if key not in str(err) and leaf not in str(err):
                    unnamed.append(f"{kind} {key} ({what}): {err}")
            else:
                accepted.append(f"{kind} {key} ({what})")
    print(f"config fuzz: {total} malformed configs over {len(START)} trainer kinds")
    assert not accepted, f"{len(accepted)} malformed configs were accepted: {accepted[:30]}"
    assert not unnamed, f"{len(unnamed)} errors do not name the key: {unnamed[:10]}"
    assert total > 800  # every kind's every field: a shrinking count means fields stopped being generated


# (kind, key): a kind's own check that refuses a value just outside the key's BOUNDS range, and why it is no twin of it
# (a stricter bound for this kind, or a check relating the key to another setting that the value also breaks).
OWN_CHECKS = {
    (ONLINE_RL, "train.num_generations"): "group advantages need at least 2 completions (BOUNDS: at least 1)",
    (ONLINE_RL, "train.max_completion_length"): "soft_overlong_punishment's cache must be below the length",
    (ONLINE_RL, "eval.seed"): "a synthetic held-out set is drawn with its one seed",
    ("sft", "eval.seed"): "a synthetic held-out set is drawn with its one seed",
    ("preference", "train.beta"): "β > 0 scales the implicit reward (BOUNDS: ≥ 0, which online RL's KL needs)",
    ("preference", "train.cpo_alpha"): "any cpo_alpha but 0 is refused outside loss_type simpo",
}


def _kind_check(kind: str) -> Any:
    """The kind's own checks, run by its resolve after from_dict has checked every BOUNDS range."""
    import importlib

    module = "repro.config" if kind == ONLINE_RL else TRAINER_KINDS[kind].resolve.split(":")[0]
    return importlib.import_module(module)._check


def _replace(cfg: Any, dotted: str, value: Any) -> Any:
    """`cfg` with one field set, past from_dict (so past BOUNDS); an unset section (e.g. bema) gets its defaults."""
    name, _, rest = dotted.partition(".")
    if not rest:
        return dataclasses.replace(cfg, **{name: value})
    section = getattr(cfg, name)
    if section is None:
        tp = typing.get_type_hints(type(cfg))[name]
        section = next(a for a in typing.get_args(tp) if dataclasses.is_dataclass(a))()
    return dataclasses.replace(cfg, **{name: _replace(section, rest, value)})


def test_no_kind_restates_a_bounds_range() -> None:
    """A value only BOUNDS excludes, handed to a kind's own checks directly, is not refused again there: a plain range
    lives in repro/schema.py only, and a hand-written twin (dead code that drifts from BOUNDS) fails here."""
    refused: dict[tuple[str, str], str] = {}
    for kind in START:
        cfg, check = resolve(_start(kind), "start"), _kind_check(kind)
        check(cfg, "start")  # the starting point passes
        for dotted, tp in _leaves(_run_config(kind)):
            number = _numeric(tp)
            if number is None:
                continue
            as_list = typing.get_origin(_base_type(tp)) is list
            for value in BOUNDS[dotted].outside(integer=number is int):
                try:
                    check(_replace(cfg, dotted, [value] if as_list else value), "twin")
                except ConfigError as err:
                    refused[(kind, dotted)] = str(err)
                except ZeroDivisionError:
                    pass  # a divisibility check dividing by a count of 0: BOUNDS' at least 1 keeps it from it
    twins = {k: v for k, v in refused.items() if k not in OWN_CHECKS}
    assert not twins, f"a kind's checks restate a BOUNDS range (delete them, or list them in OWN_CHECKS): {twins}"
    stale = sorted(set(OWN_CHECKS) - set(refused))
    assert not stale, f"OWN_CHECKS lists checks that no longer refuse a value outside BOUNDS: {stale}"
