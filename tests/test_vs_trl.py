"""benchmarks/vs_trl.py end to end on a random-init tiny Llama, a few steps per side: both trainers draw the same
samples (same seeds, same prompt order), so their first GRPO losses and their first DPO losses agree to 1e-6, and
the table ends with the line the issue asks for. Timing is printed, never asserted (a benchmark, not a timed test).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ours_and_trl_train_on_the_same_samples_with_equal_first_losses() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/vs_trl.py", "--model", "random", "--grpo-steps", "4", "--dpo-steps", "4"]
        + ["--warmup", "1", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]  # 1: first losses differ on same inputs
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"speedup_vs_trl grpo=\d+\.\d\d dpo=\d+\.\d\d", lines[-1])
    rows = {(cells[1], cells[2]): cells for line in lines if (cells := [c.strip() for c in line.split("|")])[1:2]}
    for kind in ("grpo", "dpo"):
        ours, trl = rows[(kind, "ours")], rows[(kind, "trl")]
        assert ours[8] == trl[8] == "yes"  # same inputs: GRPO compares the hashes of the sampled sequences
        first_ours, first_trl = (float(r[7].split(",")[0]) for r in (ours, trl))
        assert abs(first_ours - first_trl) <= 1e-6
        if kind == "grpo":  # the dense reward gives the random policy non-zero advantages: a loss worth comparing
            assert abs(first_ours) > 1e-4
