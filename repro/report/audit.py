"""`repro claims --audit`: every claim of every paper from its latest compare.json, with its kind, verdict and
placebo verdict, and one closing line that says how many mechanism claims discriminate.

    claims mechanism=<n> discriminating=<m> vacuous=<k> papers_without_mechanism_test=<j>

vacuous: mechanism claims whose placebo passes (the control in the treatment's place "reproduces" too);
papers_without_mechanism_test: papers with no discriminating mechanism claim at the tier read, or whose targets.yaml
declares the tier cannot test the mechanism (`no_mechanism_test`), and papers never run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.io import read_json
from repro.overrides import tier_of
from repro.report.targets import TIERS, load_paper_meta
from repro.report.verdicts import discriminates, vacuous


@dataclass(frozen=True)
class AuditRow:
    paper: str
    tier: str
    id: str
    kind: str
    verdict: str
    placebo: str


def latest_compare(root: Path, paper: str, tier: str | None = None) -> Path | None:
    """The newest results/<paper>/<tier or tier@label>/compare.json (of one tier when `tier` is given)."""
    found = [
        p
        for p in (root / "results" / paper).glob("*/compare.json")
        if tier_of(p.parent.name) in TIERS and tier in (None, tier_of(p.parent.name))
    ]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def placebo_word(claim: dict[str, Any]) -> str:
    placebo = claim.get("placebo")
    if not placebo:
        return "no control"
    if placebo.get("test_verdict") in (None, "insufficient seeds"):
        return "insufficient seeds"
    return "passes" if placebo.get("passes") else "fails"


def audit(root: Path, tier: str | None = None, recompute: bool = False) -> tuple[list[AuditRow], dict[str, int]]:
    """Rows and totals over every paper folder under `root`/papers.

    recompute: judge the runs again with the current targets.yaml (nothing is written), instead of reading the
    verdicts compare.json stored when it last ran.
    """
    rows: list[AuditRow] = []
    totals = {"mechanism": 0, "discriminating": 0, "vacuous": 0, "papers_without_mechanism_test": 0}
    for paper_yaml in sorted((root / "papers").glob("*/paper.yaml")):
        paper = load_paper_meta(paper_yaml.parent).id
        path = latest_compare(root, paper, tier)
        if path is None:
            rows.append(AuditRow(paper, tier or "—", "—", "—", "not run", "—"))
            totals["papers_without_mechanism_test"] += 1
            continue
        result = read_json(path)
        if recompute:
            from repro.report.compare import compare

            result = compare(paper_yaml.parent, path.parent, result["tier"], result.get("label"))
        mechanism = [c for c in result.get("claims") or [] if c.get("kind", "mechanism") == "mechanism"]
        for claim in result.get("claims") or []:
            kind = claim.get("kind", "mechanism")
            rows.append(AuditRow(paper, path.parent.name, claim["id"], kind, claim["verdict"], placebo_word(claim)))
        totals["mechanism"] += len(mechanism)
        totals["discriminating"] += sum(discriminates(c) for c in mechanism)
        totals["vacuous"] += sum(vacuous(c) for c in mechanism)
        declared = (result.get("mechanism") or {}).get("declared")  # targets.yaml: no mechanism test at this tier
        totals["papers_without_mechanism_test"] += bool(declared) or not any(discriminates(c) for c in mechanism)
    return rows, totals


def render_audit(rows: list[AuditRow], totals: dict[str, int]) -> str:
    headers = ("paper", "tier", "claim", "kind", "verdict", "placebo")
    table = [headers, *((r.paper, r.tier, r.id, r.kind, r.verdict, r.placebo) for r in rows)]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table]
    lines.append("claims " + " ".join(f"{k}={v}" for k, v in totals.items()))
    return "\n".join(lines)
