"""Compare the runs of one paper at one tier with what the paper published: compare.json.

Reads `results/<paper>/<tier>/<variant>/seed<k>/` run dirs tolerantly (a missing or unreadable file
is reported in "runs" and "warnings", never a crash) and produces targets (graded status), claims
(statistical verdicts), ablation rows, settings deviations, divergence indicators and provenance.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from repro.io import read_json, read_jsonl_tolerant, write_json
from repro.provenance import collect_provenance
from repro.report.alignment import alignment_summary
from repro.report.claims import mean_ci
from repro.report.results_table import results_table_summary
from repro.report.scale import scale_summary, truncation_warnings
from repro.report.targets import (
    Ablation,
    PaperMeta,
    ScalingFitSpec,
    Target,
    load_paper_meta,
    load_targets,
)
from repro.report.verdicts import claim_rows, lookup, mechanism_summary
from repro.report.verdicts import finite_or_none as _finite_or_none

SEED_DIR = re.compile(r"^seed(\d+)$")
DIVERGENCE_KEYS = ("truncation_rate", "frac_zero_std", "refill_batches", "response_length", "logprob_gap")
NOT_COMPARABLE = "not comparable at this tier"


@dataclass
class RunData:
    """Whatever one seed's run dir holds; absent files are None and listed in `missing`."""

    variant: str
    seed: int
    path: Path
    config: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)  # bench/<name>.json, by name
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def load_run(path: Path, variant: str, seed: int) -> RunData:
    """Read one run dir; never raises for missing or corrupt files."""
    run = RunData(variant, seed, path)
    run.config = _read_part(run, "config.resolved.yaml", dict)
    run.metrics = _read_part(run, "metrics.jsonl", list) or []
    run.eval = _read_part(run, "eval.json", dict)
    run.summary = _read_part(run, "summary.json", dict)
    for file in sorted((path / "bench").glob("*.json")):
        content = _read_part(run, f"bench/{file.name}", dict)
        if content is not None:
            run.benchmarks[file.stem] = content
    rows = [r for r in run.metrics if isinstance(r, dict)]
    run.metrics = sorted(rows, key=lambda r: _finite_or_none(r.get("step")) or 0.0)
    return run


def _read_part(run: RunData, name: str, kind: type) -> Any:
    """One file of a run dir, or None (noting a missing, unreadable or mis-shaped file)."""
    file = run.path / name
    if not file.is_file():
        run.missing.append(name)
        return None
    try:
        if name.endswith(".jsonl"):
            content = read_jsonl_tolerant(file)
        elif name.endswith(".json"):
            content = read_json(file)
        else:
            content = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        run.errors.append(f"{name}: unreadable ({type(err).__name__}: {err})")
        return None
    if not isinstance(content, kind):
        run.errors.append(f"{name}: expected a {kind.__name__}, got {type(content).__name__}")
        return None
    return content


def collect_runs(results_dir: Path, variants: tuple[str, ...]) -> tuple[dict[str, list[RunData]], list[str]]:
    """All seed dirs of the paper's variants under one tier dir, plus warnings about gaps."""
    runs: dict[str, list[RunData]] = {v: [] for v in variants}
    warnings: list[str] = []
    for variant in variants:
        variant_dir = results_dir / variant
        seeds = sorted(
            (int(m.group(1)), p)
            for p in (variant_dir.iterdir() if variant_dir.is_dir() else [])
            if p.is_dir() and (m := SEED_DIR.match(p.name))
        )
        if not seeds:
            warnings.append(f"variant {variant!r}: no runs under {variant_dir}")
        for seed, path in seeds:
            run = load_run(path, variant, seed)
            if run.missing or run.errors:
                problems = [f"missing {m}" for m in run.missing] + run.errors
                warnings.append(f"{variant}/seed{seed}: " + "; ".join(problems))
            runs[variant].append(run)
    if results_dir.is_dir():
        for p in sorted(results_dir.iterdir()):
            if p.is_dir() and p.name not in variants:
                warnings.append(f"{p}: not a variant of paper.yaml; ignored")
    return runs, warnings


# --- the sections of compare.json ----------------------------------------------------------


