"""At what scale a report's runs were made, read off the runs themselves, per trainer kind.

The tier names a recipe (smoke, small, paper); what a reader needs is what actually ran: which model (and how
many parameters), on which data, on what hardware. A small-tier config run on a researcher's own checkpoint, or on
the CPU stand-in, is not "a 1.5B model on one GPU"; the header says what it was. Also the warnings a reader must
not miss: runs whose sampled completions mostly hit the length limit (a missing stop token looks exactly so).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

# the data each trainer kind trains and is evaluated on: (config key, what it is)
DATA_KEYS: dict[str, list[tuple[str, str]]] = {
    "online_rl": [("data.prompts", "prompts"), ("eval.task", "held-out task"), ("eval.prompts", "held-out problems")],
    "preference": [("data.pairs", "preference pairs")],
    "sft": [("data.dataset", "SFT data")],
    "reward_model": [("data.pairs", "preference pairs")],
    "distillation": [
        ("data.prompts", "prompts"),
        ("train.teacher_model_name_or_path", "teacher"),
        ("eval.prompts", "held-out problems"),
    ],
}
MOSTLY_TRUNCATED = 0.5  # a run whose sampled completions hit the length limit more often than this is flagged


def safetensors_parameters(model_dir: Path) -> int | None:
    """Parameter count of a saved checkpoint from its safetensors headers (no weights read); None without them."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total


def scale_summary(runs: dict[str, list[Any]], default_variant: str) -> dict[str, Any] | None:
    """The kind, model, parameter count, data and hardware of the default variant's first run (or any run)."""
    from repro.report.compare import lookup  # not at the top: compare imports this module

    ordered = runs.get(default_variant, []) + [r for v, rs in runs.items() if v != default_variant for r in rs]
    run = next((r for r in ordered if r.config), None)
    if run is None:
        return None
    kind = str(run.config.get("trainer", "online_rl"))
    data = [
        {"key": key, "what": what, "value": str(value)}
        for key, what in DATA_KEYS.get(kind, [])
        if (value := lookup(run.config, key)) not in (None, "")
    ]
    provenance = (run.summary or {}).get("provenance") or {}
    return {
        "kind": kind,
        "model": lookup(run.config, "model.name_or_path"),
        "dtype": lookup(run.config, "model.dtype"),
        "parameters": safetensors_parameters(run.path / "model"),
        "data": data,
        "n_examples": (run.summary or {}).get("n_examples") or (run.summary or {}).get("n_prompts"),
        "hardware": f"GPU {provenance['gpu']}" if provenance.get("gpu") else f"CPU ({provenance.get('cpu') or '?'})",
        "steps": (run.summary or {}).get("steps"),
    }


def scale_line(scale: dict[str, Any] | None, tier: str) -> str:
    """One sentence: what ran, for the report header."""
    if not scale:
        return f"no finished run at the {tier} tier yet"
    params = scale.get("parameters")
    size = f", {_count(params)} parameters" if params else ""
    data = "; ".join(f"{d['what']} `{d['value']}`" for d in scale.get("data") or [])
    examples = f" ({scale['n_examples']:,} examples)" if scale.get("n_examples") else ""
    return (
        f"{scale['kind'].replace('_', ' ')} runs of `{scale.get('model')}` ({scale.get('dtype')}{size}); "
        f"{data or 'data: see the settings'}{examples}; {scale.get('steps') or '?'} steps on {scale['hardware']}"
    )


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def truncation_warnings(runs: dict[str, list[Any]]) -> list[str]:
    """Runs whose sampled completions (in training, or in the held-out evaluation) mostly hit the length limit."""
    flagged = []
    for variant, variant_runs in runs.items():
        for run in variant_runs:
            rates = [r["truncation_rate"] for r in run.metrics if _finite(r.get("truncation_rate"))]
            train = sum(rates) / len(rates) if rates else None
            held_out = (run.eval or {}).get("truncation_rate")
            worst = max((x for x in (train, held_out) if _finite(x)), default=None)
            if worst is not None and worst > MOSTLY_TRUNCATED:
                where = "training" if train is not None and train >= (held_out or 0) else "evaluation"
                flagged.append(f"{variant}/seed{run.seed} ({where} {100 * worst:.0f}%)")
    if not flagged:
        return []
    return [
        f"mostly truncated: {len(flagged)} run(s) had most sampled completions hit the length limit without a stop "
        f"token: {', '.join(flagged[:6])}{' …' if len(flagged) > 6 else ''}. A model that never ends its turn, or a "
        "stop token the sampler does not know (`python -m repro check` prints the stop tokens), looks exactly so; "
        "so does a length limit too short for the task"
    ]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
