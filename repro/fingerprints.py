"""Numerics fingerprints kept in the repository: the same code on another CPU must give the same bits.

results/fingerprints.json holds, each with the CPU it was recorded on and whether numerics were pinned:
- `kernel:<name>`: the kernels a tiny model's step is made of, on fixed inputs (repro/numerics.py; instant);
- `base:smoke`: the sha256 of the smoke base's weights as the DAG builds it (results/base/smoke/model);
- `run:<kind>`: the sha256 of the metrics of a 2-step smoke run of one paper per trainer kind (timing fields left
  out), trained from the bases on disk (`python -m repro numerics --runs`; about a minute).

`python -m repro numerics` recomputes what it can here and compares (`--record` writes the file instead). With pinned
numerics every x86-64 CPU with AVX2 must match; a mismatch there is a defect, not a new row (docs/numerics.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repro.io import read_json, write_json

FILE = Path("results/fingerprints.json")
SMOKE_BASE = Path("results/base/smoke")
# one short run per trainer kind: (paper, variant) at the smoke tier
RUNS = {
    "online_rl": ("dapo", "naive_grpo"),
    "preference": ("dpo", "dpo"),
    "sft": ("dft", "sft"),
    "reward_model": ("centered_rm", "rm"),
    "distillation": ("on_policy_distillation", "on_policy"),
}
RUN_STEPS = 2


def current(runs: bool = False, root: Path = Path(".")) -> dict[str, str | None]:
    """This machine's fingerprints: the kernels always; the smoke base where it is built; the runs when asked
    (None: could not be computed here, e.g. a base not built)."""
    from repro.numerics import kernel_fingerprints

    values: dict[str, str | None] = {f"kernel:{k}": v for k, v in kernel_fingerprints().items()}
    values["base:smoke"] = weights_sha256(root / SMOKE_BASE / "model")
    if runs:
        for kind, (paper, variant) in RUNS.items():
            values[f"run:{kind}"] = short_run_sha256(paper, variant, root)
    return values


def weights_sha256(model_dir: Path) -> str | None:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()


def metrics_sha256(metrics_jsonl: Path) -> str:
    """sha256 of a run's logged values, wall-clock fields left out (they differ on every run)."""
    rows = [json.loads(line) for line in metrics_jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [{k: v for k, v in sorted(row.items()) if "time" not in k} for row in rows]
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def short_run_sha256(paper: str, variant: str, root: Path) -> str | None:
    """Train `paper`/`variant` at the smoke tier for RUN_STEPS steps (seed 0) in a temporary folder; None when the
    run cannot start here (its base model is not built)."""
    with tempfile.TemporaryDirectory(prefix="repro-fingerprint-") as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "repro", "train", "--paper", paper, "--tier", "smoke", "--variant", variant,
                   "--seed", "0", "--out", str(out), "--max-steps", str(RUN_STEPS)]  # fmt: skip
        done = subprocess.run(
            command, cwd=root, capture_output=True, text=True, env={**os.environ, "REPRO_THREADS": "1"}
        )
        metrics = out / "metrics.jsonl"
        return metrics_sha256(metrics) if done.returncode == 0 and metrics.is_file() else None


def compare(recorded: dict[str, Any], now: dict[str, str | None]) -> list[tuple[str, str]]:
    """(name, status) per fingerprint: match, DIFFERS, not computed here, not recorded."""
    rows = []
    for name in sorted(set(recorded) | set(now)):
        entry, value = recorded.get(name), now.get(name)
        if entry is None:
            rows.append((name, "not recorded"))
        elif value is None:
            rows.append((name, "not computed here"))
        else:
            rows.append((name, "match" if value == entry["sha256"] else f"DIFFERS (recorded on {entry['cpu']})"))
    return rows


def record(now: dict[str, str | None], path: Path = FILE) -> dict[str, Any]:
    """Write the computed fingerprints (keeping recorded ones not computed now), with this machine's CPU."""
    from repro.numerics import state
    from repro.provenance import cpu_name

    recorded = read_json(path) if path.is_file() else {}
    stamp = {
        "cpu": cpu_name(),
        "pinned": state()["pinned"],
        "recorded_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    recorded.update({name: {"sha256": value, **stamp} for name, value in now.items() if value is not None})
    write_json(path, dict(sorted(recorded.items())))
    return recorded


def report(runs: bool, record_now: bool, root: Path = Path(".")) -> tuple[list[str], int, int]:
    """The lines `python -m repro numerics` prints, the number of fingerprints that match and the number compared."""
    from repro.numerics import PINNED, state
    from repro.provenance import cpu_name

    numerics = state()
    now = current(runs, root)
    lines = [f"cpu: {cpu_name()}", f"aten kernels: {numerics['aten_capability']}, threads {numerics['threads']}"]
    lines += [f"{name}={numerics['env'][name] or '(unset)'}  (pinned: {value})" for name, value in PINNED.items()]
    if record_now:
        record(now, root / FILE)
    recorded = read_json(root / FILE) if (root / FILE).is_file() else {}
    rows = compare(recorded, now)
    lines += [f"{name:28s} {status}" for name, status in rows]
    compared = [status for _, status in rows if status == "match" or status.startswith("DIFFERS")]
    matched = sum(status == "match" for status in compared)
    lines.append(
        f"numerics pinned={'yes' if numerics['pinned'] else 'no'} fingerprints_match={matched}/{len(compared)}"
    )
    return lines, matched, len(compared)