def target_row(target: Target, runs: list[RunData], tier: str) -> dict[str, Any]:
    """Graded status of one published number; only judged at the target's own tier."""
    row: dict[str, Any] = {
        "id": target.id,
        "variant": target.variant,
        "benchmark": target.benchmark,
        "model": target.model,
        "published": target.value,
        "unit": target.unit,
        "tolerance": target.tolerance,
        "tier": target.tier,
        "source": target.source.describe(),
        "protocol": target.protocol.as_dict(),
        "baseline": {"name": target.baseline.name, "value": target.baseline.value} if target.baseline else None,
        "ours": None,
        "ci": None,
        "ci_kind": None,
        "n_seeds": 0,
        "delta": None,
        "ours_protocol": None,
        "status": NOT_COMPARABLE,
    }
    entries = [e for r in runs if (e := _benchmark_entry(r, target.benchmark)) is not None]
    values = [v for e in entries if (v := _benchmark_value(e, target.unit)) is not None]
    if not values:
        row["status"] = NOT_COMPARABLE if target.tier != tier else "no result"
        row["note"] = f"no result for benchmark {target.benchmark!r} yet"
        return row
    ours = float(np.mean(values))
    ci, ci_kind = mean_ci(values), "training seeds"
    if ci is None and entries[0].get("ci") is not None:
        scale = _benchmark_scale(entries[0], target.unit)
        ci, ci_kind = (tuple(float(x) * scale for x in entries[0]["ci"]), "evaluation sampling")
    first = entries[0]
    row.update(
        ours=ours,
        ci=list(ci) if ci else None,
        ci_kind=ci_kind if ci else None,
        n_seeds=len(values),
        ours_protocol=first.get("protocol"),
        eval_ci=_eval_sampling_ci(entries, target.unit),
        metric_name=first.get("metric_name"),
    )
    row["protocol_deviations"] = protocol_deviations(target.protocol.as_dict(), row["ours_protocol"])
    if target.tier != tier:
        row["note"] = f"target is set at the {target.tier} tier; ours is the {tier}-tier run"
        return row
    row["delta"] = ours - target.value
    row["status"] = target_status(ours, ci, target)
    return row


def protocol_deviations(published: dict[str, Any], ours: dict[str, Any] | None) -> list[str]:
    """'key: ours X vs paper Y' for each protocol field the paper states and our run set differently."""
    if not ours:
        return []
    out = []
    for key, paper_value in published.items():
        mine = ours.get(key)
        if mine is not None and mine != paper_value:
            out.append(f"{key}: ours {mine} vs paper {paper_value}")
    return out


def _benchmark_entry(run: RunData, benchmark: str) -> dict[str, Any] | None:
    """A run's result on a benchmark (its bench/<name>.json), or None."""
    return run.benchmarks.get(benchmark)


def _eval_sampling_ci(entries: list[dict[str, Any]], unit: str) -> list[float] | None:
    """Evaluation-sampling CI of the seed mean: half-width √(Σ hᵢ²)/m from each seed's half-width hᵢ, around the
    seed mean (reported apart from the training-seed CI)."""
    cis = [e["ci"] for e in entries if e.get("ci") is not None]
    values = [v for e in entries if (v := _benchmark_value(e, unit)) is not None]
    if not cis or len(cis) != len(values):
        return None
    scale = _benchmark_scale(entries[0], unit)
    halves = np.array([(hi - lo) * scale / 2 for lo, hi in cis])
    half = float(np.sqrt(np.sum(halves**2))) / len(cis)  # the seed mean of independent evaluation noises
    centre = float(np.mean(values))
    return [centre - half, centre + half]


def target_status(ours: float, ci: tuple[float, float] | None, target: Target) -> str:
    """reproduced | within tolerance | better than reported | not reproduced."""
    delta = ours - target.value
    if abs(delta) <= target.tolerance:
        covers = ci is not None and ci[0] <= target.value <= ci[1]
        return "reproduced" if covers else "within tolerance"
    better = delta > 0 if target.higher_is_better else delta < 0
    return "better than reported" if better else "not reproduced"


def ablation_rows(ablation: Ablation, runs: dict[str, list[RunData]]) -> list[dict[str, Any]]:
    scale = 100.0 if ablation.unit == "percent" else 1.0
    rows = []
    for row in ablation.rows:
        by_seed = {
            str(r.seed): v * scale
            for r in runs[row.variant]
            if (v := _finite_or_none(lookup(r.eval, ablation.ours_metric))) is not None
        }
        values = list(by_seed.values())
        ci = mean_ci(values)
        rows.append(
            {
                "variant": row.variant,
                "label": row.label,
                "published": row.published,
                "ours_mean": float(np.mean(values)) if values else None,
                "ours_ci": list(ci) if ci else None,
                "n_seeds": len(values),
                "ours_by_seed": by_seed,  # the ablation report pairs rows by seed
            }
        )
    return rows


