"""python -m repro {prepare,standin,train,eval,bench,rescore,compare,report,ablation,nightly,index,results,list,check}: the verbs
the Snakefile calls, and a few for people."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from repro.schema import ConfigError

LISTABLE = ("papers", "presets", "variants", "losses", "rewards", "tasks", "templates", "benchmarks", "judged")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m repro", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("prepare", help="build and SFT-warm-start a tiny base model")
    s.add_argument("--config", type=Path, required=True, help="configs/base/<name>.yaml")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument(
        "--warm-start",
        type=int,
        default=None,
        metavar="K",
        help="warm start K: the config's seeds shifted by K (default: from a config named <base>_s<K>.yaml, else 0)",
    )

    s = sub.add_parser(
        "standin",
        help="build a tiny stand-in for a hub checkpoint (Qwen2 layout, BPE tokenizer, ChatML template, "
        "generation_config with its own eos list, bf16): the small tier on CPU without a hub",
    )
    s.add_argument("--out", type=Path, required=True, help="the checkpoint folder to write")
    s.add_argument(
        "--corpus",
        type=Path,
        action="append",
        default=None,
        help="JSON Lines files with problem/answer rows to train the tokenizer on (repeatable; default: the GSM8K "
        "and MATH-500 copies shipped in data/math)",
    )
    s.add_argument("--sft-steps", type=int, default=None, help="steps teaching it to end its turns (0: random init)")
    s.add_argument("--layers", type=int, default=None, help="decoder layers (e.g. a deeper distillation teacher)")
    s.add_argument("--seed", type=int, default=0)

    s = sub.add_parser("train", help="train one (paper, tier, variant, seed) run")
    s.add_argument("--paper", required=True)
    s.add_argument("--tier", default="smoke")
    s.add_argument("--variant", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--max-steps", type=int, default=None, help="shorten the run (CI)")
    s.add_argument("--expect-model", default=None, help="fail unless the config names this model (set by the DAG)")
    _override_arguments(s)

    s = sub.add_parser("eval", help="evaluate a finished run on its held-out task")
    s.add_argument("--run", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = sub.add_parser("bench", help="score a run (--run) or any checkpoint (--model) on math benchmarks via lm-eval")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", type=Path, help="a finished run dir; its config holds the protocol")
    where.add_argument("--model", help="a checkpoint dir, hub id or prepared:<base>")
    s.add_argument("--benchmark", required=True, help="a name from `list benchmarks`, comma-separated names, or all")
    s.add_argument("--out", type=Path, help="with --run: the result JSON")
    s.add_argument("--out-dir", type=Path, help="with --model: one <benchmark>.json each")
    s.add_argument("--smoke", action="store_true", help="with --model: apply each benchmark's smoke protocol")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="with --model: protocol override")
    s.add_argument("--data-dir", default=None, help="local benchmark JSONL dir (default: $REPRO_MATH_DATA, else hub)")

    s = sub.add_parser("rescore", help="re-grade a stored benchmark result with the current grader (offline)")
    s.add_argument("result", type=Path, help="a bench/<name>.json")
    s.add_argument("--out", type=Path, default=None, help="where to write (default: replace the file)")

    s = sub.add_parser("compare", help="targets and claims of a paper at a tier -> compare.json")
    s.add_argument("--paper", required=True)
    s.add_argument("--tier", default="smoke")
    s.add_argument("--out", type=Path, required=True)

    s = sub.add_parser("report", help="render reports/<paper>/report.md (and report.html beside it) from compare.json")
    s.add_argument("--paper", required=True)
    s.add_argument("--tier", default="smoke")
    s.add_argument("--compare", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument(
        "--replicas",
        type=Path,
        nargs="*",
        default=[],
        help="compare.json of the same runs on other warm starts (--config bases=<n>): marks base-sensitive claims",
    )

    s = sub.add_parser("ablation", help="reports/<paper>/ablation.md and .html: the paper's ablation table vs ours")
    s.add_argument("--paper", required=True)
    s.add_argument("--tier", default="smoke")
    s.add_argument("--compare", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)

    s = sub.add_parser("nightly", help="compare the nightly runs with results/baselines/; exit 1 on a regression")
    s.add_argument("--out", type=Path, default=Path("reports/nightly.md"))
    s.add_argument("--update-baselines", action="store_true", help="write results/baselines/ from these runs")
    s.add_argument("--papers", default="", help="comma-separated paper ids (default: every folder)")

    s = sub.add_parser("index", help="reports/index.md and index.html: every paper, its verdicts and report links")
    s.add_argument("--out", type=Path, default=Path("reports/index.md"))
    s.add_argument(
        "--if-changed", action="store_true", help="do nothing when the index is newer than everything it reads"
    )

    s = sub.add_parser(
        "results",
        help="every finished run as one tidy table: a row per (paper, tier, variant, seed, model, metric) with its "
        "value, step and provenance (repro/results.py); ends with `rows=<n> runs=<m>`",
    )
    s.add_argument("--paper", default=None, help="paper id(s), comma-separated (default: every paper with results)")
    s.add_argument("--tier", default=None, help="a tier (its @<overrides> folders too) or one results folder label")
    s.add_argument("--format", default="csv", choices=("csv", "parquet", "markdown"))
    s.add_argument("--out", type=Path, default=None, help="write the table here (default: stdout; parquet needs it)")

    s = sub.add_parser("claims", help="claims of every paper from the latest compare.json files")
    s.add_argument(
        "--audit",
        action="store_true",
        required=True,
        help="one row per claim (paper, tier, id, kind, verdict, placebo) and the closing `claims mechanism=… "
        "discriminating=… vacuous=… papers_without_mechanism_test=…` line",
    )
    s.add_argument("--tier", default=None, choices=("smoke", "small", "paper"), help="only this tier's results")
    s.add_argument(
        "--recompute", action="store_true", help="judge the stored runs with the current targets.yaml (writes nothing)"
    )
    s.add_argument("--strict", action="store_true", help="exit 1 when a mechanism claim is vacuous")

    s = sub.add_parser(
        "numerics",
        help="this machine's CPU, the pinned numerics, and the fingerprints in results/fingerprints.json recomputed",
    )
    s.add_argument("--runs", action="store_true", help="also a 2-step smoke run per trainer kind (about a minute)")
    s.add_argument("--record", action="store_true", help="write the fingerprints computed here to the file")
    s.add_argument("--strict", action="store_true", help="exit 1 unless pinned and every compared fingerprint matches")

    s = sub.add_parser("list", help="list registry entries")
    s.add_argument("what", choices=LISTABLE)
    s.add_argument("--paper", default=None, help="for `list variants`")

    s = sub.add_parser(
        "check",
        help="validate every variant config of a paper at a tier, and that its model, tokenizer, stop tokens and "
        "data files are usable (loads no weights)",
    )
    s.add_argument("--paper", required=True, help="a paper id, or several separated by commas")
    s.add_argument("--tier", default="smoke")
    s.add_argument(
        "--configs-only",
        action="store_true",
        help="validate the configs alone (no model folder, tokenizer or data file is looked at: e.g. a paper tier "
        "offline, whose hub models are not cached here)",
    )
    _override_arguments(s)
    return p


def _override_arguments(s: argparse.ArgumentParser) -> None:
    """Your own model and data without editing the paper folder (repro/overrides.py)."""
    s.add_argument("--model", default=None, help="model.name_or_path: a local checkpoint folder or a hub id")
    s.add_argument("--data-dir", default=None, help="where the data files the config names are looked up instead")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config key with a YAML value, e.g. --set train.learning_rate=2e-6 (repeatable; validated as YAML is)",
    )
    s.add_argument(
        "--warm-start",
        type=int,
        default=0,
        metavar="K",
        help="run on warm start K of every prepared base (built from seeds shifted by K; 0: the base itself)",
    )


def _overrides(args: argparse.Namespace) -> Any:
    from repro.overrides import Overrides

    return Overrides.parse(args.model, args.data_dir, args.set, getattr(args, "warm_start", 0))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        return _dispatch(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.verb == "prepare":
        from repro.prepare import prepare_base

        prepare_base(args.config, args.out, args.warm_start)
    elif args.verb == "standin":
        import dataclasses

        from repro.models.standin import DEFAULT_CORPUS, StandinSpec, build_standin

        corpus = args.corpus or [Path(p) for p in DEFAULT_CORPUS]
        if missing := [str(p) for p in corpus if not p.is_file()]:
            raise ConfigError(f"standin: corpus file(s) {', '.join(missing)} do not exist; pass --corpus <jsonl>")
        spec = StandinSpec(seed=args.seed)
        changes = {"sft_steps": args.sft_steps, "num_hidden_layers": args.layers}
        spec = dataclasses.replace(spec, **{k: v for k, v in changes.items() if v is not None})
        import torch

        torch.set_num_threads(1)  # a 100k-parameter model: a second thread only spins (docs/performance.md)
        out = build_standin(args.out, corpus, spec)
        print(f"stand-in checkpoint: {out} (try: python -m repro check --paper dapo --tier small --model {out})")
    elif args.verb == "train":
        from repro.runs import train_run

        summary = train_run(
            args.paper,
            args.tier,
            args.variant,
            args.seed,
            args.out,
            args.max_steps,
            args.expect_model,
            _overrides(args),
        )
        print(
            f"trained {args.paper}/{args.variant} seed {args.seed}: {summary['steps']} steps in {summary['wall_time_s']:.0f} s -> {args.out}"
        )
    elif args.verb == "eval":
        from repro.runs import eval_run

        result = eval_run(args.run, args.out)
        if "greedy_accuracy" in result and "k" in result:  # an online-RL run's synthetic-task evaluation
            print(
                f"greedy {result['greedy_accuracy']:.3f}  avg@{result['k']} {result['sampled_accuracy']:.3f} -> {args.out}"
            )
        else:  # other kinds: their headline numbers (preference: alignment metrics)
            shown = result.get("headline") or ("gold_reward", "win_rate", "kl", "preference_accuracy")
            numbers = [f"{k} {result[k]:.3f}" for k in shown if isinstance(result.get(k), int | float)]
            print("  ".join(numbers) + f" -> {args.out}")
    elif args.verb == "bench":
        _bench(args)
    elif args.verb == "rescore":
        from repro.eval.lmeval_bridge import rescore
        from repro.io import read_json, write_json

        result = rescore(read_json(args.result))
        write_json(args.out or args.result, result)
        changed = result["rescored"]["items_changed"]
        print(
            f"{result['benchmark']}: {result['metric_name']} {result['rescored']['previous_value']:.4f} -> "
            f"{result['value']:.4f} ({changed} of {len(result['items'])} items regraded differently)"
        )
    elif args.verb == "compare":  # --tier: a results folder, the tier or <tier>@<overrides> (repro/overrides.py)
        from repro.overrides import tier_of
        from repro.report.compare import write_compare

        results = Path("results") / args.paper / args.tier
        write_compare(Path("papers") / args.paper, results, tier_of(args.tier), args.out, label=args.tier)
        print(f"compare -> {args.out}")
    elif args.verb == "report":
        from repro.report.html import write_html
        from repro.report.render import render_report

        path = render_report(Path("papers") / args.paper, args.compare, args.tier, args.out, args.replicas)
        page = write_html(path)
        print(f"report: {path} (HTML, figures embedded: {page})")
    elif args.verb == "ablation":
        from repro.report.ablation import render_ablation_report

        md, page = render_ablation_report(Path("papers") / args.paper, args.compare, args.tier, args.out)
        print(f"ablation report: {md} (HTML: {page})")
    elif args.verb == "nightly":
        from repro.nightly import run_nightly

        papers = [p for p in args.papers.split(",") if p] or None
        regressed, md = run_nightly(Path("."), args.out, update_baselines=args.update_baselines, papers=papers)
        print(f"nightly report: {md} (HTML: {md.with_suffix('.html')})")
        if regressed:
            print("REGRESSION: see the report's Regressions section", file=sys.stderr)
            return 1
    elif args.verb == "index":
        from repro.report.freshness import index_is_current

        if args.if_changed and index_is_current(Path("."), args.out):
            print(f"catalog index: {args.out} (up to date)")
            return 0
        from repro.report.catalog import write_index

        md, page = write_index(Path("."), args.out)
        print(f"catalog index: {md} (HTML: {page})")
    elif args.verb == "results":
        _results(args)
    elif args.verb == "claims":
        from repro.report.audit import audit, render_audit

        rows, totals = audit(Path("."), args.tier, args.recompute)
        print(render_audit(rows, totals))
        return 1 if args.strict and totals["vacuous"] else 0
    elif args.verb == "numerics":
        from repro.fingerprints import report
        from repro.numerics import state

        lines, matched, compared = report(args.runs, args.record)
        print("\n".join(lines))
        return 1 if args.strict and (matched < compared or not state()["pinned"]) else 0
    elif args.verb == "list":
        for line in _list(args.what, args.paper):
            print(line)
    elif args.verb == "check":
        from repro.preflight import check_papers

        papers = [p.strip() for p in args.paper.split(",") if p.strip()]
        for line in check_papers(papers, args.tier, _overrides(args), sources=not args.configs_only):
            print(line)
    return 0


def _results(args: argparse.Namespace) -> None:
    """The table to --out (atomically) or stdout; the closing `rows=<n> runs=<m>` goes to stderr when the table
    went to stdout, so `... > table.csv` stays a clean CSV while a terminal still shows it last."""
    from repro import results

    results.require_format(args.format, args.out)  # before any file is read
    df = results.load(args.paper, args.tier, Path("."))
    if df.empty:
        have = results.papers_with_results(Path("."))
        print(
            f"no finished run under results/ for paper={args.paper or 'any'} tier={args.tier or 'any'}; papers with "
            f"results: {', '.join(have) or 'none'}",
            file=sys.stderr,
        )
    if args.out is not None:
        results.write_table(df, args.format, args.out)
        print(results.summary_line(df))
        return
    sys.stdout.write(results.render(df, args.format))
    sys.stdout.flush()
    print(results.summary_line(df), file=sys.stderr)


def _bench(args: argparse.Namespace) -> None:
    import time

    import yaml

    from repro.eval.benchmark import benchmarks

    started = time.time()
    names = list(benchmarks()) if args.benchmark == "all" else [n.strip() for n in args.benchmark.split(",")]
    if args.run is not None:
        if args.out is None or len(names) != 1:
            raise ConfigError("bench --run needs one --benchmark and --out <file.json>")
        from repro.runs import bench_run

        results = [bench_run(args.run, names[0], args.out)]
    else:
        if args.out_dir is None:
            raise ConfigError("bench --model needs --out-dir <dir> (one <benchmark>.json per benchmark)")
        overrides = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set max_tokens=64")
            overrides[key.strip()] = yaml.safe_load(value)
        from repro.runs import bench_model

        results = bench_model(
            args.model, names, args.out_dir, smoke=args.smoke, overrides=overrides, data=args.data_dir
        )
    for r in results:
        print(
            f"{r['benchmark']:<14} v{r['version']}  {r['metric_name']:<14} {100 * r['value']:6.2f}%  "
            f"{r['n_problems']:5d} problems  {r['wall_time_s']:6.1f} s  ({r['backend']})"
        )
    print(f"total wall time: {time.time() - started:.1f} s")


def _list(what: str, paper: str | None) -> list[str]:
    from repro import workflow

    if what == "papers":
        return [f"{p}\t{workflow.paper_meta(p).get('title', '')}" for p in workflow.paper_ids()]
    if what == "variants":
        papers = [paper] if paper else workflow.paper_ids()
        return [f"{p}\t{v}" for p in papers for v in workflow.variants(p)]
    if what == "presets":
        from dataclasses import asdict

        from repro.losses.presets import PRESETS

        return [f"{n}\t" + " ".join(f"{k}={v}" for k, v in asdict(PRESETS.get(n)).items()) for n in PRESETS.names()]
    if what == "losses":
        from repro.losses.advantages import ADVANTAGES
        from repro.losses.aggregation import AGGREGATORS
        from repro.losses.kl import KL_ESTIMATORS
        from repro.losses.preference import PREFERENCE_LOSSES
        from repro.losses.ratio import RATIO_LEVELS
        from repro.losses.rollout_correction import ROLLOUT_CORRECTIONS
        from repro.losses.sft import SFT_LOSSES
        from repro.losses.surrogates import SURROGATES

        regs = [
            ADVANTAGES,
            RATIO_LEVELS,
            SURROGATES,
            AGGREGATORS,
            KL_ESTIMATORS,
            ROLLOUT_CORRECTIONS,
            PREFERENCE_LOSSES,
            SFT_LOSSES,
        ]
        return [f"{r.kind}\t{', '.join(r.names())}" for r in regs] + ["unpaired preference loss_type\tbco_unpaired"]
    if what == "rewards":
        from repro.rewards.functions import REWARDS

        return REWARDS.names()
    if what == "tasks":
        from repro.data.synthetic import TASKS

        return TASKS.names()
    if what == "judged":
        from repro.eval.judge import judged_benchmarks

        return [f"{b.name}\tv{b.version}\t{b.description}" for b in judged_benchmarks().values()]
    if what == "benchmarks":
        from repro.eval.benchmark import benchmarks, dataset_source
        from repro.eval.lmeval_bridge import metric_label

        return [
            f"{b.name}\tv{b.version}\t{metric_label(b.protocol)}\t{dataset_source(b, None)} ({b.dataset.size} problems)"
            for b in benchmarks().values()
        ]
    from repro.data.templates import TEMPLATES  # what == "templates"

    return TEMPLATES.names()
