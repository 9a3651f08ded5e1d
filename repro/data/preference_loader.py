"""Real preference data from a hub id or local files, in TRL's dataset formats, as PreferencePair / UnpairedExample.

Sources (`read_rows`): a local `.jsonl`, `.jsonl.gz`, `.json` (a list of objects, or JSON lines) or `.parquet`
file; a directory holding `<split>.<one of those>`; or a hub dataset id, read by `datasets.load_dataset(source,
split=split)` (offline and not cached: a ConfigError saying to pass a local path).

Formats (TRL's "Dataset formats" page; the format is read from the columns and value types):

- standard, explicit prompt: `prompt`, `chosen`, `rejected` strings, used as they are;
- standard, implicit prompt: only `chosen` / `rejected` full texts (Anthropic HH's original rows). The prompt is
  their longest common prefix cut back to its last "\\n\\nAssistant:" when it holds one (so two replies that
  open with the same words keep them: TRL's `extract_prompt` would move them into the prompt), else the whole
  common prefix. So the prompt is the chosen dialogue up to its final "\\n\\nAssistant:" whenever the rejected
  text continues that context. A row is dropped when the two texts share no prefix (but whitespace), or when the chosen
  completion still holds a "\\n\\nAssistant:" turn (the texts diverge before the chosen dialogue's final reply:
  not a comparison of one response; a rejected text may hold such a turn, an artifact of HH's data). Both
  counts are reported in a warning;
- conversational: `prompt` (and `chosen` / `rejected`) as lists of {"role", "content"} messages, or implicit:
  `chosen` / `rejected` whole conversations whose common leading messages are the prompt. The prompt is
  rendered with `tokenizer.apply_chat_template(..., add_generation_prompt=True)` when a tokenizer with a chat
  template is given; otherwise with the plain fallback `render_fallback`: "Role: content\\n\\n" per message,
  then the cue "Assistant:", the completion then opening with a space (the HH convention, so prompt +
  completion reads "Assistant: text"). A completion must be one assistant message; its text is the content.

`limit` keeps a seeded random subset in file order; a smaller limit with the same seed is a subset of a larger.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import warnings
from pathlib import Path
from typing import Any

from repro.data.preference import PreferencePair, UnpairedExample
from repro.io import parse_json_rows
from repro.schema import ConfigError

ASSISTANT_CUE = "\n\nAssistant:"
LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
TRUTHY = {"1", "true", "yes", "on"}
Row = dict[str, Any]


# --- rows ----------------------------------------------------------------------------------------


def read_rows(
    source: str, split: str = "train", *, hub_config: str | None = None, hub_data_dir: str | None = None
) -> list[Row]:
    """The rows of a local file, a directory's `<split>.*` file, or a hub dataset's split, as plain dicts."""
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        found = [path / f"{split}{suffix}" for suffix in LOCAL_SUFFIXES if (path / f"{split}{suffix}").is_file()]
        if not found:
            raise ConfigError(
                f"{source} is a directory without a {split!r} split: expected one of "
                f"{', '.join(split + s for s in LOCAL_SUFFIXES)} in it"
            )
        return _read_file(found[0])
    if path.is_file():
        return _read_file(path)
    if _looks_local(source):
        raise ConfigError(f"preference data {source!r}: no such file or directory")
    return _read_hub(source, split, hub_config, hub_data_dir)


def _looks_local(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.endswith(LOCAL_SUFFIXES) or source.strip("/").count("/") > 1


def _read_file(path: Path) -> list[Row]:
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            return parse_json_rows(f.read(), str(path))
    if name.endswith(".json"):
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:  # JSON lines under a .json name (datasets' json loader reads both)
            return parse_json_rows(text, str(path))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ConfigError(f"{path}: a .json preference file must hold a list of objects (one per row)")
        return data
    raise ConfigError(f"{path}: unsupported file type; use one of {', '.join(LOCAL_SUFFIXES)}")


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in TRUTHY for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _read_hub(source: str, split: str, hub_config: str | None, hub_data_dir: str | None) -> list[Row]:
    from datasets import load_dataset

    try:
        dataset = load_dataset(source, hub_config, split=split, data_dir=hub_data_dir)
    except Exception as err:  # the hub raises many types (offline, connection, missing split or file)
        state = "the hub is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and it is not cached" if _offline() else ""
        raise ConfigError(
            f"cannot load the hub dataset {source!r} (split {split!r}): {state or f'{type(err).__name__}: {err}'}. "
            f"Pass a local path instead: a {', '.join(LOCAL_SUFFIXES)} file, or a directory holding {split}.jsonl."
        ) from err
    return [dict(row) for row in dataset]


def _require(rows: list[Row], source: str, fields: dict[str, str]) -> None:
    """Every `option: column` must be a column of the data; else name the columns found and the option to set."""
    if not rows:
        raise ConfigError(f"{source}: no rows")
    columns = sorted(rows[0])
    for option, column in fields.items():
        if column not in rows[0]:
            raise ConfigError(
                f"{source}: no column {column!r} (columns found: {', '.join(columns)}). "
                f"Set {option}= to the column that holds it."
            )


def _subset(items: list[Any], limit: int | None, seed: int) -> list[Any]:
    """A seeded random `limit` of the items, in their original order (all of them when limit is None or ≥ n)."""
    if limit is None or limit >= len(items):
        return items
    if limit < 1:
        raise ConfigError(f"limit must be a positive number of rows or None (got {limit})")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in sorted(order[:limit])]


# --- formats -------------------------------------------------------------------------------------


def implicit_prompt(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """(prompt, chosen completion, rejected completion) of two full texts, or None when the row is dropped."""
    prefix = os.path.commonprefix([chosen, rejected])
    cut = prefix.rfind(ASSISTANT_CUE)
    prompt = prefix[: cut + len(ASSISTANT_CUE)] if cut >= 0 else prefix
    if not prompt.strip():
        return None  # nothing shared but whitespace
    chosen_completion, rejected_completion = chosen[len(prompt) :], rejected[len(prompt) :]
    if cut >= 0 and ASSISTANT_CUE in chosen_completion:
        return None  # the texts part before the chosen dialogue's final assistant turn
    return prompt, chosen_completion, rejected_completion


def render_fallback(messages: list[dict[str, str]]) -> str:
    """A conversation as plain text without a chat template: "Role: content\\n\\n" each, then "Assistant:"."""
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant:"


def render_prompt(messages: list[dict[str, str]], tokenizer: Any = None) -> str:
    """A conversation rendered for the assistant's next turn: the tokenizer's chat template, else the fallback."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return render_fallback(messages)


