"""Every finished run as one tidy table: one row per (paper, tier, variant, seed, model, metric).

    import repro.results
    df = repro.results.load(paper="dapo", tier="small")    # a pandas DataFrame, for a notebook
    python -m repro results --paper dapo --format csv        # the same on the command line

Built from the files the DAG wrote under results/<paper>/<label>/<variant>/seed<k>/ (`label`: the tier, or
`<tier>@<overrides>` for runs on your own model or data, repro/overrides.py), read with the report's own tolerant
reader (repro/report/compare.py `load_run`). A run counts once its summary.json exists (the file a run writes last).
Its metrics, and the step each value is at:

- `run.steps`, `run.wall_time_s`: summary.json.
- `eval.<key>`: eval.json's numeric scalars, nested mappings as dotted keys (`eval.base.greedy_accuracy`: the
  starting model's numbers); settings such as `k` or `temperature` are left out (the nightly's list), lists too.
  Step: the last logged training step (the model that was evaluated).
- `train.<key>.final` and `train.<key>.mean`: each numeric metrics.jsonl column's last finite value at its step,
  and its mean over the logged steps at the last one (the nightly compares the mean, named `train.<key>` there).
- `bench.<name>`: bench/<name>.json's score (a fraction), at the evaluated step.

Every row repeats its run's provenance (git SHA and dirty flag, timestamp, CPU, whether numerics were pinned, the
overrides, the config hash) and the run folder, so a filtered table still says where each number came from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.nightly import IGNORED_EVAL
from repro.schema import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from repro.report.compare import RunData

KEYS = ("paper", "tier", "label", "variant", "seed", "model", "metric")
COLUMNS = (
    *KEYS,
    "value",
    "step",
    "source",
    "git_sha",
    "git_dirty",
    "timestamp_utc",
    "cpu",
    "numerics_pinned",
    "overrides",
    "config_sha256",
    "run_dir",
)
FORMATS = ("csv", "parquet", "markdown")
IGNORED_TRAIN = {"step", "epoch"}  # the x axis, not a measurement
RUN_GLOB = "results/*/*/*/seed*/summary.json"
SEED_DIR = re.compile(r"^seed(\d+)$")
PYARROW_HINT = 'pip install pyarrow (or pip install "pandas[parquet]")'


def load(
    paper: str | Iterable[str] | None = None, tier: str | None = None, root: Path | str = Path(".")
) -> pd.DataFrame:
    """The table of every finished run under `root`/results, optionally of some papers (an id, a comma-separated
    string or a list) and one tier (`small` takes `small@<overrides>` folders too; `small@x` that folder alone)."""
    import pandas as pd

    root = Path(root)
    rows = [row for run in find_runs(root, paper, tier) for row in run_rows(run, root)]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    return df.astype(
        {"seed": "int64", "value": "float64", "step": "Int64", "git_dirty": "boolean", "numerics_pinned": "boolean"}
    )


def find_runs(root: Path, paper: str | Iterable[str] | None = None, tier: str | None = None) -> list[RunData]:
    """The finished runs' folders read (compare.load_run), sorted by paper, label, variant and seed."""
    from repro.overrides import LABEL_SEPARATOR, tier_of
    from repro.report.compare import load_run

    papers = _paper_set(paper)
    found = []
    for summary in root.glob(RUN_GLOB):
        run_dir = summary.parent
        match = SEED_DIR.match(run_dir.name)
        label_dir = run_dir.parent.parent
        if match is None or (papers and label_dir.parent.name not in papers):
            continue
        label = label_dir.name
        if tier and (label != tier if LABEL_SEPARATOR in tier else tier_of(label) != tier):
            continue
        found.append((label_dir.parent.name, label, run_dir.parent.name, int(match.group(1)), run_dir))
    return [load_run(path, variant, seed) for *_, variant, seed, path in sorted(found)]


def papers_with_results(root: Path) -> list[str]:
    """The paper ids with at least one finished run (results/<paper>/<label>/<variant>/seed<k>/summary.json)."""
    return sorted({summary.parents[3].name for summary in root.glob(RUN_GLOB)})


def _paper_set(paper: str | Iterable[str] | None) -> set[str]:
    if paper is None:
        return set()
    items = paper.split(",") if isinstance(paper, str) else list(paper)
    return {p.strip() for p in items if p.strip()}


