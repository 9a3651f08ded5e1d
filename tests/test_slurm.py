"""A tiny DAG through the SLURM profile on a real (one-node) SLURM cluster: `scripts/slurm_single_node.sh start`,
then `pytest -m slurm`. Skipped where no cluster answers."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "slurm"
SNAKEFILE = """
rule all:
    input: "b.txt"

rule a:
    output: "a.txt"
    resources: runtime=5, mem_mb=200
    shell: "echo job=$SLURM_JOB_ID > {output}"

rule b:
    input: "a.txt"
    output: "b.txt"
    resources: runtime=5, mem_mb=200
    shell: "cat {input} > {output}; echo job=$SLURM_JOB_ID >> {output}"
"""


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False)
    return done.returncode == 0 and any(s in done.stdout for s in ("idle", "mixed", "alloc"))


@pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None, reason="no SLURM plugin")
def test_a_tiny_dag_runs_as_slurm_jobs_through_the_profile(tmp_path: Path) -> None:
    if not _cluster_answers():
        pytest.skip("no SLURM cluster answers (scripts/slurm_single_node.sh start)")
    (tmp_path / "Snakefile").write_text(SNAKEFILE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), "--jobs", "2", "--latency-wait", "5",
         "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = (tmp_path / "b.txt").read_text(encoding="utf-8").split()
    jobs = [line.removeprefix("job=") for line in lines]
    assert len(jobs) == 2 and all(j.isdigit() for j in jobs) and jobs[0] != jobs[1]  # two sbatch jobs, in order
