"""samples.jsonl beside metrics.jsonl: a few decoded completions of every optimizer step (TRL's log_completions).

One JSON line per sample: `step`, `prompt` (the prompt ids the model saw, after any cut, special tokens kept, padding
dropped), `completion` (up to and including its stop token, special tokens kept), `truncated` (no stop token within
the length limit), and what the trainer knows of it (online RL: `reward`, `rewards` per function, `correct`, `answer`;
distillation: `source`, `correct`). The rows are picked by position (`pick_rows`), never by a random draw, so logging
leaves every random stream, and so the training trajectory, unchanged. Only the main rank writes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from repro.io import JsonlAppender, read_jsonl_tolerant, write_text
from repro.trainers.loop import json_line

FILE = "samples.jsonl"


def pick_rows(n_rows: int, group_size: int, k: int, offset: int = 0) -> list[int]:
    """`k` row indices of a batch of groups of `group_size` consecutive rows: the first row of each group, then the
    second of each, …, starting `offset` places into that order (a later optimizer step on the same batch shows the
    next rows); wraps around, at most `n_rows` rows."""
    n_groups = -(-n_rows // max(group_size, 1))  # a short last group counts too
    order = [g * group_size + j for j in range(group_size) for g in range(n_groups) if g * group_size + j < n_rows]
    if not order or k <= 0:
        return []
    return [order[(offset + i) % len(order)] for i in range(min(k, len(order)))]


def decode_rows(
    tokenizer: Any,
    prompt_ids: torch.Tensor,  # [N, P] left-padded
    prompt_mask: torch.Tensor,  # [N, P]
    completion_ids: torch.Tensor,  # [N, T] right-padded
    completion_mask: torch.Tensor,  # [N, T] 1 up to and including the stop token
    rows: list[int],
) -> list[dict[str, str]]:
    """The prompt and completion text of each of `rows`, as the model saw them (special tokens kept)."""
    out = []
    for i in rows:
        prompt = prompt_ids[i][prompt_mask[i].bool()].tolist()
        completion = completion_ids[i][completion_mask[i].bool()].tolist()
        out.append(
            {
                "prompt": tokenizer.decode(prompt, skip_special_tokens=False),
                "completion": tokenizer.decode(completion, skip_special_tokens=False),
            }
        )
    return out


class SampleLog:
    """out_dir/samples.jsonl, appended line by line. Opening it keeps only the rows of steps ≤ `step` (the
    checkpoint's), rewritten atomically, so a resumed run never holds a step's samples twice, as drive_steps does
    for metrics.jsonl. Off (`enabled` false: a rank other than the main one, or no samples asked for), it neither
    reads nor writes."""

    def __init__(self, out_dir: Path, step: int, enabled: bool = True) -> None:
        self.path = Path(out_dir) / FILE
        self._file: JsonlAppender | None = None
        if not enabled:
            return
        kept = [r for r in read_jsonl_tolerant(self.path) if r.get("step", 0) <= step] if self.path.is_file() else []
        write_text(self.path, "".join(json_line(r) for r in kept))
        self._file = JsonlAppender(self.path)

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self._file is None:
            return
        for row in rows:
            self._file.append({k: _finite(v) for k, v in row.items()})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _finite(value: Any) -> Any:
    """JSON has no NaN or ±inf: such a number becomes null (as in metrics.jsonl), also inside a mapping."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
