"""Is a finished run still what its paper folder and the code would produce now?

A run is stale when
- the core code (repro/, configs/, the Snakefile, pyproject.toml: provenance.CODE_PATHS) hashes differently from
  the code it was made by (`code_sha256` in its summary), or
- its config.resolved.yaml differs from what the paper folder resolves to now, under the run's own overrides
  (model=, data_dir=, --set: summary.json `overrides`) (the keys that moved are named); `train.report_to` only says
  where metrics are streamed, so it does not count.

A run shortened on purpose (`--config max_steps=N`, as CI does) differs in `train.max_steps` only by being
shorter; that alone is not staleness.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml

from repro.io import dotted
from repro.provenance import UNKNOWN

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=256)
def _current_config(paper_dir: str, tier: str, variant: str, overrides_json: str = "{}") -> dict[str, Any]:
    """The folder's resolved config, flattened; cached per process (every seed of a variant shares it)."""
    from repro.config import dump, load_paper_config
    from repro.overrides import Overrides

    overrides = Overrides.from_record(json.loads(overrides_json))
    return dotted(yaml.load(dump(load_paper_config(Path(paper_dir), tier, variant, overrides)), Loader=_LOADER))


def config_changes(
    paper_dir: Path, tier: str, variant: str, run_dir: Path, overrides: dict[str, Any] | None = None
) -> list[str]:
    """Dotted keys whose value in the run's config.resolved.yaml differs from the folder's config now (under the
    run's overrides, as summary.json records them)."""
    from repro.schema import ConfigError

    resolved = run_dir / "config.resolved.yaml"
    if not resolved.is_file():
        return []  # reported as a missing file elsewhere
    try:
        now = _current_config(str(paper_dir), tier, variant, json.dumps(overrides or {}, sort_keys=True))
    except (ConfigError, FileNotFoundError) as err:
        return [f"(the folder's {tier}/{variant} config no longer resolves: {err})"]
    then = dotted(yaml.load(resolved.read_text(encoding="utf-8"), Loader=_LOADER))
    from repro.trackers import NO_EFFECT_ON_RESULTS  # report_to: where metrics are shown, not what was computed

    changed = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k) and k not in NO_EFFECT_ON_RESULTS)
    steps_then, steps_now = then.get("train.max_steps"), now.get("train.max_steps")
    if isinstance(steps_then, int) and isinstance(steps_now, int) and steps_then < steps_now:
        changed.remove("train.max_steps")  # a deliberately shortened run
    return changed


def stale_reasons(
    run: dict[str, Any], reference: dict[str, Any], paper_dir: Path | None, tier: str, root: Path = Path(".")
) -> list[str]:
    """Why a run of compare.json's `runs` list is stale against `reference`, a provenance dict (the comparison's,
    or {"code_sha256": <the checkout's now>}); empty when it is current. Runs recorded before code_sha256 existed
    are compared by git SHA."""
    reasons = []
    prov = run.get("provenance") or {}
    key = "code_sha256" if prov.get("code_sha256") and reference.get("code_sha256") else "git_sha"
    made_by, current = prov.get(key), reference.get(key)
    if made_by and current and UNKNOWN not in (made_by, current) and made_by != current:
        reasons.append("core code changed")
    if paper_dir is not None and run.get("path"):
        run_dir = Path(run["path"])
        run_dir = run_dir if run_dir.is_absolute() else root / run_dir
        changed = config_changes(paper_dir, tier, run["variant"], run_dir, run.get("overrides"))
        if changed:
            shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
            reasons.append(f"config changed: {shown}")
    return reasons


def stale_runs(
    result: dict[str, Any],
    paper_dir: Path | None = None,
    reference: dict[str, Any] | None = None,
    root: Path = Path("."),
) -> dict[str, list[str]]:
    """{"<variant>/seed<n>": reasons} for the stale runs of a compare.json (reference: its own provenance)."""
    ref = reference if reference is not None else (result.get("provenance") or {})
    tier = str(result.get("tier", "smoke"))
    out = {}
    for run in result.get("runs") or []:
        if reasons := stale_reasons(run, ref, paper_dir, tier, root):
            out[f"{run['variant']}/seed{run['seed']}"] = reasons
    return out