def run_rows(run: RunData, root: Path) -> list[dict[str, Any]]:
    """One run's rows: its metrics (module docstring), each with the run's identity and provenance."""
    from repro.overrides import Overrides, tier_of

    summary = run.summary or {}
    label_dir = run.path.parent.parent
    prov = summary.get("provenance") or {}
    model = summary.get("model") or ((run.config or {}).get("model") or {}).get("name_or_path")
    common = {
        "paper": label_dir.parent.name,
        "tier": tier_of(label_dir.name),
        "label": label_dir.name,
        "variant": run.variant,
        "seed": run.seed,
        "model": model,
        "git_sha": prov.get("git_sha"),
        "git_dirty": prov.get("git_dirty"),
        "timestamp_utc": prov.get("timestamp_utc"),
        "cpu": prov.get("cpu"),
        "numerics_pinned": (prov.get("numerics") or {}).get("pinned"),
        "overrides": Overrides.from_record(summary.get("overrides")).describe(),
        "config_sha256": prov.get("config_sha256"),
        "run_dir": _relative(run.path, root),
    }
    return [{**common, "metric": m, "value": v, "step": s, "source": src} for m, v, s, src in _metrics(run)]


def _metrics(run: RunData) -> list[tuple[str, float, int | None, str]]:
    """(metric, value, step, source file) of one run, in the order the module docstring lists them."""
    summary = run.summary or {}
    columns: dict[str, list[tuple[int | None, float]]] = {}
    for row in run.metrics:  # sorted by step (load_run)
        step = row.get("step")
        step = int(step) if _number(step) is not None else None
        for key, value in row.items():
            if key not in IGNORED_TRAIN and (v := _number(value)) is not None:
                columns.setdefault(key, []).append((step, v))
    steps = [s for points in columns.values() for s, _ in points if s is not None]
    last_step = max(steps) if steps else _int(summary.get("steps"))
    out = [
        (f"run.{k}", v, last_step, "summary.json")
        for k in ("steps", "wall_time_s")
        if (v := _number(summary.get(k))) is not None
    ]
    out += [(f"eval.{k}", v, last_step, "eval.json") for k, v in _flatten(run.eval or {})]
    for key, points in columns.items():
        out.append((f"train.{key}.final", points[-1][1], points[-1][0], "metrics.jsonl"))
        out.append((f"train.{key}.mean", sum(v for _, v in points) / len(points), points[-1][0], "metrics.jsonl"))
    for name, entry in sorted(run.benchmarks.items()):
        if (v := _number(entry.get("value"))) is not None:
            out.append((f"bench.{name}", v, last_step, f"bench/{name}.json"))
    return out


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """Numeric scalars of a JSON mapping as (dotted key, value), settings and lists left out."""
    out = []
    for key, value in mapping.items():
        if key in IGNORED_EVAL:
            continue
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        elif (v := _number(value)) is not None:
            out.append((f"{prefix}{key}", v))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    return int(value) if _number(value) is not None else None


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


# --------------------------------------------------------------------------- the command


def summary_line(df: pd.DataFrame) -> str:
    """`rows=<n> runs=<m>`: the line the command ends with."""
    runs = df[["paper", "label", "variant", "seed"]].drop_duplicates() if len(df) else df
    return f"rows={len(df)} runs={len(runs)}"


def require_format(fmt: str, out: Path | None) -> None:
    """Refuse a format that cannot be written before any file is read."""
    if fmt not in FORMATS:
        raise ConfigError(f"results: unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"results --format parquet needs pyarrow, which is not installed: {PYARROW_HINT}"
            ) from None
        if out is None:
            raise ConfigError("results --format parquet writes a binary file: add --out <file>.parquet")


def render(df: pd.DataFrame, fmt: str) -> str:
    """The table as CSV or a markdown table (parquet: write_table)."""
    if fmt == "csv":
        return df.to_csv(index=False, lineterminator="\n")
    from repro.report.render import md_table

    cells = [[_cell(v) for v in row] for row in df.itertuples(index=False)]
    return md_table(list(df.columns), cells) + "\n"


def _cell(value: Any) -> str:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def write_table(df: pd.DataFrame, fmt: str, out: Path) -> Path:
    """Write atomically: a killed command leaves the previous file, never half a table."""
    from repro.io import atomic_path, write_text

    if fmt == "parquet":
        with atomic_path(out) as tmp:
            df.to_parquet(tmp, index=False)
    else:
        write_text(out, render(df, fmt))
    return out
