"""A researcher's own model and data without editing shipped files: `model=`, `data_dir=` and `--set key=value`.

    snakemake papers/dapo --config tier=small model=~/ckpt/my-qwen data_dir=~/data set="train.learning_rate=2e-6"
    python -m repro train --paper dapo --tier small --variant dapo --model ~/ckpt/my-qwen --set eval.k=4 --out run/

- `model`: replaces `model.name_or_path` (a local folder or a hub id).
- `data_dir`: the folder of your data. Tier configs name the training sets too large to ship as `<data_dir>/...`
  (data/SOURCES.md), which only this fills in: each is looked up in the folder at the same relative path
  (`math/math_train.jsonl`), else by its file name alone. The evaluation sets shipped in the repository
  (`data/math/...`) stay as they are (`--set eval.prompts=<file>` names another).
- `set`: dotted keys with YAML values (`train.learning_rate=2e-6`), applied last, then validated exactly like
  the YAML files (unknown keys get a did-you-mean, TRL names map as in a file).
- `warm_start`: k ≥ 1 runs on warm start k of every prepared base the config names (repro/warm_starts.py; the
  DAG's `--config bases=<n>`); alone it labels the results folder `<tier>@base<k>`.

Overrides are applied to the merged paper config before validation, recorded in the run's summary.json (and as
a comment atop config.resolved.yaml), and give a run its own identity: the DAG writes runs with overrides under
`results/<paper>/<tier>@<name>-<hash>/`, so runs on different models or data never overwrite each other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from repro.schema import ConfigError

# How tier configs name the data files the user supplies (data/SOURCES.md): a placeholder, not a path, so nothing
# outside the repository is read unless `data_dir=` names a folder. The shipped copies are under data/.
USER_DATA_ROOT = "<data_dir>"
LABEL_SEPARATOR = "@"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


@dataclass(frozen=True)
class Overrides:
    model: str | None = None
    data_dir: str | None = None
    sets: tuple[tuple[str, Any], ...] = ()  # (dotted key, value), applied in order
    warm_start: int = 0  # k ≥ 1: every prepared:<base> becomes prepared:<base>_s<k> (repro/warm_starts.py)

    def __bool__(self) -> bool:
        return bool(self.model or self.data_dir or self.sets or self.warm_start)

    def with_warm_start(self, k: int) -> Overrides:
        return dataclasses.replace(self, warm_start=int(k))

    # ------------------------------------------------------------------ parsing

    @classmethod
    def parse(
        cls,
        model: str | None = None,
        data_dir: str | None = None,
        sets: list[str] | str | dict | None = None,
        warm_start: int | str | None = None,
    ) -> Overrides:
        """From the CLI (`--model`, `--data-dir`, `--set k=v` repeated) or Snakemake's --config (`set="k=v;k=v"`)."""
        entries: list[str] = []
        if isinstance(sets, dict):  # Snakemake read --config set='{train.beta: 0.1}' as a YAML mapping
            sets = [f"{key}={value}" for key, value in sets.items()]
        for item in [sets] if isinstance(sets, str) else sets or []:
            entries += [part.strip() for part in str(item).split(";") if part.strip()]
        parsed = tuple(parse_assignment(entry) for entry in entries)
        model = str(model).strip() if model not in (None, "") else None
        data_dir = str(data_dir).strip() if data_dir not in (None, "") else None
        return cls(model=model, data_dir=data_dir, sets=parsed, warm_start=_warm_start(warm_start))

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Overrides:
        """Back from `as_record()` (a run's summary.json)."""
        record = record or {}
        sets = tuple((str(k), v) for k, v in record.get("set") or [])
        return cls(
            model=record.get("model"),
            data_dir=record.get("data_dir"),
            sets=sets,
            warm_start=record.get("warm_start", 0),
        )

    # ------------------------------------------------------------------ use

    def as_record(self) -> dict[str, Any]:
        """What a run records (summary.json `overrides`); empty when nothing was overridden."""
        record: dict[str, Any] = {}
        if self.model:
            record["model"] = self.model
        if self.data_dir:
            record["data_dir"] = self.data_dir
        if self.sets:
            record["set"] = [[k, v] for k, v in self.sets]
        if self.warm_start:
            record["warm_start"] = self.warm_start
        return record

    def describe(self) -> str:
        """One line for logs, the resolved config's header and the report's provenance."""
        parts = [f"model={self.model}"] if self.model else []
        parts += [f"data_dir={self.data_dir}"] if self.data_dir else []
        parts += [f"{k}={json.dumps(v)}" for k, v in self.sets]
        parts += [f"warm_start={self.warm_start}"] if self.warm_start else []
        return ", ".join(parts) or "none"

    def cli_args(self) -> list[str]:
        """The `python -m repro train/check` arguments that carry these overrides."""
        args = ["--model", self.model] if self.model else []
        args += ["--data-dir", self.data_dir] if self.data_dir else []
        for key, value in self.sets:
            args += ["--set", f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...')}"]
        args += ["--warm-start", str(self.warm_start)] if self.warm_start else []
        return [a.strip() for a in args]

    def label(self, tier: str) -> str:
        """The results folder name of a tier's runs under these overrides: `<tier>` alone when there are none,
        else `<tier>@<model name>-<hash of every override>`."""
        if not self:
            return tier
        if not (self.model or self.data_dir or self.sets):
            return f"{tier}{LABEL_SEPARATOR}base{self.warm_start}"
        name = Path(self.model.rstrip("/")).name if self.model else "custom"
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "model"
        digest = hashlib.sha256(json.dumps(self.as_record(), sort_keys=True).encode()).hexdigest()[:6]
        return f"{tier}{LABEL_SEPARATOR}{name}-{digest}"

    def apply(self, merged: dict[str, Any], where: str = "overrides") -> dict[str, Any]:
        """The merged config mapping with the overrides in (validation comes after, as for the YAML layers)."""
        from repro.config import _apply_trl_aliases, deep_merge
        from repro.warm_starts import rename_prepared

        out = rename_prepared(dict(merged), self.warm_start)
        if self.data_dir:
            out = rebase_data_paths(out, Path(self.data_dir).expanduser())
        if self.model:
            out["model"] = {**(out.get("model") or {}), "name_or_path": self.model}
        for key, value in self.sets:
            layer = _nest(key, value, where)
            out = deep_merge(out, _apply_trl_aliases(layer, Path(f"--set {key}")))
        return out


def _warm_start(value: int | str | None) -> int:
    try:
        k = int(value or 0)
    except ValueError:
        k = -1
    if k < 0:
        raise ConfigError(f"warm start {value!r}: give a whole number ≥ 0 (0 is the base itself)")
    return k


def parse_assignment(entry: str) -> tuple[str, Any]:
    """`train.learning_rate=2e-6` -> ("train.learning_rate", 2e-06): the value parsed as YAML, as in a file."""
    key, sep, value = entry.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ConfigError(
            f"--set {entry!r}: write SECTION.KEY=VALUE with a dotted key, e.g. train.learning_rate=2e-6 "
            "or eval.benchmarks={aime24: {n: 4}}"
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: the value {value!r} is not valid YAML ({err.problem})") from None
    if isinstance(parsed, str) and _FLOAT.match(parsed.strip()):
        parsed = float(parsed)  # YAML 1.1 reads 2e-6 (no dot) as text; on a command line it means the number
    return key, parsed


def _nest(key: str, value: Any, where: str) -> dict[str, Any]:
    parts = key.split(".")
    layer: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        layer = {part: layer}
    return layer


def rebase_data_paths(merged: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Every `<data_dir>/...` string of the config re-pointed into `folder`: the same relative path if it exists
    there, else the file name alone in `folder`; found in neither, the first, so the check that the file exists
    names it."""
    if not folder.is_dir():
        raise ConfigError(f"data_dir {str(folder)!r}: no such folder; point it at the folder that holds your data")

    def rebase(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rebase(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rebase(v) for v in value]
        if not isinstance(value, str) or not _under_root(value):
            return value
        relative = Path(value).relative_to(USER_DATA_ROOT) if value != USER_DATA_ROOT else Path(".")
        # a file: the same relative path, else its name alone; a folder (no suffix): the same path, else `folder`
        candidates = [folder / relative, folder / relative.name if relative.suffix else folder]
        return str(next((c for c in candidates if c.exists()), candidates[0]))

    return rebase(merged)


def _under_root(value: str) -> bool:
    return value == USER_DATA_ROOT or value.startswith(USER_DATA_ROOT + "/")


def unresolved_user_data(value: str) -> str | None:
    """The path under `<data_dir>/` a config string still names (no `data_dir=` was given), else None."""
    return (value.removeprefix(USER_DATA_ROOT).lstrip("/") or ".") if _under_root(value) else None


def tier_of(label: str) -> str:
    """The tier of a results folder name (`small@my-model-1a2b3c` -> `small`)."""
    return label.split(LABEL_SEPARATOR, 1)[0]
