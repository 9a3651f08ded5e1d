"""benchmarks/dag_costs.py reads a Snakemake log: each job's time from its start stamp to its `Finished` stamp,
summed per rule and per paper; a job that never finished is counted apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import dag_costs  # noqa: E402

LOG = """Building DAG of jobs...
Job stats:
job         count
--------  -------
all             1
evaluate        2
report          1
train           3
total           7

[Wed Dec  2 09:14:11 2026]
localrule train:
    output: results/dapo/smoke/dapo/seed0/summary.json
    jobid: 7
    wildcards: paper=dapo, tier=smoke, variant=dapo, seed=0
Shell command: python -m repro train ...

[Wed Dec  2 09:14:11 2026]
rule train:
    jobid: 8
    wildcards: paper=dpo, tier=smoke, variant=dpo, seed=1

[Wed Dec  2 09:14:52 2026]
Finished jobid: 8 (Rule: train)
1 of 4 steps (25%) done

[Wed Dec  2 09:15:00 2026]
localrule evaluate:
    jobid: 9
    wildcards: paper=dpo, tier=smoke, variant=dpo, seed=1

[Wed Dec  2 09:15:08 2026]
Finished jobid: 7 (Rule: train)

[Wed Dec  2 09:15:09 2026]
Finished jobid: 9 (Rule: evaluate)

[Wed Dec  2 09:15:10 2026]
rule report:
    jobid: 10
    wildcards: paper=dapo
"""


def test_job_seconds_per_rule_and_paper() -> None:
    costs = dag_costs.parse(LOG.splitlines())
    seconds = {j: job.seconds for j, job in costs.jobs.items()}
    assert seconds == {7: 57.0, 8: 41.0, 9: 9.0, 10: None}
    assert {j: job.paper for j, job in costs.jobs.items()} == {7: "dapo", 8: "dpo", 9: "dpo", 10: "dapo"}
    text = dag_costs.report(costs)
    assert text.startswith("wall 1.0 min (09:14:11 to 09:15:10); 3 jobs finished, 1 started and not finished")
    assert "| train | 2 | 98 | 49.0 | 57 | 91.6% |" in text
    assert "| evaluate | 1 | 9 | 9.0 | 9 | 8.4% |" in text
    assert "| dpo | 2 | 50 | 25.0 | 41 | 46.7% |" in text
    # 2 train jobs (mean 49 s) and 1 evaluate (9 s) in 59 s of wall: 107 / 59 job-seconds per second; left: one
    # train and one evaluate, (49 + 9) / (107 / 59) = 32.0 s more, and the report job, which has no mean yet
    assert costs.planned == {"all": 1, "evaluate": 2, "report": 1, "train": 3}
    assert text.endswith(
        "projected: 3 jobs left (evaluate 1, report 1, train 1); at this run's mean per rule and its concurrency"
        " (1.81 job-seconds per second) ~0.5 min more, ~1.5 min in all; not counted, no finished job yet: report"
    )
    later = dag_costs.report(costs, since="09:15")
    assert (
        "3 jobs finished (1 started from 09:15 on)" in later
        and "projected" not in later
        and "| evaluate | 1 | 9 | 9.0 | 9 | 100.0% |" in later
    )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dag_costs.py"), *args], capture_output=True, text=True
    )


def test_a_log_without_finished_jobs_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.write_text("Building DAG of jobs...\nNothing to be done.\n")
    done = run_cli(str(log))
    assert done.returncode == 1 and "no finished Snakemake jobs" in done.stderr
    missing = run_cli(str(tmp_path / "nope.log"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    log.write_text(LOG)
    bad = run_cli(str(log), "--since", "9h")
    assert bad.returncode == 2 and "HH:MM" in bad.stderr


def test_a_finished_run_projects_nothing() -> None:
    costs = dag_costs.Costs(planned={"all": 1, "train": 2})
    assert dag_costs.projection(costs, {"train": [10.0, 20.0]}, 15.0) == "all 3 planned jobs finished"
