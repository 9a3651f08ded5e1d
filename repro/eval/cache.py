"""Evaluations of a fixed model shared by every run of a results folder: computed once, kept beside the runs.

An evaluate job scores its run and, as the paired control, the starting model (and a distillation run its teacher)
on the same problems with the same sampling seed. Those controls are the same for every variant of a seed: at the
small tier they were half of each evaluate job's time. `cached` keeps each under
`results/<paper>/<tier>/.controls/<hash>.json`, keyed by everything that decides the numbers (checkpoint
fingerprint, dtype, problems, protocol, seed, the core code's hash), so a changed input is a new key, never a stale
hit; two jobs computing one key at once both write the same numbers (atomic writes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro.io import read_json, write_json

CONTROLS_DIR = ".controls"  # a dot folder: compare.py lists only variant folders


def model_identity(name_or_path: str) -> str:
    """A checkpoint folder's fingerprint (names, sizes, first MiBs of its files), or a hub id as given."""
    from repro.runs import checkpoint_fingerprint

    return checkpoint_fingerprint(Path(name_or_path)) if Path(name_or_path).is_dir() else name_or_path


def problems_hash(problems: list[Any]) -> str:
    text = json.dumps([[p.id, p.prompt, p.answer] for p in problems], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def control_key(what: str, cfg: Any, problems: list[Any], seed: int, **models: str) -> dict[str, Any]:
    """The key of a control evaluation of a run config's held-out protocol: `models` (role -> path or hub id) by
    fingerprint, the dtype, the problems, the template, answer style and eval section, the sampling seed."""
    return {
        "what": what,
        **{role: model_identity(path) for role, path in models.items()},
        "dtype": cfg.model.dtype,
        "problems": problems_hash(problems),
        "protocol": [cfg.data.template, cfg.data.answer_style, *dataclasses.astuple(cfg.eval)],
        "seed": seed,
    }


def cached(results_dir: Path, key: dict[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`compute()`, or the value stored under `key` in `results_dir/.controls/`."""
    from repro.provenance import REPO_ROOT, code_sha256

    key = {**key, "code_sha256": code_sha256(REPO_ROOT)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = results_dir / CONTROLS_DIR / f"{digest}.json"
    if path.is_file():
        try:
            stored = read_json(path)
        except ValueError:
            stored = {}
        if json.dumps(stored.get("key"), sort_keys=True, default=str) == json.dumps(key, sort_keys=True, default=str):
            return stored["value"]
    value = compute()
    write_json(path, {"key": key, "value": value})
    return value
