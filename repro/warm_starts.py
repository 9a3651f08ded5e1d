"""Other warm starts of the same base (issue 26, `--config bases=<n>`): is a verdict the mechanism's, or this
base's?

Warm start k of a prepared base `<name>` is `<name>_s<k>` (k ≥ 1): the same config (configs/base/<name>.yaml) and
initial weights, its SFT data drawn with the seed shifted by k (a preference sample: its draws), built from warm
start k of whatever it starts from (`init_from`, a preference sample's `policy`); prepare.shifted says why the
initialisation stays. Warm start 0 is the
base itself. A run on warm start k names every `prepared:<name>` of its config as `prepared:<name>_s<k>`
(Overrides.warm_start), and lands in results/<paper>/<tier>@base<k>/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

PREPARED = "prepared:"
BASE_DIR = Path("configs/base")
_REPLICA = re.compile(r"^(?P<stem>[a-z][a-z0-9_]*?)_s(?P<k>[1-9][0-9]*)$")


def replica_name(base: str, k: int) -> str:
    return base if k == 0 else f"{base}_s{k}"


def split_replica(name: str, base_dir: Path = BASE_DIR) -> tuple[str, int]:
    """(base, k) of a prepared name: `smoke_s2` -> ("smoke", 2) where configs/base/smoke_s2.yaml does not exist and
    configs/base/smoke.yaml does; any other name is its own warm start 0."""
    match = _REPLICA.match(name)
    if match and not (base_dir / f"{name}.yaml").is_file() and (base_dir / f"{match['stem']}.yaml").is_file():
        return match["stem"], int(match["k"])
    return name, 0


def rename_prepared(mapping: Any, k: int) -> Any:
    """A merged config with every `prepared:<name>` string renamed to warm start k's."""
    if k == 0:
        return mapping
    if isinstance(mapping, dict):
        return {key: rename_prepared(value, k) for key, value in mapping.items()}
    if isinstance(mapping, list):
        return [rename_prepared(value, k) for value in mapping]
    if isinstance(mapping, str) and mapping.startswith(PREPARED):
        return PREPARED + replica_name(mapping[len(PREPARED) :], k)
    return mapping
