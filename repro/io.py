"""Atomic writes: a crash or kill never leaves a half-written result that looks finished."""

from __future__ import annotations

import copy
import functools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from repro.schema import ConfigError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_yaml(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """A YAML file's content, parsed once per version of the file (path, mtime, size) in this process: the DAG's input
    functions read the same paper configs for every job, and PyYAML's parser is most of their cost. Returns a
    copy, which the caller may change."""
    stat = os.stat(path)
    return copy.deepcopy(_parsed_yaml(os.fspath(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=1024)
def _parsed_yaml(path: str, mtime_ns: int, size: int) -> Any:
    return parse_yaml(Path(path).read_text(encoding="utf-8"), path)


class YamlFileError(ConfigError, yaml.YAMLError):
    """A YAML file that does not parse, or maps a key twice: the message names the file, line and column."""


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last one
    silently: a config whose second `beta:` wins is not what its author read)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if isinstance(key, list | dict):
                continue  # an unhashable key: PyYAML's own error says so below
            if key in seen:
                raise _DuplicateKey(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "<text>") -> Any:
    """`text` parsed by the strict safe loader; a YamlFileError naming `source`, the line and the fix otherwise."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (_StrictLoader is a SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(err, "problem", None) or str(err)
        if "could not determine a constructor" in str(err):
            problem = f"{problem.strip()}: only plain YAML (mappings, lists, strings, numbers, true/false) is read here"
        if isinstance(err, _DuplicateKey):
            raise YamlFileError(f"{where}: {problem}; keep one of them") from None
        raise YamlFileError(f"{where}: not valid YAML: {problem}") from None


def dotted(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as one level of dotted keys: {"a": {"b": 1}} -> {"a.b": 1}; a non-mapping leaf as is."""
    if not isinstance(value, dict):
        return {prefix[:-1]: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(dotted(inner, f"{prefix}{key}."))
    return out


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def parse_json_rows(text: str, source: str) -> list[dict[str, Any]]:
    """Data rows from JSON-lines text, one object per non-blank line; a malformed line is a ConfigError naming
    `source` and the line, before any of the rows is used."""
    from repro.schema import ConfigError

    rows = []
    for number, line in enumerate(text.split("\n"), start=1):  # '\n', not splitlines(): U+2028 may sit in a string
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"{source}:{number}: not valid JSON ({err.msg} at column {err.colno}); fix the line"
            ) from None
        if not isinstance(row, dict):
            raise ConfigError(f"{source}:{number}: a data row must be a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class JsonlAppender:
    """Appends one JSON object per line and flushes, so a kill loses at most the line being written.

    Readers must ignore a trailing partial line (read_jsonl_tolerant).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8")

    def append(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj, default=_json_default) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_jsonl_tolerant(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Like read_jsonl, but drops a last line cut off by a kill."""
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
