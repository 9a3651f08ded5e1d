"""Provenance carried by every artifact: code version, config hash, package versions, hardware.

Never raises: outside a git checkout the SHA is "unknown", an absent package is "not installed".
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

UNKNOWN = "unknown"
NOT_INSTALLED = "not installed"
REPO_ROOT = Path(__file__).resolve().parent.parent

# distribution names as pip knows them; the key is the name shown in reports
PACKAGES = {
    "torch": "torch",
    "transformers": "transformers",
    "trl": "trl",
    "datasets": "datasets",
    "accelerate": "accelerate",
    "lm_eval": "lm_eval",
    "math_verify": "math-verify",
    "snakemake": "snakemake",
}
# What a run's numbers depend on beyond its own config: the shared core, the base configs and the DAG. A paper
# folder added or edited elsewhere does not change it (a run's own configs are in config_sha256).
CODE_PATHS = ("repro", "configs", "data", "Snakefile", "pyproject.toml")  # data: the shipped evaluation sets


def collect_provenance(
    config_text: str | None = None, repo_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Everything needed to tell whether two artifacts came from the same code, config and setup.

    `config_text` is hashed (sha256) as given; `repo_dir` defaults to this checkout.
    """
    repo = Path(repo_dir) if repo_dir is not None else REPO_ROOT
    sha, dirty = git_state(repo)
    return {
        "git_sha": sha,
        "git_dirty": dirty,
        "code_sha256": code_sha256(repo),
        "config_sha256": config_sha256(config_text),
        "python": platform.python_version(),
        "packages": package_versions(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_name(),
        "platform": platform.platform(),
        "gpu": gpu_name(),
        "numerics": numerics_state(),
        "timestamp_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def numerics_state() -> dict[str, Any] | None:
    """Whether CPU numerics were pinned and which kernels ATen used (repro/numerics.py); None where torch was not
    loaded (a report or index job: importing it only for this would cost seconds)."""
    if "torch" not in sys.modules:
        return None
    from repro.numerics import state

    try:
        return state()
    except Exception:  # provenance never raises
        return None


def code_sha256(repo: Path) -> str | None:
    """sha256 over the path and content of every file git tracks or would track under CODE_PATHS, as they are in
    the working tree (uncommitted edits count); None outside git."""
    listed = _git(repo, "ls-files", "--cached", "--others", "--exclude-standard", "--", *CODE_PATHS)
    if listed is None:
        return None
    digest = hashlib.sha256()
    for name in sorted(set(listed.splitlines())):
        path = repo / name
        if path.is_file():
            digest.update(f"{name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def config_sha256(config_text: str | None) -> str | None:
    """sha256 hex digest of the config text (UTF-8), None without a config."""
    if config_text is None:
        return None
    return hashlib.sha256(config_text.encode("utf-8")).hexdigest()


def git_state(repo: Path) -> tuple[str, bool | None]:
    """(HEAD sha, whether tracked or untracked files outside results/ differ); ("unknown", None) outside git."""
    sha = _git(repo, "rev-parse", "HEAD")
    if sha is None:
        return UNKNOWN, None if _git(repo, "rev-parse", "--git-dir") is None else _has_changes(repo)
    return sha, _has_changes(repo)


def package_versions() -> dict[str, str]:
    return {name: _version(dist) for name, dist in PACKAGES.items()}


# Vector extensions that select different CPU kernels (oneDNN, MKL, torch's own), widest first.
CPU_ISAS = ("avx512f", "avx2", "avx", "sse4_2")


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU model and its widest vector extension, e.g. 'AMD EPYC (avx512f)' (Linux /proc/cpuinfo; elsewhere
    what `platform` says). Two CPUs with different extensions run different kernels that round differently, and
    training amplifies that: the nightly report says when its baselines come from another CPU."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return platform.processor() or platform.machine() or "unknown"
    first = cpuinfo.split("\n\n", 1)[0]  # the first processor's block
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    flags = set(fields.get("flags", "").split())
    isa = next((f for f in CPU_ISAS if f in flags), "no avx")
    return f"{fields.get('model name') or platform.machine() or 'unknown'} ({isa})"


def gpu_name() -> str | None:
    """The first CUDA/ROCm device's name as torch sees it; None without one.

    torch is imported only when it is installed and the machine shows a GPU driver (or torch is
    already loaded), so provenance stays fast on CPU machines.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    driver_seen = any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/kfd"))
    if not (driver_seen or shutil.which("nvidia-smi") or "torch" in sys.modules):
        return None
    try:
        import torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # a broken CUDA setup must not break provenance  # noqa: BLE001
        return None
    return None


def _has_changes(repo: Path) -> bool | None:
    """Whether code or configs differ from HEAD; results/ (outputs, and baselines being refreshed) does not count."""
    status = _git(repo, "status", "--porcelain", "--", ".", ":(exclude)results")
    return None if status is None else bool(status)


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(dist: str) -> str:
    for name in (dist, dist.replace("-", "_"), dist.replace("_", "-")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


__all__ = ["collect_provenance", "config_sha256", "git_state", "gpu_name", "package_versions"]
