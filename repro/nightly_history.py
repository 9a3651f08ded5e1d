"""The nightly's history, results/nightly_history.jsonl (tracked by git), and the trend check that reads it.

Every `python -m repro nightly` appends one JSON line: when (UTC), the commit and whether the tree was dirty, the
CPU, the settings, whether it recorded baselines (such a night still counts: its values are measured like any
other, compared with the baselines it replaces), and per paper how it was compared (exact or statistical, or no
baseline) and per metric the mean over seeds now, the baseline's mean, the tolerance abs_tol + rel_tol·|baseline|
(the band drawn around the baseline, also for exact comparisons, whose verdict needs equal bits instead) and the
verdict (ok, regressed, not compared, no baseline).

Writing: the whole file is rewritten beside itself and renamed over the old one (repro/io.py atomic_path), so a
crash leaves either last night's file or tonight's, never a torn line in a file that git tracks. An append with
fsync could leave a partial last line, and the next night's line would then be glued to it. The file grows by
about 100 KB a night for the whole catalog (30 metrics × 26 papers); git stores the appended versions as deltas.
Two branches that both append merge line by line (.gitattributes: merge=union); lines are read sorted by date.

Trend check (drift), per paper and metric, over the last DRIFT_NIGHTS = 5 nights that measured it with the
latest night's settings (max_steps and seeds; nights run otherwise measure something else): a least-squares line
through the values against the night's position. The metric is *drifting* when
- the slope differs from zero by a t-test with n − 2 degrees of freedom at the nightly's alpha (a straight line
  through the points counts as significant, equal values as not), and
- the fitted change over the window, |slope|·(n − 1), exceeds half the tolerance: at that pace the metric crosses
  from the baseline to the band's edge within about two windows, before a single night would flag it.
Why a line and not "every night moved the same way": with pinned numerics a metric moves only on nights whose
commits touched it, so a real drift has flat steps a strict run test would call broken, and one jump followed by
flat nights is a step, not a drift (its residuals make the slope insignificant). Noise about the baseline rarely
passes both tests: a significant slope at alpha = 0.01 and 3 degrees of freedom needs |t| > 5.8. The check is not
corrected for the number of metrics: a flag asks for a look in the report, it never fails the night.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from repro.io import write_text

if TYPE_CHECKING:
    from repro.nightly import NightlyOutcome

HISTORY = Path("results/nightly_history.jsonl")
DRIFT_NIGHTS = 5
DRIFT_SHARE = 0.5  # of the tolerance: the fitted change over the window that makes a significant slope a drift


# --------------------------------------------------------------------------- writing


def night_record(outcome: NightlyOutcome, root: Path, baselines_updated: bool) -> dict[str, Any]:
    """Tonight's line: the run's identity and, per paper and metric, now, baseline, tolerance and verdict."""
    from repro.provenance import cpu_name, git_state

    sha, dirty = git_state(root)
    s = outcome.settings
    papers = {}
    for paper, now in outcome.now.items():
        baseline = (outcome.records.get(paper) or {}).get("metrics") or {}
        compared = {c.metric: c for c in outcome.comparisons.get(paper, [])}
        metrics = {}
        for metric in sorted(set(now) | set(baseline)):
            b_mean = _mean(baseline.get(metric))
            c = compared.get(metric)
            verdict = _verdict(bool(baseline), c.regressed if c is not None else None)
            metrics[metric] = {
                "now": _mean(now.get(metric)),
                "baseline": b_mean,
                "tolerance": None if b_mean is None else s.abs_tol + s.rel_tol * abs(b_mean),
                "verdict": verdict,
            }
        blockers = outcome.blockers.get(paper)
        papers[paper] = {
            "variant": outcome.variants[paper],
            "comparison": "no baseline" if blockers is None else ("statistical" if blockers else "exact"),
            "seeds_missing": outcome.missing.get(paper, []),
            "metrics": metrics,
        }
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": sha,
        "dirty": dirty,
        "cpu": cpu_name(),
        "baselines_updated": baselines_updated,
        "settings": {
            "max_steps": s.max_steps,
            "seeds": s.seeds,
            "alpha": s.alpha,
            "abs_tol": s.abs_tol,
            "rel_tol": s.rel_tol,
        },
        "regressed": any(c.regressed for cs in outcome.comparisons.values() for c in cs),
        "papers": papers,
    }


def _verdict(has_baseline: bool, regressed: bool | None) -> str:
    if not has_baseline:
        return "no baseline"
    if regressed is None:
        return "not compared"  # e.g. fewer than 2 seeds on a side of a statistical comparison
    return "regressed" if regressed else "ok"


def _mean(by_seed: dict[str, float] | None) -> float | None:
    values = [v for v in (by_seed or {}).values() if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def append_night(record: dict[str, Any], root: Path) -> Path:
    """Add one line to the history: the old lines byte for byte, then this one, renamed into place at once."""
    path = root / HISTORY
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    write_text(path, old + json.dumps(record, allow_nan=False) + "\n")
    return path


def read_history(root: Path) -> tuple[list[dict[str, Any]], int]:
    """(nights sorted by date, lines skipped): a line that is not a JSON object (a bad hand edit) is skipped."""
    path = root / HISTORY
    if not path.is_file():
        return [], 0
    nights, skipped = [], 0
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        try:
            night = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(night, dict) and isinstance(night.get("papers"), dict):
            nights.append(night)
        else:
            skipped += 1
    return sorted(nights, key=lambda n: str(n.get("date_utc", ""))), skipped


# --------------------------------------------------------------------------- the trend check


@dataclass(frozen=True)
class Trend:
    """One paper's metric over the comparable nights (oldest first) and its drift check on the last ones."""

    paper: str
    metric: str
    dates: list[str]
    values: list[float]
    baselines: list[float | None]
    tolerances: list[float | None]
    recorded: list[bool]  # the nights that recorded baselines (the band moves after them)
    tolerance: float  # the latest night's (or abs_tol + rel_tol·|mean| without a baseline)
    slope: float  # per night, over the drift window (nan: too few nights)
    p: float
    drifting: bool

    @property
    def change(self) -> float:
        """The fitted change over the drift window."""
        return self.slope * (min(len(self.values), DRIFT_NIGHTS) - 1)

    @property
    def spread(self) -> float:
        """How far it moved over every night shown, in tolerances: the figure's ranking."""
        return (max(self.values) - min(self.values)) / max(self.tolerance, 1e-12)

    def nights_to_edge(self) -> float | None:
        """At the fitted pace, nights until the latest value leaves the band (0: outside already); None without
        a baseline or a slope."""
        base, last = self.baselines[-1], self.values[-1]
        if base is None or not self.slope or not math.isfinite(self.slope):
            return None
        edge = base + math.copysign(self.tolerance, self.slope)
        return max((edge - last) / self.slope, 0.0)


