"""Nightly regression: every paper's default variant, shortened, over a few seeds, against committed baselines.

`snakemake nightly` trains and evaluates results/<paper>/nightly/<default variant>/seed<k>/ (the smoke config with
configs/nightly.yaml's max_steps and seeds), then `python -m repro nightly` collects one number per metric and
seed, compares each metric with results/baselines/<paper>.json and writes reports/nightly.{md,html}. It exits 1
when a metric regressed, naming the paper, metric, baseline, now and the commits in between.

A metric's values: eval.json's numeric scalars (`eval.<key>`) and the mean over steps of each numeric
metrics.jsonl column (`train.<key>`), per seed. The detector flags a metric when both hold:
- Welch's t-test over seeds rejects equal means at alpha / M, M the number of metrics compared in the whole
  run (Bonferroni, so a clean night raises no alarm with probability ≥ 1 − alpha); a metric constant over the
  seeds on both sides is "significant" exactly when it changed;
- the change exceeds abs_tol + rel_tol·|baseline mean|, so numerics that differ across machines or library
  versions by a hair do not alarm.
That is the statistical comparison. Where the baseline and this run share everything that decides the bits (pinned
CPU numerics, code, paper folder, installed packages, configs, warm-start weights: repro/nightly_identity.py), a
metric is compared exactly instead: any seed whose value differs is flagged, whatever the CPU.

Every run also appends its outcome to results/nightly_history.jsonl, and the report shows each metric's trend
across nights against its baseline band, flagging a drift no single night catches (repro/nightly_history.py).
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from repro.io import read_json, read_jsonl_tolerant, read_yaml, write_json

NIGHTLY_CONFIG = Path("configs/nightly.yaml")
BASELINE_DIR = Path("results/baselines")
NIGHTLY_TIER = "nightly"
# settings and bookkeeping, not outcomes: never compared
IGNORED_EVAL = {"n_problems", "k", "temperature", "top_p", "seed", "sampling_seed", "max_new_tokens", "n_pairs",
                "target_gap_fraction", "n_prompts", "n_samples", "batch_size"}  # fmt: skip
IGNORED_TRAIN = {"step", "epoch", "lr", "step_time", "tokens_per_s", "wall_time_s"}


@dataclass(frozen=True)
class NightlySettings:
    max_steps: int
    seeds: list[int]
    alpha: float
    abs_tol: float
    rel_tol: float


def load_settings(path: Path = NIGHTLY_CONFIG) -> NightlySettings:
    raw = read_yaml(path)
    try:
        settings = NightlySettings(**raw)
    except TypeError as err:
        raise ValueError(f"{path}: {err}; expected the keys max_steps, seeds, alpha, abs_tol, rel_tol") from err
    if settings.max_steps < 1 or len(settings.seeds) < 2 or not 0 < settings.alpha < 1:
        raise ValueError(f"{path}: need max_steps ≥ 1, at least 2 seeds (the tolerance is over seeds), 0 < alpha < 1")
    return settings


# --------------------------------------------------------------------------- collecting


def run_metrics(run_dir: Path) -> dict[str, float]:
    """One run's comparable numbers: eval.json scalars and per-column means of metrics.jsonl."""
    out: dict[str, float] = {}
    eval_path = run_dir / "eval.json"
    if eval_path.is_file():
        for key, value in read_json(eval_path).items():
            if _is_number(value) and key not in IGNORED_EVAL:
                out[f"eval.{key}"] = float(value)
    rows = read_jsonl_tolerant(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if _is_number(value) and key not in IGNORED_TRAIN and math.isfinite(value):
                columns.setdefault(key, []).append(float(value))
    out.update({f"train.{k}": float(np.mean(v)) for k, v in columns.items()})
    return out


def collect(variant_dir: Path, seeds: list[int]) -> dict[str, dict[str, float]]:
    """{metric: {seed: value}} over the seeds whose run finished (summary.json present)."""
    by_metric: dict[str, dict[str, float]] = {}
    for seed in seeds:
        run = variant_dir / f"seed{seed}"
        if not (run / "summary.json").is_file():
            continue
        for name, value in run_metrics(run).items():
            by_metric.setdefault(name, {})[str(seed)] = value
    return by_metric


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------- detecting


@dataclass(frozen=True)
class Comparison:
    metric: str
    baseline_mean: float
    baseline_sd: float
    now_mean: float
    now_sd: float
    p: float
    tolerance: float
    regressed: bool
    exact: bool = False  # compared seed by seed for equality (p and tolerance then unused)
    seeds_differing: int = 0
    largest_seed_delta: float = 0.0  # exact only: the largest |now − baseline| at one seed (nan: a seed missing)
    identical: bool = False  # every seed has the baseline's bits (either mode)

    @property
    def delta(self) -> float:
        return self.now_mean - self.baseline_mean


def welch_p(baseline: list[float], now: list[float]) -> float:
    """Two-sided p of equal means; a metric with no spread on either side is decided exactly."""
    from scipy import stats  # here, not at import: the Snakefile imports this module on every invocation

    b, n = np.asarray(baseline, dtype=float), np.asarray(now, dtype=float)
    if b.std(ddof=1) == 0.0 and n.std(ddof=1) == 0.0:
        return 1.0 if b.mean() == n.mean() else 0.0
    return float(stats.ttest_ind(n, b, equal_var=False).pvalue)


def compare_metric(
    metric: str, baseline: list[float], now: list[float], level: float, settings: NightlySettings
) -> Comparison:
    """`level` is the per-metric significance level (alpha / M)."""
    p = welch_p(baseline, now)
    b_mean, n_mean = float(np.mean(baseline)), float(np.mean(now))
    tolerance = settings.abs_tol + settings.rel_tol * abs(b_mean)
    regressed = p < level and abs(n_mean - b_mean) > tolerance
    return Comparison(
        metric, b_mean, float(np.std(baseline, ddof=1)), n_mean, float(np.std(now, ddof=1)), p, tolerance, regressed
    )


def compare_exact(metric: str, baseline: dict[str, float], now: dict[str, float]) -> Comparison:
    """Seed by seed: the same inputs on pinned numerics must give the same bits, so any difference regresses."""
    seeds = sorted(set(baseline) | set(now))
    differing = sum(1 for s in seeds if not _same_bits(baseline.get(s), now.get(s)))
    gaps = [abs(now[s] - baseline[s]) if s in now and s in baseline else math.nan for s in seeds]
    b, n = list(baseline.values()), list(now.values())
    sd = lambda xs: float(np.std(xs, ddof=1)) if len(xs) > 1 else math.nan  # noqa: E731
    return Comparison(
        metric, float(np.mean(b)), sd(b), float(np.mean(n)), sd(n), 1.0 if not differing else 0.0, 0.0,
        regressed=differing > 0, exact=True, seeds_differing=differing,
        largest_seed_delta=max(gaps, key=lambda g: math.inf if math.isnan(g) else g) if gaps else 0.0,
        identical=differing == 0,
    )  # fmt: skip


def _same_bits(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


def detect(
    baselines: dict[str, dict[str, dict[str, float]]],
    now: dict[str, dict[str, dict[str, float]]],
    settings: NightlySettings,
    exact: frozenset[str] | set[str] = frozenset(),
) -> dict[str, list[Comparison]]:
    """{paper: comparisons}: papers in `exact` seed by seed for equality; the others for every metric with ≥ 2 seeds
    on both sides, Welch at alpha / (metrics compared statistically)."""
    pairs = [
        (paper, metric, base[metric], now[paper][metric])
        for paper, base in baselines.items()
        if paper in now
        for metric in sorted(base)
        if metric in now[paper] and (paper in exact or (len(base[metric]) >= 2 and len(now[paper][metric]) >= 2))
    ]
    level = settings.alpha / max(sum(1 for paper, *_ in pairs if paper not in exact), 1)
    out: dict[str, list[Comparison]] = {paper: [] for paper in now}
    for paper, metric, b, n in pairs:
        if paper in exact:
            out[paper].append(compare_exact(metric, b, n))
        else:
            c = compare_metric(metric, list(b.values()), list(n.values()), level, settings)
            same = set(b) == set(n) and all(_same_bits(b[s], n[s]) for s in b)
            out[paper].append(dataclasses.replace(c, identical=same))
    return out


# --------------------------------------------------------------------------- baselines


# What a baseline records of the code and machine it came from (the CPU: nightly_report warns across CPUs).
BASELINE_PROVENANCE = (
    "git_sha",
    "git_dirty",
    "code_sha256",
    "packages",
    "python",
    "platform",
    "cpu",
    "cpu_count",
    "gpu",
    "numerics",
)


def baseline_path(paper: str, root: Path = Path(".")) -> Path:
    return root / BASELINE_DIR / f"{paper}.json"


def write_baseline(
    paper: str,
    variant: str,
    metrics: dict[str, dict[str, float]],
    settings: NightlySettings,
    root: Path = Path("."),
    identity: dict[str, Any] | None = None,
) -> Path:
    """results/baselines/<paper>.json: the values by seed, the settings, the code and environment they came from."""
    from repro.provenance import collect_provenance

    variant_dir = root / "results" / paper / NIGHTLY_TIER / variant
    configs = {
        str(s): (read_json(variant_dir / f"seed{s}" / "summary.json").get("provenance") or {}).get("config_sha256")
        for s in settings.seeds
        if (variant_dir / f"seed{s}" / "summary.json").is_file()
    }
    prov = collect_provenance(repo_dir=root)
    record = {
        "paper": paper,
        "variant": variant,
        "max_steps": settings.max_steps,
        "seeds": settings.seeds,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "provenance": {k: prov[k] for k in BASELINE_PROVENANCE},
        "config_sha256": configs,
        "identity": identity,  # what decides the bits: an exact comparison needs the same (nightly_identity.py)
        "metrics": {m: dict(sorted(v.items())) for m, v in sorted(metrics.items())},
    }
    path = baseline_path(paper, root)
    write_json(path, record)
    return path


def commits_between(sha: str | None, paper: str, root: Path = Path(".")) -> list[str]:
    """One-line log of the commits since the baseline's that touch the core or the paper's folder."""
    from repro.provenance import CODE_PATHS

    if not sha or sha == "unknown":
        return ["(the baseline records no commit)"]
    out = subprocess.run(
        ["git", "log", "--oneline", f"{sha}..HEAD", "--", *CODE_PATHS, f"papers/{paper}"],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        return [f"(commit {sha[:10]} is not in this repository)"]
    lines = out.stdout.strip().splitlines()
    return lines or ["(no commit since the baseline touches the code or this paper; the environment may differ)"]


# --------------------------------------------------------------------------- the nightly run


@dataclass(frozen=True)
class NightlyOutcome:
    """Everything the nightly report shows, per paper id."""

    settings: NightlySettings
    now: dict[str, dict[str, dict[str, float]]]  # paper -> metric -> seed -> value
    variants: dict[str, str]  # paper -> its default variant (the one the nightly runs)
    records: dict[str, dict[str, Any]]  # paper -> its baseline file, where one exists
    comparisons: dict[str, list[Comparison]]
    missing: dict[str, list[int]]  # paper -> seeds without a finished run
    commits: dict[str, list[str]]  # regressed paper -> commits since its baseline
    updated: list[Path]  # baseline files written by this run
    blockers: dict[str, list[str]]  # paper with a baseline -> why it was not compared exactly ([]: it was)
    moved_packages: dict[str, list[str]]  # paper with a baseline -> 'name a → b' since that baseline
    history: list[dict[str, Any]] = field(default_factory=list)  # every night so far, this one last (by date)
    history_skipped: int = 0  # history lines that did not parse


def run_nightly(
    root: Path, out_md: Path, update_baselines: bool = False, papers: list[str] | None = None
) -> tuple[bool, Path]:
    """Compare (or, with update_baselines, record) the nightly runs of `papers` (default: every folder); returns
    (regressed, report path). Each run adds a line to results/nightly_history.jsonl (repro/nightly_history.py)."""
    from repro.nightly_identity import exact_blockers, package_changes, run_identity
    from repro.report.nightly_report import render_nightly
    from repro.report.targets import load_paper_meta

    settings = load_settings(root / NIGHTLY_CONFIG)
    now, variants, missing, identities = {}, {}, {}, {}
    folders = sorted(p.parent for p in (root / "papers").glob("*/paper.yaml"))
    if papers:
        unknown = sorted(set(papers) - {f.name for f in folders})
        if unknown:
            raise ValueError(f"unknown paper(s) {unknown}; folders: {', '.join(f.name for f in folders)}")
        folders = [f for f in folders if f.name in papers]
    for folder in folders:
        meta = load_paper_meta(folder)
        variant_dir = root / "results" / meta.id / NIGHTLY_TIER / meta.default_variant
        now[meta.id] = collect(variant_dir, settings.seeds)
        variants[meta.id] = meta.default_variant
        done = [s for s in settings.seeds if (variant_dir / f"seed{s}" / "summary.json").is_file()]
        if len(done) < len(settings.seeds):
            missing[meta.id] = sorted(set(settings.seeds) - set(done))
        identities[meta.id] = run_identity(meta.id, variant_dir, settings.seeds, root)
    baselines, records = {}, {}
    for paper in now:
        path = baseline_path(paper, root)
        if path.is_file():
            records[paper] = read_json(path)
            baselines[paper] = records[paper]["metrics"]
    blockers = {p: exact_blockers(records[p].get("identity"), identities[p]) for p in records}
    moved_packages = {
        p: package_changes((records[p].get("identity") or {}).get("environment") or {}, identities[p]["environment"])
        for p in records
        if (records[p].get("identity") or {}).get("environment")
    }
    exact = {p for p, reasons in blockers.items() if not reasons}
    comparisons = detect(baselines, now, settings, exact)
    updated = []
    if update_baselines:
        updated = [
            write_baseline(p, variants[p], m, settings, root, identities[p])
            for p, m in now.items()
            if m and p not in missing
        ]
    regressed = any(c.regressed for cs in comparisons.values() for c in cs)
    commits = {
        p: commits_between((records[p].get("provenance") or {}).get("git_sha"), p, root)
        for p, cs in comparisons.items()
        if any(c.regressed for c in cs)
    }
    outcome = NightlyOutcome(
        settings, now, variants, records, comparisons, missing, commits, updated, blockers, moved_packages
    )
    outcome = _with_history(outcome, root, update_baselines)
    page, summary = render_nightly(out_md, outcome, root)
    print(summary)
    return regressed and not update_baselines, page


def _with_history(outcome: NightlyOutcome, root: Path, update_baselines: bool) -> NightlyOutcome:
    """Append tonight to the history (a baseline-recording night too, flagged) and carry every night for the
    report's trends."""
    from repro.nightly_history import append_night, night_record, read_history

    append_night(night_record(outcome, root, baselines_updated=update_baselines), root)
    nights, skipped = read_history(root)
    return replace(outcome, history=nights, history_skipped=skipped)