def settings_rows(meta: PaperMeta, runs: dict[str, list[RunData]]) -> list[dict[str, Any]]:
    """Each paper setting beside the default variant's resolved config value (dotted key)."""
    configs = [r.config for r in runs.get(meta.default_variant, []) if r.config is not None]
    config = configs[0] if configs else None
    rows = []
    for setting in meta.settings_table:
        ours = lookup(config, setting.key)
        rows.append(
            {
                "key": setting.key,
                "paper": setting.paper,
                "ours": ours,
                "deviation": deviation(ours, setting.paper),
                "source": setting.source,
            }
        )
    return rows


def deviation(ours: Any, paper: Any) -> str:
    """ "none" when equal, "—" when absent, "×r of paper" for scaled numbers, else "differs"."""
    if ours is None:
        return "—"
    a, b = _as_number(ours), _as_number(paper)
    if a is not None and b is not None:
        if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
            return "none"
        return f"×{a / b:.3g} of paper" if b != 0 else "differs"
    return "none" if str(ours).strip().lower() == str(paper).strip().lower() else "differs"


def scaling_fit_rows(spec: ScalingFitSpec | None, runs: dict[str, list[RunData]]) -> list[dict[str, Any]]:
    """ScaleRL's sigmoid fit per run (R(C) against optimizer steps) and the mean asymptote per variant."""
    if spec is None:
        return []
    from repro.report.scaling_fit import fit_sigmoid

    rows = []
    for variant, variant_runs in runs.items():
        fits = []
        for run in variant_runs:
            curve = [float(v) for r in run.metrics if (v := _finite_or_none(r.get(spec.metric))) is not None]
            n_warm = max(1, math.ceil(spec.warmup_frac * len(curve)))
            try:
                steps = np.arange(1, len(curve) + 1, dtype=float)  # [S]
                fit = fit_sigmoid(steps, np.asarray(curve), R0=float(np.mean(curve[:n_warm])), fit_from=float(n_warm))
            except (ValueError, RuntimeError) as err:  # too few points, or no convergence: say so per seed
                fits.append({"seed": run.seed, "error": str(err)})
                continue
            # ScaleRL trusts a fit only once the curve has bent: past the observed range, A is an extrapolation
            fits.append({"seed": run.seed, **dataclasses.asdict(fit), "extrapolated": fit.C_mid > steps[-1]})
        good = [f["A"] for f in fits if "A" in f]
        rows.append(
            {
                "variant": variant,
                "metric": spec.metric,
                "fits": fits,
                "A_mean": float(np.mean(good)) if good else None,
                "A_ci": mean_ci(good),
            }
        )
    return rows


def divergence_rows(runs: dict[str, list[RunData]]) -> dict[str, dict[str, float | None]]:
    """Per variant: mean over seeds of each run's mean of the usual silent-divergence signals."""
    out: dict[str, dict[str, float | None]] = {}
    for variant, variant_runs in runs.items():
        row: dict[str, float | None] = {}
        for key in DIVERGENCE_KEYS:
            per_run = [
                float(np.mean(curve))
                for r in variant_runs
                if (curve := [v for m in r.metrics if (v := _finite_or_none(m.get(key))) is not None])
            ]
            row[key] = float(np.mean(per_run)) if per_run else None
        out[variant] = row
    return out


def run_rows(runs: dict[str, list[RunData]]) -> list[dict[str, Any]]:
    return [
        {
            "variant": r.variant,
            "seed": r.seed,
            "path": str(r.path),
            "wall_time_s": _finite_or_none(lookup(r.summary, "wall_time_s")),
            "steps": lookup(r.summary, "steps") if r.summary else (len(r.metrics) or None),
            "missing": r.missing,
            "errors": r.errors,
            "provenance": lookup(r.summary, "provenance"),
            "overrides": lookup(r.summary, "overrides") or {},
        }
        for variant_runs in runs.values()
        for r in variant_runs
    ]


# --- entry points --------------------------------------------------------------------------


