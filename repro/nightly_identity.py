"""What makes a nightly run bit-comparable with its baseline (issue 26).

With CPU numerics pinned (repro/numerics.py), the same code, paper folder, installed packages, config and warm
start give the same bits on every x86-64 CPU with AVX2. Where all of those match, the nightly compares a metric
exactly: any seed whose value differs by a single bit is a regression of reproducibility, however small. Where one
of them differs (the code changed, a package moved, numerics were native), it falls back to the statistical test
and says why, naming the packages that moved.
"""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from repro.io import read_json

PREPARED = "prepared:"
LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def environment(lock: Path = LOCK) -> dict[str, str]:
    """The installed version of every package the project locks (requirements.lock: its whole dependency tree),
    "not installed" where one is missing; every installed distribution where there is no lock. Packages outside
    the project's tree (whatever else a machine's Python holds) do not decide its bits and are left out, so another
    machine with the same locked packages still compares exactly."""
    installed: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            installed[_normal(name)] = dist.version
    if not lock.is_file():
        return dict(sorted(installed.items()))
    names = {_normal(m[1]) for line in lock.read_text(encoding="utf-8").splitlines() if (m := _PIN.match(line))}
    return {name: installed.get(name, "not installed") for name in sorted(names)}


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def folder_sha256(folder: Path) -> str | None:
    """sha256 over the relative path and bytes of every file under `folder` that can change a run: prose (*.md)
    and caches left out, so a README edit keeps the nightly exact."""
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    files = (p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".md")
    for path in sorted(files):
        digest.update(f"{path.relative_to(folder).as_posix()}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def prepared_bases(resolved_config: Path) -> list[str]:
    """The `prepared:<name>` warm starts a run's resolved config names (its model, a teacher, a reference)."""
    if not resolved_config.is_file():
        return []
    from repro.io import read_yaml

    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and node.startswith(PREPARED):
            found.add(node[len(PREPARED) :])

    walk(read_yaml(resolved_config))
    return sorted(found)


def base_sha256(base_dir: Path) -> str | None:
    """What a prepared base gives a run: its model's weights, or for a preference sample (no model) its sample
    files; None where neither was built."""
    from repro.fingerprints import weights_sha256

    weights = weights_sha256(base_dir / "model")
    if weights is not None:
        return weights
    samples = sorted(base_dir.glob("*.jsonl"))
    if not samples:
        return None
    digest = hashlib.sha256()
    for path in samples:
        digest.update(f"{path.name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_identity(paper: str, variant_dir: Path, seeds: list[int], root: Path) -> dict[str, Any]:
    """Everything that decides a nightly run's bits, read from its finished seeds and this checkout."""
    summaries = {
        str(s): read_json(variant_dir / f"seed{s}" / "summary.json")
        for s in seeds
        if (variant_dir / f"seed{s}" / "summary.json").is_file()
    }
    provs = {s: summary.get("provenance") or {} for s, summary in summaries.items()}
    code = {p.get("code_sha256") for p in provs.values()}
    bases = sorted({b for s in summaries for b in prepared_bases(variant_dir / f"seed{s}" / "config.resolved.yaml")})
    return {
        "code_sha256": code.pop() if len(code) == 1 else None,  # None: seeds ran different code
        "paper_sha256": folder_sha256(root / "papers" / paper),
        "numerics_pinned": bool(provs) and all((p.get("numerics") or {}).get("pinned") is True for p in provs.values()),
        "config_sha256": {s: p.get("config_sha256") for s, p in sorted(provs.items())},
        "bases": {b: base_sha256(root / "results" / "base" / b) for b in bases},
        "environment": environment(),
    }


def package_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """'name a → b' for every distribution whose version differs ('—' where one side lacks it)."""
    names = sorted(set(before) | set(after))
    return [f"{n} {before.get(n, '—')} → {after.get(n, '—')}" for n in names if before.get(n) != after.get(n)]


def exact_blockers(baseline: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """Why the bits of `now` need not equal the baseline's; [] when they must (compare exactly)."""
    if not baseline:
        return ["the baseline records no identity (recorded before exact comparisons): re-record it"]
    reasons = []
    if not (baseline.get("numerics_pinned") and now.get("numerics_pinned")):
        side = "the baseline's" if not baseline.get("numerics_pinned") else "this run's"
        reasons.append(f"{side} CPU numerics were not pinned")
    if now.get("code_sha256") is None or baseline.get("code_sha256") != now.get("code_sha256"):
        reasons.append("the code differs")
    if baseline.get("paper_sha256") != now.get("paper_sha256"):
        reasons.append("the paper folder differs")
    if baseline.get("config_sha256") != now.get("config_sha256"):
        reasons.append("the resolved config differs")
    if baseline.get("bases") != now.get("bases") or None in (now.get("bases") or {}).values():
        reasons.append("the warm start's weights differ")
    moved = package_changes(baseline.get("environment") or {}, now.get("environment") or {})
    if moved:
        reasons.append(f"{len(moved)} package(s) moved")
    return reasons
