"""Provenance: git state, config hash, package versions; never raises outside a git checkout."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from repro import provenance
from repro.provenance import NOT_INSTALLED, UNKNOWN, collect_provenance, config_sha256, git_state

KEYS = {
    "git_sha",
    "git_dirty",
    "code_sha256",
    "config_sha256",
    "python",
    "packages",
    "hostname",
    "cpu_count",
    "cpu",
    "platform",
    "gpu",
    "numerics",
    "timestamp_utc",
}


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def test_fields_and_config_hash(tmp_path: Path) -> None:
    text = "loss:\n  epsilon_high: 0.28\n"
    prov = collect_provenance(text, repo_dir=tmp_path)
    assert set(prov) == KEYS
    assert prov["config_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert config_sha256(None) is None
    assert set(prov["packages"]) == set(provenance.PACKAGES)
    assert prov["cpu_count"] >= 1 and prov["python"].startswith("3.")
    assert datetime.fromisoformat(prov["timestamp_utc"]).utcoffset().total_seconds() == 0
    assert prov["gpu"] is None or isinstance(prov["gpu"], str)
    assert prov["numerics"]["pinned"] is True  # torch is loaded in the test process, and numerics are pinned


def test_outside_git_is_unknown(tmp_path: Path) -> None:
    assert git_state(tmp_path) == (UNKNOWN, None)


def test_git_missing_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert collect_provenance(repo_dir=tmp_path)["git_sha"] == UNKNOWN


def test_git_sha_and_dirty_flag(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one", encoding="utf-8")
    assert git_state(tmp_path) == (UNKNOWN, True)  # no commit yet, untracked file
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "a.txt").write_text("two", encoding="utf-8")
    assert git_state(tmp_path) == (head, True)


def test_absent_package_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(provenance.PACKAGES, "nothing_here", "no-such-distribution-xyz")
    monkeypatch.setitem(provenance.PACKAGES, "pytest", "pytest")
    versions = provenance.package_versions()
    assert versions["nothing_here"] == NOT_INSTALLED
    assert versions["pytest"] == importlib.metadata.version("pytest")


def test_code_hash_follows_the_core_not_other_paper_folders(tmp_path: Path) -> None:
    """A paper folder committed by someone else must not make every other report's runs "stale"; an edit to the
    core (even uncommitted) must."""
    git(tmp_path, "init", "-q")
    (tmp_path / "repro").mkdir()
    (tmp_path / "repro" / "loss.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "papers" / "a").mkdir(parents=True)
    (tmp_path / "papers" / "a" / "paper.yaml").write_text("id: a\n", encoding="utf-8")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    before = collect_provenance(repo_dir=tmp_path)["code_sha256"]
    (tmp_path / "papers" / "b").mkdir()
    (tmp_path / "papers" / "b" / "paper.yaml").write_text("id: b\n", encoding="utf-8")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "another paper")
    assert collect_provenance(repo_dir=tmp_path)["code_sha256"] == before
    (tmp_path / "repro" / "loss.py").write_text("x = 2\n", encoding="utf-8")  # uncommitted core edit
    assert collect_provenance(repo_dir=tmp_path)["code_sha256"] != before
    assert collect_provenance(repo_dir=tmp_path / "nowhere")["code_sha256"] is None


def test_cpu_name_is_the_first_processors_model_and_widest_vector_extension() -> None:
    info = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 avx512f\n\nprocessor\t: 1\n"
    assert provenance.cpu_name(info) == "AMD EPYC (avx512f)"
    assert provenance.cpu_name(info.replace(" avx512f", "")) == "AMD EPYC (avx2)"
    assert provenance.cpu_name("model name : Old\nflags : fpu sse2\n") == "Old (no avx)"