def comparable_nights(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The nights run with the latest night's max_steps and seeds."""
    if not history:
        return []
    key = _settings_key(history[-1])
    return [n for n in history if _settings_key(n) == key]


def _settings_key(night: dict[str, Any]) -> tuple[Any, ...]:
    s = night.get("settings") or {}
    return s.get("max_steps"), tuple(s.get("seeds") or ())


def trends(history: list[dict[str, Any]]) -> dict[str, list[Trend]]:
    """{paper: its metrics' trends} over the comparable nights, drifting first, then by how far they moved."""
    nights = comparable_nights(history)
    if not nights:
        return {}
    latest = nights[-1]["settings"]
    out: dict[str, list[Trend]] = {}
    for paper in latest_papers(nights):
        metrics = sorted({m for n in nights for m in ((n["papers"].get(paper) or {}).get("metrics") or {})})
        found = [t for m in metrics if (t := _trend(nights, paper, m, latest)) is not None]
        out[paper] = sorted(found, key=lambda t: (not t.drifting, -t.spread, t.metric))
    return out


def latest_papers(nights: list[dict[str, Any]]) -> list[str]:
    return sorted(nights[-1]["papers"])


def _trend(nights: list[dict[str, Any]], paper: str, metric: str, settings: dict[str, Any]) -> Trend | None:
    points = [
        (n, m)
        for n in nights
        if (m := ((n["papers"].get(paper) or {}).get("metrics") or {}).get(metric)) and m.get("now") is not None
    ]
    if not points:
        return None
    values = [float(m["now"]) for _, m in points]
    tolerances = [m.get("tolerance") for _, m in points]
    tolerance = tolerances[-1]
    if tolerance is None:
        tolerance = settings["abs_tol"] + settings["rel_tol"] * abs(float(np.mean(values[-DRIFT_NIGHTS:])))
    slope, p = drift_slope(values[-DRIFT_NIGHTS:])
    drifting = (
        len(values) >= DRIFT_NIGHTS
        and p < settings["alpha"]
        and abs(slope) * (DRIFT_NIGHTS - 1) > DRIFT_SHARE * tolerance
    )
    return Trend(
        paper, metric, [n["date_utc"] for n, _ in points], values, [m.get("baseline") for _, m in points],
        tolerances, [bool(n.get("baselines_updated")) for n, _ in points], float(tolerance), slope, p, drifting,
    )  # fmt: skip


def drift_slope(values: list[float]) -> tuple[float, float]:
    """(least-squares slope per night, two-sided p of a zero slope); (nan, 1) for fewer than 3 values."""
    from scipy import stats  # here, not at import: the Snakefile imports repro.nightly on every invocation

    n = len(values)
    if n < 3:
        return math.nan, 1.0
    x = np.arange(n, dtype=float) - (n - 1) / 2.0  # [n], centred
    y = np.asarray(values, dtype=float)  # [n]
    sxx = float(np.sum(x * x))
    slope = float(np.sum(x * (y - y.mean())) / sxx)
    residual = y - y.mean() - slope * x  # [n]
    se = math.sqrt(float(np.sum(residual * residual)) / (n - 2) / sxx)
    if se <= 1e-15 * max(1.0, float(np.max(np.abs(y)))):  # on a straight line (flat included)
        return slope, (1.0 if abs(slope) <= 1e-15 * max(1.0, float(np.max(np.abs(y)))) else 0.0)
    return slope, float(2.0 * stats.t.sf(abs(slope / se), n - 2))
