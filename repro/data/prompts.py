"""Prompt datasets: `synthetic:<task>`, a local .jsonl/.json/.parquet file, or a hub dataset id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repro.data.synthetic import TASKS, Problem, make_train
from repro.io import parse_json_rows
from repro.registry import unknown_name_message
from repro.schema import ConfigError

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
SYNTHETIC_DEFAULT_SIZE = 20_000


def load_prompts(
    source: str,
    *,
    split: str = "train",
    limit: int | None = None,
    problem_field: str = "problem",
    answer_field: str = "answer",
    seed: int = 0,
    fields_key: str = "data",
) -> list[Problem]:
    """Problems from `source`; fields may be dotted ('reward_model.ground_truth') or a chat message list.

    `synthetic:<task>` gives `limit` (default 20,000) training problems from `seed`, held-out prompts excluded.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"data.limit must be at least 1 or null, got {limit}")
    if source.startswith("synthetic:"):
        task = source.split(":", 1)[1]
        if task not in TASKS:
            raise ConfigError(unknown_name_message("synthetic task", task, TASKS.names()))
        return make_train(task, limit or SYNTHETIC_DEFAULT_SIZE, seed)
    rows = _read_rows(source, split)
    if limit is not None:
        rows = rows[:limit]
    return [_to_problem(row, i, source, problem_field, answer_field, fields_key) for i, row in enumerate(rows)]


def _read_rows(source: str, split: str) -> list[dict[str, Any]]:
    path = Path(source).expanduser()
    if path.suffix in LOCAL_SUFFIXES or path.exists():
        if not path.is_file():
            raise ConfigError(
                f"prompt file {source!r} does not exist (data.prompts); give a path that exists or a hub id"
            )
        if path.suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(path).to_dict("records")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{source}:{err.lineno}: not valid JSON ({err.msg}); fix the file") from None
            if isinstance(data, list):
                return data
            if split not in data:
                raise ConfigError(f"{source}: no split {split!r} (data.split); splits: {', '.join(sorted(data))}")
            return data[split]
        return parse_json_rows(text, source)
    import datasets

    try:
        return list(datasets.load_dataset(source, split=split))
    except Exception as e:  # the hub client raises many types; the message is what the user needs
        raise ConfigError(
            f"could not load dataset {source!r} split {split!r}: {e}. Offline? Use a local file path."
        ) from e


def _field(row: dict[str, Any], dotted: str) -> Any:
    """row['a']['b'] for 'a.b'; a chat list's last message content for a list of messages."""
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(part)
        value = value[part]
    if isinstance(value, list) and value and isinstance(value[-1], dict) and "content" in value[-1]:
        value = value[-1]["content"]
    return value


def _to_problem(
    row: dict[str, Any], index: int, source: str, problem_field: str, answer_field: str, fields_key: str = "data"
) -> Problem:
    if not isinstance(row, dict):
        raise ConfigError(f"{source}: row {index} must be an object with the problem and answer, got {row!r:.80}")
    values = {}
    for role, name in (("problem", problem_field), ("answer", answer_field)):
        try:
            values[role] = str(_field(row, name))
        except KeyError:
            raise ConfigError(
                f"{source}: row {index} has no field {name!r} ({fields_key}.{role}_field); available: "
                f"{', '.join(sorted(row))}"
            ) from None
    return Problem(str(row.get("id", f"{Path(source).stem}-{index}")), values["problem"], values["answer"])


def held_out_problems(
    task: str | None,
    prompts: str | None,
    *,
    n: int,
    split: str,
    problem_field: str,
    answer_field: str,
    fields_key: str = "data",
    seed: int | None = None,
    where: str = "",
) -> list[Problem]:
    """The first `n` held-out problems of a run's evaluation: a synthetic task's fixed held-out set (which training
    excludes; `seed`: the held-out seed, default HELD_OUT_SEED), or those of `prompts`, a problem file or hub dataset
    (`fields_key` names the config section of the field names in errors)."""
    prefix = f"{where}: " if where else ""
    if task:
        from repro.data.synthetic import HELD_OUT_N, HELD_OUT_SEED, held_out

        if n > HELD_OUT_N:
            raise ConfigError(f"{prefix}{n} held-out problems asked for; the synthetic held-out set has {HELD_OUT_N}")
        return held_out(task, n=n, seed=HELD_OUT_SEED if seed is None else seed)  # make_train excludes these
    if not prompts:
        raise ConfigError(
            f"{prefix}eval.task and eval.prompts are both unset; name the held-out problems: eval.prompts: a "
            "problem file (e.g. data/math/math500.jsonl) or hub dataset, or eval.task: a synthetic task"
        )
    return load_prompts(
        prompts, split=split, limit=n, problem_field=problem_field, answer_field=answer_field, fields_key=fields_key
    )
