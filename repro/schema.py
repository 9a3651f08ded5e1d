"""Strict conversion of plain YAML data into frozen dataclasses.

Unknown keys (with did-you-mean), wrong types and missing required keys raise ConfigError naming
the file and the dotted key path, before anything expensive happens.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; the message names the field and how to fix it."""


SEED_MAX = 2**32 - 1  # numpy's and torch's seeds are unsigned 32-bit


@dataclass(frozen=True)
class Bound:
    """The range a numeric config field must lie in: [low, high], an end excluded where `*_open`, None = unbounded.
    Every value is also finite (NaN and infinities are refused before any bound is looked at)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""  # what the ends mean, e.g. "0 = off"

    def ok(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            text = (
                f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"
            )
        elif self.low is not None:
            text = (
                ("positive" if self.low == 0 else f"> {_num(self.low)}")
                if self.low_open
                else f"at least {_num(self.low)}"
            )
        elif self.high is not None:
            text = f"{'<' if self.high_open else '≤'} {_num(self.high)}"
        else:
            text = "a finite number"
        return f"{text} ({self.note})" if self.note else text

    def outside(self, integer: bool) -> list[float]:
        """Values just outside the range (what a fuzz test feeds the field)."""
        step = 1 if integer else 1e-3
        values = []
        if self.low is not None:
            values.append(self.low if self.low_open else self.low - step)
        if self.high is not None:
            values.append(self.high if self.high_open else self.high + step)
        return [int(v) if integer else float(v) for v in values]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else str(value)


AT_LEAST_1 = Bound(1)
NON_NEGATIVE = Bound(0)
POSITIVE = Bound(0, low_open=True)
SHARE = Bound(0, 1)  # a probability or share in [0, 1]
UNIT_OPEN = Bound(0, 1, high_open=True)  # [0, 1)
SEED = Bound(0, SEED_MAX, note="a 32-bit unsigned seed")
ANY = Bound()

# The bound of every numeric config field of every trainer kind, by dotted key ("seeds" bounds each listed seed). A
# kind's own checks may be stricter (e.g. a preference β > 0, an online-RL group of at least 2) or relate two fields;
# a plain range is stated here only. None (unset) passes. tests/test_config_key_fuzz.py fails when a numeric field has
# no entry here (a new field must say its range) and when a kind's own checks refuse a value only this range excludes.
BOUNDS: dict[str, Bound] = {
    "seeds": SEED,
    "resources.gpus": NON_NEGATIVE,
    "resources.nodes": AT_LEAST_1,
    "resources.threads": AT_LEAST_1,
    "resources.mem_mb": AT_LEAST_1,
    "resources.runtime_min": AT_LEAST_1,
    "data.limit": AT_LEAST_1,
    "data.n_train": AT_LEAST_1,
    "data.max_prompt_length": Bound(1, note="tokens; null = no limit"),
    "data.data_seed": SEED,
    "data.bt_temperature": POSITIVE,
    "data.label_flip": Bound(0, 0.5, high_open=True),
    "data.thumbs_up_threshold": ANY,
    "train.max_steps": AT_LEAST_1,
    "train.learning_rate": POSITIVE,
    "train.beta": NON_NEGATIVE,
    "train.alpha": ANY,
    "train.cpo_alpha": NON_NEGATIVE,
    "train.loss_weights": ANY,
    "train.simpo_gamma": NON_NEGATIVE,
    "train.label_smoothing": UNIT_OPEN,
    "train.discopop_tau": POSITIVE,
    "train.center_rewards_coefficient": Bound(0, note="η of the centring term; null switches it off; TRL: 0.01"),
    "train.delta": Bound(1, low_open=True, note="the two-sided clip δ; INTELLECT-2 uses 4"),
    "train.epsilon": NON_NEGATIVE,
    "train.epsilon_high": NON_NEGATIVE,
    "train.der_loss_weight1": Bound(0, note="the sign is in the loss"),
    "train.der_loss_weight2": Bound(0, note="the sign is in the loss"),
    "train.perception_loss_weight": Bound(0, note="the sign is in the loss"),
    "train.perception_kl_clip": POSITIVE,
    "train.mask_ratio": SHARE,
    "train.mask_patch_size": AT_LEAST_1,
    "train.dynamic_sampling_max_tries": AT_LEAST_1,
    "train.gfpo_retain": Bound(2, note="completions kept per group"),
    "train.grad_variance_every": Bound(0, note="0 = off"),
    "train.gradient_accumulation_steps": AT_LEAST_1,
    "train.steps_per_generation": AT_LEAST_1,
    "train.per_device_train_batch_size": AT_LEAST_1,
    "train.num_generations": AT_LEAST_1,
    "train.num_iterations": AT_LEAST_1,
    "train.max_completion_length": Bound(1, note="tokens"),
    "train.max_length": Bound(2, note="tokens: one of the prompt and one of the completion; null = no limit"),
    "train.max_new_tokens": AT_LEAST_1,
    "train.temperature": Bound(0, low_open=True, note="sampling; greedy decoding (0) is not a rollout"),
    "train.loss_temperature": POSITIVE,
    "train.top_p": Bound(0, 1, low_open=True),
    "train.top_k": Bound(0, note="0 = off"),
    "train.lmbda": SHARE,
    "train.rollout_correction_clip_max": POSITIVE,
    "train.rollout_correction_clip_min": NON_NEGATIVE,
    "train.adam_beta1": UNIT_OPEN,
    "train.adam_beta2": UNIT_OPEN,
    "train.weight_decay": NON_NEGATIVE,
    "train.max_grad_norm": Bound(0, low_open=True, note="the clip threshold of the gradient norm"),
    "train.warmup_steps": NON_NEGATIVE,
    "train.warmup_ratio": UNIT_OPEN,
    "train.save_steps": Bound(0, note="0 = no checkpoint until the end"),
    "train.num_threads": Bound(0, note="0 = resources.threads"),
    "train.eval_every": Bound(0, note="0 = off"),
    "train.eval_problems": AT_LEAST_1,
    "train.eval_prompts": AT_LEAST_1,
    "train.eval_samples": AT_LEAST_1,
    "train.log_completions_per_step": Bound(0, note="0 = off"),
    "bema.update_freq": AT_LEAST_1,
    "bema.ema_power": NON_NEGATIVE,
    "bema.bias_power": NON_NEGATIVE,
    "bema.lag": AT_LEAST_1,
    "bema.update_after": NON_NEGATIVE,
    "bema.multiplier": POSITIVE,
    "bema.min_ema_multiplier": SHARE,
    "eval.n_problems": AT_LEAST_1,
    "eval.n_prompts": AT_LEAST_1,
    "eval.n_monitor_pairs": AT_LEAST_1,
    "eval.k": AT_LEAST_1,
    "eval.samples_per_prompt": AT_LEAST_1,
    "eval.max_new_tokens": AT_LEAST_1,
    "eval.temperature": Bound(0, note="0 = greedy"),
    "eval.top_p": Bound(0, 1, low_open=True),
    "eval.seed": SEED,
    "eval.batch_size": AT_LEAST_1,
    "eval.target_gap_fraction": Bound(0, 1, low_open=True),
}


def check_ranges(cfg: Any, where: str, path: str = "") -> None:
    """Raise a ConfigError naming the first numeric field of `cfg` (walked recursively) outside its `BOUNDS`."""
    seeds = getattr(cfg, "seeds", None) if not path else None
    if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
        raise ConfigError(f"{where}: seeds: is {seeds!r}; it must be a list of at least one seed, each listed once")
    for f in dataclasses.fields(cfg):
        value, dotted = getattr(cfg, f.name), _join(path, f.name)
        if dataclasses.is_dataclass(value):
            check_ranges(value, where, dotted)
            continue
        bound = BOUNDS.get(dotted)
        if bound is None or value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int | float) and not isinstance(item, bool) and not bound.ok(item):
                shown = dotted if not isinstance(value, list) else f"{dotted} ({item!r})"
                raise ConfigError(f"{where}: {shown}: is {item!r}; it must be {bound.describe()}")


def check_finite(data: Any, where: str, path: str = "") -> None:
    """Refuse NaN and ±inf anywhere in a raw config mapping (YAML's .nan / .inf pass every `<` comparison, so a
    range check alone lets them through), naming the dotted key."""
    if isinstance(data, dict):
        for key, value in data.items():
            check_finite(value, where, _join(path, str(key)))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            check_finite(value, where, f"{path}[{i}]")
    elif isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"{where}: {path}: is {data!r}; NaN and infinities are not accepted: give a finite number")


def check_call_params(where: str, key: str, values: dict[str, Any], fn: Callable[..., Any]) -> None:
    """Each value in `values` (keyword arguments for `fn`, e.g. a reward's params) must have its default's type:
    a number where the default is a number, a string where it is a string, true/false where it is a bool."""
    for name, param in inspect.signature(fn).parameters.items():
        if name not in values or param.default is inspect.Parameter.empty or param.default is None:
            continue
        value, default = values[name], param.default
        if isinstance(default, bool):
            ok, wanted = isinstance(value, bool), "true or false"
        elif isinstance(default, int | float):
            ok, wanted = isinstance(value, int | float) and not isinstance(value, bool), "a number"
        elif isinstance(default, str):
            ok, wanted = isinstance(value, str), "a string"
        else:
            continue
        if not ok:
            raise ConfigError(f"{where}: {key}.{name}: is {value!r}; it must be {wanted} (default {default!r})")


def from_dict(cls: type[T], data: Any, where: str, path: str = "") -> T:
    """Convert `data` into `cls`, checking keys and types; at the top level (path "") also `check_ranges`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {path or 'top level'} must be a mapping, got {type(data).__name__}")
    if not path:
        check_finite(data, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"{where}: unknown key {_join(path, key)!r}.{hint} Valid keys here: {', '.join(sorted(fields))}."
            )
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name in data and data[name] is None and not _optional(hints[name]) and _has_default(field):
            continue  # `key: null` in an overlay resets what a lower layer set to the field's default
        if name in data:
            values[name] = _convert(hints[name], data[name], where, _join(path, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {_join(path, name)!r}")
    obj = cls(**values)
    if not path:
        check_ranges(obj, where)
    return obj


def _optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _has_default(field: dataclasses.Field[Any]) -> bool:
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _convert(tp: Any, value: Any, where: str, path: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {path}={value!r} matches none of {tp}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=2, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{where}: {path}={value!r} is not allowed.{hint} Choose one of {list(allowed)}.")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, path)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: {path} must be a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_convert(item_tp, v, where, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {path} must be a mapping, got {value!r}")
        _, value_tp = typing.get_args(tp) or (Any, Any)
        return {k: _convert(value_tp, v, where, _join(path, k)) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {path} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {path} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            # YAML reads 1e-6 (no dot) as a string; accept it when it parses as a number.
            if isinstance(value, str):
                try:
                    number = float(value)
                except ValueError:
                    pass
                else:
                    if not math.isfinite(number):
                        raise ConfigError(f"{where}: {path}: is {value!r}; NaN and infinities are not accepted")
                    return number
            raise ConfigError(f"{where}: {path} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {path} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: {path} has unsupported type {_type_name(tp)}")


def to_dict(obj: Any) -> Any:
    """A frozen dataclass tree back to plain YAML-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
