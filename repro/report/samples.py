"""The report's "## Samples": what the policy wrote, read from a run's samples.jsonl (repro/trainers/samples.py).

A few samples of the last logged step of one run (the default variant's first seed when compare.json names the
default variant, else the first run listed that has samples), with the run's share of truncated samples and the
prompts cut to data.max_prompt_length. Kinds that do not sample while training (preference, SFT, reward model)
write no samples.jsonl, and the section is then left out.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from repro.io import read_jsonl_tolerant

FILE = "samples.jsonl"  # repro/trainers/samples.py FILE (not imported: that module pulls in torch)
MAX_SHOWN = 4
PROMPT_TAIL = 60  # characters of the prompt shown: its end, which the completion continues
COMPLETION_HEAD = 200  # characters of the completion shown


def samples_section(result: dict[str, Any], report_dir: Path) -> str:
    """Markdown for the samples of one run of `result` (compare.json); "" when no run has a samples.jsonl."""
    found = _run_with_samples(result)
    if found is None:
        return ""
    run, path, rows = found
    step = max(int(r.get("step", 0)) for r in rows)
    shown = [r for r in rows if r.get("step") == step][:MAX_SHOWN]
    where = os.path.relpath(path.resolve(), Path(report_dir).resolve())
    lines = [
        "## Samples",
        f"What the policy wrote at step {step}, the last logged step of `{run['variant']}` seed {run['seed']} "
        f"({len(shown)} of the samples in `{Path(where).as_posix()}`; a prompt shows its last {PROMPT_TAIL} "
        f"characters, a completion its first {COMPLETION_HEAD}, special tokens kept).",
    ]
    share = _share_sentence(rows, path.parent / "metrics.jsonl")
    if share:
        lines.append(share)
    columns = [("Prompt (end)", lambda r: _cell(_tail(r.get("prompt", ""), PROMPT_TAIL)))]
    columns.append(("Completion", lambda r: _cell(_head(r.get("completion", ""), COMPLETION_HEAD))))
    if any("source" in r for r in shown):
        columns.append(("Source", lambda r: _cell(str(r.get("source", "—")))))
    if any("reward" in r for r in shown):
        columns.append(("Reward", lambda r: _number(r.get("reward"))))
    if any("correct" in r for r in shown):
        columns.append(("Correct", lambda r: _yes_no(r.get("correct"))))
    columns.append(("Truncated", lambda r: _yes_no(r.get("truncated"))))
    table = ["| " + " | ".join(name for name, _ in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    table += ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in shown]
    lines.append("\n".join(table))
    return "\n\n".join(lines)


def _run_with_samples(result: dict[str, Any]) -> tuple[dict[str, Any], Path, list[dict[str, Any]]] | None:
    """The first run, default variant first (lowest seed first), whose samples.jsonl holds a row."""
    runs = list(result.get("runs") or [])
    default = result.get("default_variant")
    preferred = sorted((r for r in runs if r.get("variant") == default), key=lambda r: r.get("seed", 0))
    for run in preferred + [r for r in runs if r.get("variant") != default]:
        path = Path(str(run.get("path", ""))) / FILE
        if not path.is_file():
            continue
        rows = read_jsonl_tolerant(path)
        if rows:
            return run, path, rows
    return None


def _share_sentence(rows: list[dict[str, Any]], metrics_path: Path) -> str:
    """The run's share of truncated samples and its over-long prompts (Σ prompts_truncated over its steps)."""
    parts = []
    flags = [bool(r["truncated"]) for r in rows if "truncated" in r]
    if flags:
        parts.append(
            f"{sum(flags)} of the run's {len(flags)} logged samples ({sum(flags) / len(flags):.0%}) were truncated "
            "(no stop token within the length limit)"
        )
    metrics = read_jsonl_tolerant(metrics_path) if metrics_path.is_file() else []
    cut = [m["prompts_truncated"] for m in metrics if isinstance(m.get("prompts_truncated"), int | float)]
    if cut:
        steps = f"{len(cut)} step" + ("s" if len(cut) != 1 else "")
        parts.append(f"{int(sum(cut))} over-long prompts were cut to data.max_prompt_length over its {steps}")
    sentence = "; ".join(parts) + "."
    return sentence[0].upper() + sentence[1:] if parts else ""


def _tail(text: str, n: int) -> str:
    return text if len(text) <= n else "…" + text[-n:]


def _head(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _cell(text: str) -> str:
    """Model text as one markdown table cell, shown literally: HTML-like special tokens (`</s>`, `<|im_end|>`) as
    text, markdown punctuation and the cell separator `|` escaped, line breaks as ⏎."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`*_\[\]|])", r"\\\1", text)
    return text.replace("\r", "").replace("\n", " ⏎ ") or "∅"


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


def _yes_no(value: Any) -> str:
    return "—" if value is None else ("yes" if value else "no")