def _completion_text(messages: Any, tokenizer: Any, where: str) -> str:
    """The text of a one-message assistant completion; a space opens it under the fallback rendering."""
    if not (isinstance(messages, list) and len(messages) == 1 and _is_message(messages[0])):
        raise ConfigError(f"{where}: a conversational completion must be exactly one message, got {messages!r}")
    if messages[0]["role"] != "assistant":
        raise ConfigError(f"{where}: the completion's role is {messages[0]['role']!r}; it must be 'assistant'")
    text = str(messages[0]["content"])
    has_template = tokenizer is not None and getattr(tokenizer, "chat_template", None)
    return text if has_template else " " + text


def _is_message(m: Any) -> bool:
    return isinstance(m, dict) and "role" in m and "content" in m


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string or a list of messages, got {type(value).__name__}: {value!r}")
    return value


def _conversation(value: Any, where: str) -> list[dict[str, str]]:
    if not (isinstance(value, list) and value and all(_is_message(m) for m in value)):
        raise ConfigError(f"{where}: expected a non-empty list of {{'role', 'content'}} messages, got {value!r}")
    return value


def _implicit_conversation(chosen: Any, rejected: Any, tokenizer: Any, where: str) -> tuple[str, str, str] | None:
    """Common leading messages → the prompt; each side must then be one assistant message, else None (dropped)."""
    a, b = _conversation(chosen, where), _conversation(rejected, where)
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    if k == 0 or len(a) != k + 1 or len(b) != k + 1:
        return None
    return (
        render_prompt(a[:k], tokenizer),
        _completion_text(a[k:], tokenizer, where),
        _completion_text(b[k:], tokenizer, where),
    )


# --- public loaders ------------------------------------------------------------------------------


