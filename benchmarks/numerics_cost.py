"""What pinned CPU numerics cost (repro/numerics.py): the smoke DAPO step and the smoke base build, pinned and native,
alternating on the same machine so that drift in its load hits both alike.

    python benchmarks/numerics_cost.py [--rounds 3] [--base-steps 150] [--dapo-steps 6]

Each measurement is a fresh process (the switch is read on import). The DAPO step is the median `step_time` of a
`repro train` run of dapo/dapo at the smoke tier on the built smoke base (results/base/smoke, build it first:
snakemake results/base/smoke/prepare.json); the base build is `repro prepare` of configs/base/smoke.yaml shortened to
--base-steps SFT steps and 20 evaluation problems (its wall time). Prints one line per measurement and a summary:
`numerics_cost dapo_step=<pinned/native> base_build=<pinned/native>` (ratios; goal under 1.10 for the DAPO step).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODES = {"pinned": {}, "native": {"REPRO_NUMERICS": "native"}}


def env_for(mode: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    return {**clean, "HF_HUB_OFFLINE": "1", "REPRO_THREADS": "1", **MODES[mode]}


def dapo_step(mode: str, steps: int, work: Path) -> float:
    out = work / f"dapo-{mode}-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "repro", "train", "--paper", "dapo", "--tier", "smoke", "--variant", "dapo",
               "--seed", "0", "--out", str(out), "--max-steps", str(steps)]  # fmt: skip
    subprocess.run(command, cwd=ROOT, env=env_for(mode), check=True, capture_output=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return statistics.median(row["step_time"] for row in rows[1:])  # the first step warms caches up


def base_build(mode: str, sft_steps: int, work: Path) -> float:
    cfg = yaml.safe_load((ROOT / "configs/base/smoke.yaml").read_text())
    cfg["sft"]["steps"] = sft_steps
    cfg["sft"]["warmup_steps"] = min(cfg["sft"]["warmup_steps"], sft_steps // 4)
    cfg["eval"]["n_problems"] = 20
    config = work / f"base-{mode}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = work / f"base-{mode}-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "repro", "prepare", "--config", str(config), "--out", str(out)]
    subprocess.run(command, cwd=ROOT, env={**env_for(mode), "REPRO_THREADS": "2"}, check=True, capture_output=True)
    return float(json.loads((out / "prepare.json").read_text())["wall_time_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-steps", type=int, default=150)
    parser.add_argument("--dapo-steps", type=int, default=6)
    args = parser.parse_args()
    if not (ROOT / "results/base/smoke/prepare.json").is_file():
        raise SystemExit("build the smoke base first: snakemake results/base/smoke/prepare.json")
    times: dict[str, dict[str, list[float]]] = {
        "dapo_step": {m: [] for m in MODES},
        "base_build": {m: [] for m in MODES},
    }
    with tempfile.TemporaryDirectory(prefix="numerics-cost-") as tmp:
        work = Path(tmp)
        for i in range(args.rounds):
            order = list(MODES) if i % 2 == 0 else list(reversed(MODES))  # alternate which goes first
            for mode in order:
                times["dapo_step"][mode].append(dapo_step(mode, args.dapo_steps, work))
                print(f"round {i} {mode:6s} dapo step {times['dapo_step'][mode][-1]:.3f} s", flush=True)
            for mode in order:
                times["base_build"][mode].append(base_build(mode, args.base_steps, work))
                print(f"round {i} {mode:6s} base build ({args.base_steps} SFT steps) "
                      f"{times['base_build'][mode][-1]:.1f} s", flush=True)  # fmt: skip
    ratios = {name: statistics.median(t["pinned"]) / statistics.median(t["native"]) for name, t in times.items()}
    for name, t in times.items():
        print(
            f"{name}: pinned median {statistics.median(t['pinned']):.3f} s, native {statistics.median(t['native']):.3f} s"
        )
    print(f"numerics_cost dapo_step={ratios['dapo_step']:.3f} base_build={ratios['base_build']:.3f}")


if __name__ == "__main__":
    main()
