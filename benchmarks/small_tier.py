"""Wall time of the small tier, one paper per trainer kind, on the CPU stand-in for a hub checkpoint.

    python benchmarks/small_tier.py                               # dapo, dpo, dft, centered_rm, on_policy_distillation
    python benchmarks/small_tier.py --papers dapo,dpo --steps 3

For each paper, in a fresh copy of the project: `snakemake papers/<id> --config tier=small model=<stand-in>
data_dir=<shared data> max_steps=<steps> seeds=1` (plus the distillation teacher, a deeper stand-in, through
`set=`), the tier's own protocols otherwise (lengths, held-out sets, benchmarks). Prints one row per paper: jobs,
wall time, and the per-rule job-seconds from Snakemake's log (benchmarks/dag_costs.py), then one line
`small_tier_minutes <paper>=<min> ...`. The goal (issue 23): each under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_e2e_dapo import copy_project  # noqa: E402  (what a clean checkout holds, as the end-to-end tests copy it)

SHARED_DATA = ROOT.parent / "shared" / "data"
PAPERS = ("dapo", "dpo", "dft", "centered_rm", "on_policy_distillation")


def build(out: Path, *extra: str) -> Path:
    subprocess.run([sys.executable, "-m", "repro", "standin", "--out", str(out), *extra], cwd=ROOT, check=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", default=",".join(PAPERS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--data-dir", type=Path, default=SHARED_DATA, help="the folder data_dir= names (math/, preference/)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the project copies under this folder")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    root = args.keep or Path(tempfile.mkdtemp(prefix="repro-small-tier-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    # the stand-ins' tokenizer text: the training sets, as when these times were first measured (the default is the
    # shipped evaluation sets)
    corpus = [
        arg for name in ("gsm8k_train", "math_train") for arg in ("--corpus", str(args.data_dir / f"math/{name}.jsonl"))
    ]
    student = build(root / "standin", *corpus)
    teacher = build(root / "standin_teacher", *corpus, "--layers", "3", "--seed", "1")
    print(f"stand-ins built in {time.time() - started:.0f} s: {student}, {teacher}")
    minutes = {}
    for paper in [p for p in args.papers.split(",") if p]:
        work = root / paper
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        copy_project(work)
        config = ["tier=small", f"model={student}", f"data_dir={args.data_dir}", f"max_steps={args.steps}", "seeds=1"]
        if paper == "on_policy_distillation":
            config.append(f"set=train.teacher_model_name_or_path={teacher}")
        began = time.time()
        out = subprocess.run(
            ["snakemake", f"papers/{paper}", "--config", *config], cwd=work, env=env, capture_output=True, text=True
        )
        wall = time.time() - began
        log = work / "snakemake.log"
        log.write_text(out.stdout + out.stderr, encoding="utf-8")
        status = "ok" if out.returncode == 0 else f"FAILED (exit {out.returncode}; see {log})"
        print(f"\n## {paper}: {wall / 60:.1f} min, {status}")
        costs = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dag_costs.py"), str(log)], text=True,
                               capture_output=True)  # fmt: skip
        print(costs.stdout.strip())
        minutes[paper] = wall / 60
    print("\nsmall_tier_minutes " + " ".join(f"{p}={m:.1f}" for p, m in minutes.items()))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
