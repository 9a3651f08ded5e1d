"""A clone of the repository alone (issue 25): nothing outside it is read, no `../shared` beside it, no
$REPRO_MATH_DATA, the hub offline and an empty hub cache. The small tier, whose training sets are not shipped, says
what to pass. The smoke DAG itself runs from such a clone in tests/test_e2e_dapo.py (its project is
`clone_checkout`), which checks that every run read the clone's own benchmark copies.

The clone is what git tracks plus the untracked files it would add (the working tree's, uncommitted edits included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def clone_checkout(dest: Path) -> Path:
    """The files a clone of this checkout would hold (tracked, plus untracked and not ignored), copied to `dest`."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for name in sorted(set(filter(None, listed.split("\0")))):
        src = ROOT / name
        if src.is_file():  # a tracked file deleted in the working tree is not in the clone
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def isolated_env(top: Path) -> dict[str, str]:
    """This process's environment, less anything that points at data outside the clone; hub offline, cache empty."""
    env = {k: v for k, v in os.environ.items() if k != "REPRO_MATH_DATA"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(top / "hf_home"))
    return env


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    top = tmp_path_factory.mktemp("bare")
    work = clone_checkout(top / "proj")
    assert not (top / "shared").exists() and (work / "data" / "math" / "aime24.jsonl").is_file()
    return work, isolated_env(top)


def test_the_small_tier_names_the_data_it_needs(clone: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """A stand-in checkpoint builds from the shipped sets alone; `repro check` of the small tier then names the
    training file it cannot find and the data_dir= that supplies it, and passes once a shipped file stands in."""
    work, env = clone

    def repro(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["python", "-m", "repro", *args], cwd=work, env=env, capture_output=True, text=True)

    built = repro("standin", "--out", str(tmp_path / "standin"), "--sft-steps", "0")
    assert built.returncode == 0, built.stderr[-2000:]
    check = ["check", "--paper", "dapo", "--tier", "small", "--model", str(tmp_path / "standin")]
    refused = repro(*check)
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert "data.prompts: '<data_dir>/math/math_train.jsonl' is a file you supply" in message
    assert "pass data_dir=<folder holding math/math_train.jsonl>" in message
    passed = repro(*check, "--set", "data.prompts=data/math/gsm8k.jsonl")
    assert passed.returncode == 0, (passed.stdout + passed.stderr)[-2000:]
    assert passed.stdout.count("ok dapo tier=small variant=") == 6