def compare(
    paper_dir: str | os.PathLike[str], results_dir_for_tier: str | os.PathLike[str], tier: str, label: str | None = None
) -> dict[str, Any]:
    """Build the compare.json dict for one paper at one tier (`label`: the results folder, `<tier>@<overrides>` for
    runs made with model= / data_dir= / set=, repro/overrides.py)."""
    paper_dir, results_dir = Path(paper_dir), Path(results_dir_for_tier)
    meta = load_paper_meta(paper_dir)
    targets = load_targets(paper_dir / "targets.yaml", list(meta.variants))
    if targets.paper != meta.id:
        raise ValueError(f"{targets.path}: paper {targets.paper!r} does not match paper.yaml id {meta.id!r}")
    runs, warnings = collect_runs(results_dir, meta.variants)
    warnings += truncation_warnings(runs)
    claims = claim_rows(targets, runs)
    result = {
        "paper": meta.id,
        "tier": tier,
        "label": label or tier,
        "default_variant": meta.default_variant,
        "overrides": _run_overrides(runs),
        "scale": scale_summary(runs, meta.default_variant),
        "targets": [target_row(t, runs[t.variant], tier) for t in targets.targets],
        "claims": claims,
        "mechanism": mechanism_summary(claims, targets.no_mechanism_test.get(tier)),
        "references": [
            {**dataclasses.asdict(r), "source": r.source.describe()} for r in targets.references
        ],  # fmt: skip
        "ablation": ablation_rows(meta.ablation, runs) if meta.ablation else [],
        "ablation_meta": _ablation_meta(meta.ablation),
        "settings": settings_rows(meta, runs),
        "divergence": divergence_rows(runs),
        "alignment": alignment_summary(runs),
        "results_table": results_table_summary(runs),
        "scaling_fits": scaling_fit_rows(meta.scaling_fit, runs),
        "scaling_fit_meta": dataclasses.asdict(meta.scaling_fit) if meta.scaling_fit else None,
        "runs": run_rows(runs),
        "warnings": warnings,
        "provenance": collect_provenance(_config_text(runs, meta.default_variant)),
    }
    return _json_safe(result)


def write_compare(
    paper_dir: str | os.PathLike[str],
    results_dir_for_tier: str | os.PathLike[str],
    tier: str,
    out_path: str | os.PathLike[str] | None = None,
    label: str | None = None,
) -> Path:
    """compare(...) written atomically to `out_path` (default `<results_dir_for_tier>/compare.json`)."""
    out = Path(out_path) if out_path is not None else Path(results_dir_for_tier) / "compare.json"
    write_json(out, compare(paper_dir, results_dir_for_tier, tier, label))
    return out


def _run_overrides(runs: dict[str, list[RunData]]) -> dict[str, Any]:
    """The overrides (model=, data_dir=, set=) the runs were made with, as their summaries record them; {} for
    none. Runs of one results folder share them (the folder's name is their hash)."""
    for variant_runs in runs.values():
        for run in variant_runs:
            if run.summary and run.summary.get("overrides"):
                return dict(run.summary["overrides"])
    return {}


# --- helpers -------------------------------------------------------------------------------


def _ablation_meta(ablation: Ablation | None) -> dict[str, Any] | None:
    if ablation is None:
        return None
    return {
        "title": ablation.title,
        "source": ablation.source,
        "metric": ablation.metric,
        "unit": ablation.unit,
        "ours_metric": f"eval.json {ablation.ours_metric}" + (" ×100" if ablation.unit == "percent" else ""),
    }


def _benchmark_scale(entry: dict[str, Any], unit: str) -> float:
    """Benchmark results are fractions unless the entry says `"unit": "percent"`."""
    return 100.0 if unit == "percent" and entry.get("unit", "fraction") != "percent" else 1.0


def _benchmark_value(entry: dict[str, Any], unit: str) -> float | None:
    value = _finite_or_none(entry.get("value"))
    return None if value is None else value * _benchmark_scale(entry, unit)


def _config_text(runs: dict[str, list[RunData]], variant: str) -> str | None:
    for run in runs.get(variant, []):
        file = run.path / "config.resolved.yaml"
        if file.is_file():
            return file.read_text(encoding="utf-8")
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).replace(",", "").replace("_", ""))
    except ValueError:
        return None


def _json_safe(obj: Any) -> Any:
    """NaN/inf become null so compare.json stays valid JSON; tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return obj