def pairs_from_rows(
    rows: list[Row],
    source: str,
    *,
    prompt_field: str = "prompt",
    chosen_field: str = "chosen",
    rejected_field: str = "rejected",
    margin_field: str | None = None,
    tokenizer: Any = None,
) -> list[PreferencePair]:
    """Rows in any of the formats above → pairs (see the module docstring); dropped rows are counted in a warning."""
    fields = {"chosen_field": chosen_field, "rejected_field": rejected_field}
    _require(rows, source, fields | ({"margin_field": margin_field} if margin_field else {}))
    explicit = prompt_field in rows[0]
    pairs: list[PreferencePair] = []
    no_prefix = early_split = 0
    for i, row in enumerate(rows):
        where = f"{source} row {i}"
        chosen, rejected = row[chosen_field], row[rejected_field]
        if explicit:
            prompt = row[prompt_field]
            if isinstance(prompt, list):
                texts = (
                    render_prompt(_conversation(prompt, where), tokenizer),
                    _completion_text(chosen, tokenizer, where),
                    _completion_text(rejected, tokenizer, where),
                )
            else:
                texts = (_text(prompt, where), _text(chosen, where), _text(rejected, where))
        else:
            conversational = isinstance(chosen, list)
            if conversational:
                split = _implicit_conversation(chosen, rejected, tokenizer, where)
            else:
                split = implicit_prompt(_text(chosen, where), _text(rejected, where))
            if split is None:
                shared = (
                    chosen[:1] == rejected[:1]
                    if conversational
                    else bool(os.path.commonprefix([chosen, rejected]).strip())
                )
                no_prefix += not shared
                early_split += shared
                continue
            texts = split
        margin = None if margin_field is None or row[margin_field] is None else float(row[margin_field])
        pair_id = str(row["id"]) if "id" in row else f"{source}:{i}"
        pairs.append(PreferencePair(*texts, id=pair_id, margin=margin))
    if no_prefix or early_split:
        warnings.warn(
            f"{source}: dropped {no_prefix + early_split} of {len(rows)} implicit-prompt rows "
            f"({no_prefix} whose two texts share no prefix, {early_split} that diverge before the chosen dialogue's final "
            "assistant turn)",
            stacklevel=2,
        )
    if not pairs:
        raise ConfigError(
            f"{source}: every row was dropped (columns found: {', '.join(sorted(rows[0]))}). If the prompt is in "
            "its own column, set prompt_field= to it."
        )
    return pairs


def load_preference_pairs(
    source: str,
    *,
    split: str = "train",
    limit: int | None = None,
    seed: int = 0,
    prompt_field: str = "prompt",
    chosen_field: str = "chosen",
    rejected_field: str = "rejected",
    margin_field: str | None = None,
    tokenizer: Any = None,
    hub_config: str | None = None,
    hub_data_dir: str | None = None,
) -> list[PreferencePair]:
    """Paired preference data (explicit, implicit or conversational) from a local path or a hub id.

    ids: the `id` column when present, else f"{source}:{row index}" (the index in the source, before any drop).
    `hub_config` / `hub_data_dir` go to load_dataset (Anthropic/hh-rlhf's subsets are data_dir="harmless-base").
    """
    rows = read_rows(source, split, hub_config=hub_config, hub_data_dir=hub_data_dir)
    pairs = pairs_from_rows(
        rows,
        source,
        prompt_field=prompt_field,
        chosen_field=chosen_field,
        rejected_field=rejected_field,
        margin_field=margin_field,
        tokenizer=tokenizer,
    )
    return _subset(pairs, limit, seed)


def load_unpaired(
    source: str,
    *,
    split: str = "train",
    limit: int | None = None,
    seed: int = 0,
    prompt_field: str = "prompt",
    completion_field: str = "completion",
    label_field: str = "label",
    tokenizer: Any = None,
) -> list[UnpairedExample]:
    """TRL's unpaired preference format (prompt, completion, boolean label: true = desirable), standard or
    conversational."""
    rows = read_rows(source, split)
    _require(
        rows,
        source,
        {"prompt_field": prompt_field, "completion_field": completion_field, "label_field": label_field},
    )
    examples: list[UnpairedExample] = []
    for i, row in enumerate(rows):
        where = f"{source} row {i}"
        label = row[label_field]
        if not isinstance(label, bool):
            raise ConfigError(
                f"{where}: {label_field} = {label!r} ({type(label).__name__}); unpaired labels must be booleans "
                f"(true = desirable, false = undesirable). Convert the column, or set label_field= to the boolean one."
            )
        prompt, completion = row[prompt_field], row[completion_field]
        if isinstance(prompt, list):
            texts = (
                render_prompt(_conversation(prompt, where), tokenizer),
                _completion_text(completion, tokenizer, where),
            )
        else:
            texts = (_text(prompt, where), _text(completion, where))
        examples.append(UnpairedExample(*texts, label=label, id=str(row["id"]) if "id" in row else f"{source}:{i}"))
    return _subset(examples, limit, seed)
