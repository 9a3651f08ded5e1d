"""`repro claims --audit`: a row per claim from the latest compare.json, and the closing totals line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from repro.cli import main
from repro.report.audit import audit, render_audit


def paper(root: Path, pid: str) -> None:
    folder = root / "papers" / pid
    folder.mkdir(parents=True)
    meta = {"id": pid, "title": pid.upper(), "arxiv": "2501.00001v1", "family": "dpo", "variants": ["a", "b"],
            "default_variant": "a"}  # fmt: skip
    (folder / "paper.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")


def placebo(test_verdict: str, passes: bool) -> dict[str, Any]:
    return {"test_verdict": test_verdict, "passes": passes}


def compare_json(root: Path, pid: str, folder: str, claims: list[dict[str, Any]]) -> Path:
    path = root / "results" / pid / folder / "compare.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"paper": pid, "tier": folder.split("@")[0], "claims": claims}), encoding="utf-8")
    return path


def test_audit_rows_and_totals(tmp_path: Path) -> None:
    for pid in ("alpha", "beta", "gamma", "delta"):
        paper(tmp_path, pid)
    compare_json(tmp_path, "alpha", "smoke", [
        {"id": "works", "kind": "mechanism", "verdict": "reproduced", "placebo": placebo("inconclusive", False)},
        {"id": "vacuous", "kind": "mechanism", "verdict": "does not discriminate",
         "placebo": placebo("reproduced", True)},
        {"id": "moves", "kind": "premise", "verdict": "holds", "placebo": placebo("inconclusive", False)},
    ])  # fmt: skip
    compare_json(tmp_path, "delta", "smoke", [
        {"id": "same", "kind": "mechanism", "verdict": "inconclusive", "placebo": placebo("inconclusive", False)},
    ])  # fmt: skip
    declared = tmp_path / "results" / "delta" / "smoke" / "compare.json"
    declared.write_text(json.dumps({**json.loads(declared.read_text()), "mechanism": {"declared": True}}))
    older = compare_json(tmp_path, "beta", "smoke", [
        {"id": "old", "kind": "mechanism", "verdict": "reproduced", "placebo": placebo("not reproduced", False)},
    ])  # fmt: skip
    os.utime(older, (1, 1))  # the small-tier file below is the latest
    compare_json(tmp_path, "beta", "small@mine-1a2b3c", [
        {"id": "few", "kind": "mechanism", "verdict": "insufficient seeds",
         "placebo": placebo("insufficient seeds", False)},
    ])  # fmt: skip
    rows, totals = audit(tmp_path)
    got = {(r.paper, r.id): (r.tier, r.kind, r.verdict, r.placebo) for r in rows}
    assert got == {
        ("alpha", "works"): ("smoke", "mechanism", "reproduced", "fails"),
        ("alpha", "vacuous"): ("smoke", "mechanism", "does not discriminate", "passes"),
        ("alpha", "moves"): ("smoke", "premise", "holds", "fails"),
        ("beta", "few"): ("small@mine-1a2b3c", "mechanism", "insufficient seeds", "insufficient seeds"),
        ("gamma", "—"): ("—", "—", "not run", "—"),
        ("delta", "same"): ("smoke", "mechanism", "inconclusive", "fails"),
    }
    # beta: its only claim has too few seeds; gamma: never run; delta: declared untestable at this tier
    assert totals == {"mechanism": 4, "discriminating": 2, "vacuous": 1, "papers_without_mechanism_test": 3}
    assert render_audit(rows, totals).splitlines()[-1] == (
        "claims mechanism=4 discriminating=2 vacuous=1 papers_without_mechanism_test=3"
    )
    smoke_only, _ = audit(tmp_path, tier="smoke")
    assert [r.id for r in smoke_only if r.paper == "beta"] == ["old"]


def test_cli_prints_the_audit_and_strict_fails_on_a_vacuous_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    paper(tmp_path, "alpha")
    compare_json(tmp_path, "alpha", "smoke", [
        {"id": "vacuous", "kind": "mechanism", "verdict": "does not discriminate",
         "placebo": placebo("reproduced", True)},
    ])  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["claims", "--audit"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("vacuous=1 papers_without_mechanism_test=1")
    assert main(["claims", "--audit", "--strict"]) == 1
