"""Wall time of scoring the tiny smoke model on all seven math suites at smoke settings, through lm-eval.

    python scripts/time_eval_suites.py [--model prepared:smoke] [--out-dir results/bench/smoke]

Uses the prepared smoke base model when it exists (`snakemake results/base/smoke/prepare.json`), else
a freshly built tiny model. Prints one line per suite and the total; the issue's budget is 10 minutes.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

BUDGET_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="checkpoint dir or prepared:<base> (default: prepared:smoke)")
    parser.add_argument("--out-dir", type=Path, default=Path("results/bench/smoke"))
    parser.add_argument("--data-dir", default=os.environ.get("REPRO_MATH_DATA", "data/math"))
    args = parser.parse_args()
    started = time.time()
    model = args.model
    if model is None:
        model = "prepared:smoke" if Path("results/base/smoke/prepare.json").is_file() else None
    if model is None:
        from repro.models.tiny import save_tiny

        model = str(save_tiny(args.out_dir / "tiny_model"))
        print(f"no prepared smoke model: built a fresh tiny model at {model}")
    from repro.eval.benchmark import benchmarks
    from repro.runs import bench_model

    results = bench_model(model, list(benchmarks()), args.out_dir, smoke=True, overrides={}, data=args.data_dir)
    total = time.time() - started
    print(f"\n{'suite':<14} {'metric':<14} {'score':>7} {'problems':>8} {'wall s':>7}")
    for r in results:
        print(
            f"{r['benchmark']:<14} {r['metric_name']:<14} {100 * r['value']:6.2f}% {r['n_problems']:8d} "
            f"{r['wall_time_s']:7.1f}"
        )
    verdict = "within" if total <= BUDGET_S else "OVER"
    print(f"total wall time (incl. imports and loading): {total:.1f} s, {verdict} the {BUDGET_S:.0f} s budget")


if __name__ == "__main__":
    main()
