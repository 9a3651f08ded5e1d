"""Our trainers vs TRL 1.16's on the same tiny model, data and settings: GRPO (8 generations, 16 prompts per step,
completions ≤ 32 tokens) and DPO (batch 16). Each run is its own process; the sides alternate (ours, TRL, ours,
TRL, ...) so that drift in the machine's speed hits both. Prints a table, then `speedup_vs_trl grpo=<x> dpo=<y>`.

    python benchmarks/vs_trl.py                  # the smoke tier's warm-started base (results/base/smoke/model)
    python benchmarks/vs_trl.py --model random   # a random-init tiny Llama built here: every completion ~32 tokens
    python benchmarks/vs_trl.py --only grpo --repeats 3

steps/s counts optimizer steps after the first `--warmup` ones (so one-off set-up is left out: TRL's and our
precomputed DPO reference log-probs, first-call allocations). Generated tokens are completion tokens up to the
first EOS. Peak RSS is the process's lifetime maximum. Both sides reseed torch before every `generate` call with
the same seeds and see the prompts (and pairs) in the same order, so their first generations are the same samples
(the table says whether they were: `same inputs`) and their first losses must agree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).with_name("vs_trl_workers.py")
LOSS_TOLERANCE = 1e-6
SMOKE_BASE = Path("results/base/smoke/model")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default=str(SMOKE_BASE), help="a saved causal LM + tokenizer directory, or `random` (built here)"
    )
    parser.add_argument("--grpo-steps", type=int, default=24)
    parser.add_argument("--dpo-steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3, help="optimizer steps left out of steps/s")
    parser.add_argument("--repeats", type=int, default=2, help="runs per side and trainer, alternating")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["grpo", "dpo"], help="run one of the two comparisons")
    args = parser.parse_args()
    if args.warmup < 1 or args.grpo_steps <= args.warmup + 1 or args.dpo_steps <= args.warmup + 1:
        parser.error("--warmup must be ≥ 1 and each run must have at least two steps after it")
    if args.model != "random" and not (ROOT / args.model / "config.json").is_file():
        hint = " (build it: snakemake results/base/smoke/prepare.json)" if Path(args.model) == SMOKE_BASE else ""
        parser.error(f"--model {args.model}: no saved model there{hint}; or pass --model random")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    # Each worker runs alone on the cores: OpenMP's own default (spin briefly, then sleep) suits that; a passive
    # policy exported by the calling shell would halve 2-thread speed on this VM (docs/performance.md). Both sides
    # run under the same policy.
    env.pop("OMP_WAIT_POLICY", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory(prefix="vs_trl_") as tmp:
        model_dir = build_model(Path(tmp) / "model") if args.model == "random" else str(ROOT / args.model)
        kinds = [args.only] if args.only else ["grpo", "dpo"]
        results: dict[str, dict[str, list[dict[str, Any]]]] = {k: {"ours": [], "trl": []} for k in kinds}
        for rep in range(args.repeats):
            for kind in kinds:
                steps = args.grpo_steps if kind == "grpo" else args.dpo_steps
                for side in ("ours", "trl"):
                    out = Path(tmp) / f"{kind}_{side}_{rep}" / "record.json"
                    out.parent.mkdir(parents=True)
                    print(f"[{rep + 1}/{args.repeats}] {kind} {side}: {steps} steps ...", file=sys.stderr, flush=True)
                    cmd = [sys.executable, str(WORKERS), f"{kind}_{side}", str(model_dir), str(steps), str(out)]
                    done = subprocess.run([*cmd, str(args.threads)], env=env, cwd=ROOT, capture_output=True, text=True)
                    if done.returncode != 0:
                        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
                        print(f"{kind} {side} failed (exit {done.returncode})", file=sys.stderr)
                        return 1
                    results[kind][side].append(json.loads(out.read_text(encoding="utf-8")))
    return report(results, args.warmup, "random-init tiny Llama" if args.model == "random" else args.model)


def build_model(path: Path) -> str:
    sys.path.insert(0, str(ROOT))
    from repro.models.tiny import save_tiny

    return str(save_tiny(path, seed=0))


def steps_per_s(record: dict[str, Any], warmup: int) -> float:
    times = record["step_times"]  # perf_counter after each optimizer step
    return (len(times) - warmup) / (times[-1] - times[warmup - 1])


def report(results: dict[str, dict[str, list[dict[str, Any]]]], warmup: int, model: str) -> int:
    repeats = len(next(iter(results.values()))["ours"])
    print(
        f"model: {model}; steps/s after {warmup} warm-up steps, median of {repeats} runs per side;"
        " OpenMP's default wait policy"
    )
    print()
    print("| trainer | side | steps/s (each run) | s/step | gen tokens/s | peak RSS MB | first losses | same inputs |")
    print("|---|---|---|---|---|---|---|---|")
    speedups: dict[str, float] = {}
    failed = False
    for kind, sides in results.items():
        medians = {}
        first = {side: records[0] for side, records in sides.items()}
        # DPO's inputs are the pairs, in the same order on both sides; GRPO's are the samples, compared by hash
        same = kind == "dpo" or first["ours"]["generate_hashes"][:1] == first["trl"]["generate_hashes"][:1]
        for side, records in sides.items():
            rates = [steps_per_s(r, warmup) for r in records]
            medians[side] = statistics.median(rates)
            tokens = statistics.median(r["tokens"] / (r["step_times"][-1] - r["step_times"][0]) for r in records)
            cells = [
                kind, side, f"{medians[side]:.2f} ({', '.join(f'{x:.2f}' for x in rates)})", f"{1 / medians[side]:.3f}",
                f"{tokens:.0f}" if kind == "grpo" else "—", f"{max(r['peak_rss_mb'] for r in records):.0f}",
                ", ".join(f"{x:.7f}" for x in first[side]["losses"]), "yes" if same else "no",
            ]  # fmt: skip
            print("| " + " | ".join(cells) + " |")
        speedups[kind] = medians["ours"] / medians["trl"]
        gap = abs(first["ours"]["losses"][0] - first["trl"]["losses"][0])
        if same and gap > LOSS_TOLERANCE:
            print(f"\n{kind}: first-step losses differ by {gap:.2e} on the same inputs (tolerance {LOSS_TOLERANCE})")
            failed = True
    print()
    print("speedup_vs_trl " + " ".join(f"{k}={v:.2f}" for k, v in speedups.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
