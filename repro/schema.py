"""Strict conversion of plain YAML data into frozen dataclasses.

Unknown keys (with did-you-mean), wrong types and missing required keys raise ConfigError naming
the file and the dotted key path, before anything expensive happens.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; the message names the field and how to fix it."""


def check_at_least(where: str, bounds: list[tuple[str, int, int]]) -> None:
    """Raise a ConfigError naming the first `(key, value, low)` whose value is below its lower bound."""
    for key, value, low in bounds:
        if value < low:
            raise ConfigError(f"{where}: {key}: is {value}; it must be at least {low}")


# Bounds shared by every trainer kind, checked on the whole config (a kind's own checks come after). A field a kind
# lacks is skipped; None (unset) passes. Integer divisors are here so they are refused before any arithmetic uses them.
_AT_LEAST_1 = (lambda v: v >= 1, "at least 1")
_NON_NEGATIVE = (lambda v: v >= 0, "≥ 0")
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "seeds": (lambda v: len(v) >= 1, "a list of at least one seed"),
    "resources.gpus": _NON_NEGATIVE,
    "resources.nodes": _AT_LEAST_1,
    "resources.threads": _AT_LEAST_1,
    "resources.mem_mb": _AT_LEAST_1,
    "resources.runtime_min": _AT_LEAST_1,
    "data.limit": _AT_LEAST_1,
    "train.gradient_accumulation_steps": _AT_LEAST_1,
    "train.steps_per_generation": _AT_LEAST_1,
    "train.num_generations": _AT_LEAST_1,
    "train.adam_beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.adam_beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.weight_decay": _NON_NEGATIVE,
    "train.max_grad_norm": (lambda v: v > 0, "positive (the clip threshold of the gradient norm)"),
    "train.warmup_steps": _NON_NEGATIVE,
    "train.warmup_ratio": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.save_steps": (lambda v: v >= 0, "≥ 0 (0 = no checkpoint until the end)"),
    "train.num_threads": (lambda v: v >= 0, "≥ 0 (0 = resources.threads)"),
    "train.top_k": (lambda v: v >= 0, "≥ 0 (0 = off)"),
    "eval.max_new_tokens": _AT_LEAST_1,
    "eval.temperature": (lambda v: v >= 0, "≥ 0 (0 = greedy)"),
    "eval.top_p": (lambda v: 0 < v <= 1, "in (0, 1]"),
}


def check_ranges(cfg: Any, where: str) -> None:
    """Raise a ConfigError naming the first field of `RANGES` present in `cfg` whose value is out of its range."""
    for dotted, (ok, wanted) in RANGES.items():
        value: Any = cfg
        for name in dotted.split("."):
            value = getattr(value, name, None)
        if value is not None and not ok(value):
            raise ConfigError(f"{where}: {dotted}: is {value!r}; it must be {wanted}")


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
        if name in data:
            values[name] = _convert(hints[name], data[name], where, _join(path, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {_join(path, name)!r}")
    obj = cls(**values)
    if not path:
        check_ranges(obj, where)
    return obj


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
                    return float(value)
                except ValueError:
                    pass
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
