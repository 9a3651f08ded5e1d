"""Where a Snakemake run's time went, from its log: per rule and per paper, job-seconds and the run's wall time.

    snakemake -c2 > catalog.log 2>&1        # any run of this project's DAG, its stdout and stderr kept
    python benchmarks/dag_costs.py catalog.log
    python benchmarks/dag_costs.py catalog.log --since 10:05   # only jobs started from 10:05 on

Job-seconds are each job's start-to-finish time as the log stamps it (1 s resolution), so with two jobs at a
time they add up to about twice the wall time; `share` is a rule's (or paper's) part of all job-seconds.

For a run that has not finished (the whole catalog takes hours), the last line projects its total: the jobs
Snakemake planned (its `Job stats` table) that have not finished, at the mean job time of their rule so far,
run at the concurrency seen so far (job-seconds per wall second). It assumes the jobs done so far are a fair
sample of the rest, which the default profile's `scheduler-subsample` (random picks among ready jobs) makes
likely but does not guarantee; a rule with no finished job yet is left out and named.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
STARTED = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
PAPER = re.compile(r"^\s+wildcards: .*\bpaper=(\w+)")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")
STATS_ROW = re.compile(r"^(\w+)\s+(\d+)$")  # a row of Snakemake's `Job stats` table: rule, count


@dataclass
class Job:
    rule: str
    started: datetime
    paper: str = "-"
    seconds: float | None = None  # None: never finished in this log


@dataclass
class Costs:
    jobs: dict[int, Job] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None
    planned: dict[str, int] = field(default_factory=dict)  # jobs per rule in the run's first `Job stats` table

    def finished(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.seconds is not None]


def parse(lines: list[str]) -> Costs:
    costs = Costs()
    stamp: datetime | None = None
    pending: Job | None = None  # a job whose `jobid:` line is still to come
    in_stats = False  # inside the first `Job stats:` table
    for line in lines:
        line = line.rstrip("\n")
        if line == "Job stats:" and not costs.planned:
            in_stats = True
        elif in_stats:
            if (m := STATS_ROW.match(line)) and m.group(1) != "total":
                costs.planned[m.group(1)] = int(m.group(2))
            elif line.startswith("total") or (not line.strip() and costs.planned):
                in_stats = False
        elif m := STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            costs.first = costs.first or stamp
            costs.last = stamp
        elif (m := STARTED.match(line)) and stamp is not None:
            pending = Job(m.group(1), stamp)
        elif (m := JOBID.match(line)) and pending is not None:
            costs.jobs[int(m.group(1))] = pending
        elif (m := PAPER.match(line)) and pending is not None:
            pending.paper = m.group(1)
        elif (m := FINISHED.match(line)) and stamp is not None:
            job = costs.jobs.get(int(m.group(1)))
            if job is not None:
                job.seconds = (stamp - job.started).total_seconds()
                pending = None
    return costs


def table(groups: dict[str, list[float]], total: float, label: str) -> list[str]:
    out = [f"| {label} | jobs | job-seconds | mean s | max s | share |", "|---|---|---|---|---|---|"]
    for name, secs in sorted(groups.items(), key=lambda kv: -sum(kv[1])):
        share = sum(secs) / total if total else 0.0
        out.append(
            f"| {name} | {len(secs)} | {sum(secs):.0f} | {sum(secs) / len(secs):.1f} | {max(secs):.0f} | {share:.1%} |"
        )
    return out


def report(costs: Costs, since: str | None = None) -> str:
    """`since` ("HH:MM"): count only the jobs started at or after that time of the run's first day."""
    done = costs.finished()
    if since is not None and costs.first is not None:
        hour, minute = (int(x) for x in since.split(":"))
        cutoff = costs.first.replace(hour=hour, minute=minute, second=0)
        done = [j for j in done if j.started >= cutoff]
    if not done or costs.first is None or costs.last is None:
        raise SystemExit("no finished Snakemake jobs in this log: pass the log of a run (its stdout and stderr)")
    total = sum(j.seconds or 0.0 for j in done)
    by_rule: dict[str, list[float]] = defaultdict(list)
    by_paper: dict[str, list[float]] = defaultdict(list)
    for j in done:
        by_rule[j.rule].append(j.seconds or 0.0)
        by_paper[j.paper].append(j.seconds or 0.0)
    wall = (costs.last - costs.first).total_seconds()
    unfinished = sum(j.seconds is None for j in costs.jobs.values())
    counted = f" ({len(done)} started from {since} on)" if since else ""
    lines = [
        f"wall {wall / 60:.1f} min ({costs.first:%H:%M:%S} to {costs.last:%H:%M:%S}); "
        f"{len(costs.finished())} jobs finished{counted}, {unfinished} started and not finished; "
        f"{total / 60:.1f} job-minutes counted",
        "",
        *table(by_rule, total, "rule"),
        "",
        *table(by_paper, total, "paper"),
    ]
    if costs.planned and since is None:
        lines += ["", projection(costs, by_rule, wall)]
    return "\n".join(lines)


def projection(costs: Costs, by_rule: dict[str, list[float]], wall: float) -> str:
    """The run's projected total wall time, from its planned jobs, its means per rule and its concurrency."""
    left = {rule: n - len(by_rule.get(rule, [])) for rule, n in costs.planned.items() if rule != "all"}
    left = {rule: n for rule, n in left.items() if n > 0}
    if not left:
        return f"all {sum(costs.planned.values())} planned jobs finished"
    concurrency = sum(sum(secs) for secs in by_rule.values()) / wall if wall else 0.0  # job-seconds per second
    unknown = sorted(rule for rule in left if rule not in by_rule)
    job_seconds = sum(n * sum(by_rule[r]) / len(by_rule[r]) for r, n in left.items() if r in by_rule)
    more = job_seconds / concurrency if concurrency else float("inf")
    counts = ", ".join(f"{rule} {n}" for rule, n in sorted(left.items(), key=lambda kv: -kv[1]))
    missing = f"; not counted, no finished job yet: {', '.join(unknown)}" if unknown else ""
    return (
        f"projected: {sum(left.values())} jobs left ({counts}); at this run's mean per rule and its concurrency "
        f"({concurrency:.2f} job-seconds per second) ~{more / 60:.1f} min more, ~{(wall + more) / 60:.1f} min "
        f"in all{missing}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path, help="a Snakemake run's output (stdout and stderr)")
    parser.add_argument("--since", help="HH:MM: only jobs started then or later (e.g. after other work stopped)")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        parser.error(f"{args.log}: no such file; redirect a snakemake run's output to a file and pass that")
    if args.since is not None and not re.fullmatch(r"\d\d:\d\d", args.since):
        parser.error(f"--since {args.since!r}: give a time of day as HH:MM, e.g. --since 10:05")
    print(report(parse(args.log.read_text(errors="replace").splitlines()), args.since))
    return 0


if __name__ == "__main__":
    sys.exit(main())
