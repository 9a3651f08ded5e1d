"""The catalog index and run staleness, on the real paper folders with synthetic comparisons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from repro.config import dump, load_paper_config
from repro.report import catalog
from repro.report.staleness import config_changes, stale_runs

ROOT = Path(__file__).resolve().parents[1]


def _resolved(tmp_path: Path, paper: str, variant: str, **train: object) -> Path:
    run = tmp_path / "results" / paper / "smoke" / variant / "seed0"
    run.mkdir(parents=True)
    cfg = yaml.safe_load(dump(load_paper_config(ROOT / "papers" / paper, "smoke", variant)))
    cfg["train"].update(train)
    (run / "config.resolved.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return run


def test_config_changes_name_the_moved_keys_but_not_a_shortened_run(tmp_path: Path) -> None:
    papers = ROOT / "papers" / "dft"
    assert config_changes(papers, "smoke", "sft", _resolved(tmp_path / "a", "dft", "sft")) == []
    moved = _resolved(tmp_path / "b", "dft", "sft", learning_rate=1.0e-2, max_steps=8)
    assert config_changes(papers, "smoke", "sft", moved) == ["train.learning_rate"]  # max_steps 8 < 150: CI
    longer = _resolved(tmp_path / "c", "dft", "sft", max_steps=10_000)
    assert config_changes(papers, "smoke", "sft", longer) == ["train.max_steps"]


def test_stale_runs_by_code_hash_and_by_config(tmp_path: Path) -> None:
    current = _resolved(tmp_path, "dft", "sft")
    moved = _resolved(tmp_path, "dft", "dft", learning_rate=1.0)
    result = {
        "tier": "smoke",
        "provenance": {"code_sha256": "a"},
        "runs": [
            {"variant": "sft", "seed": 0, "path": str(current), "provenance": {"code_sha256": "a"}},
            {"variant": "dft", "seed": 0, "path": str(moved), "provenance": {"code_sha256": "b"}},
        ],
    }
    stale = stale_runs(result, ROOT / "papers" / "dft")
    assert stale == {"dft/seed0": ["core code changed", "config changed: train.learning_rate"]}
    assert stale_runs(result, ROOT / "papers" / "dft", {"code_sha256": "b"}) == {
        "sft/seed0": ["core code changed"],
        "dft/seed0": ["config changed: train.learning_rate"],
    }


def _compare(root: Path, paper: str, verdicts: list[str], code: str, stamp: str, placebo: str = "inconclusive") -> None:
    """A compare.json whose claims carry `verdicts`: "holds"/"fails" are premises, the rest mechanism claims with a
    placebo read `placebo` (a failing placebo: "inconclusive"; a passing one: "reproduced")."""
    out = root / "results" / paper / "smoke" / "compare.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    claims = [
        {"id": f"c{i}", "verdict": v, "kind": "premise" if v in ("holds", "fails") else "mechanism",
         "placebo": {"test_verdict": placebo, "passes": placebo == "reproduced"}}
        for i, v in enumerate(verdicts)
    ]  # fmt: skip
    result = {
        "tier": "smoke",
        "claims": claims,
        "targets": [],
        "runs": [{"variant": "x", "seed": 0, "provenance": {"code_sha256": code, "timestamp_utc": stamp}}],
    }
    out.write_text(json.dumps(result), encoding="utf-8")


def test_index_counts_verdicts_flags_stale_runs_and_lists_unrun_papers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "papers").mkdir()
    for paper in ("dft", "bema", "dpo", "nca"):
        (tmp_path / "papers" / paper).symlink_to(ROOT / "papers" / paper)
    _compare(tmp_path, "dft", ["reproduced", "reproduced", "inconclusive", "holds"], "now", "2026-12-01T10:00:00+00:00")
    _compare(tmp_path, "bema", ["not reproduced", "insufficient seeds", "fails"], "old", "2026-11-30T09:00:00+00:00")
    _compare(tmp_path, "nca", ["does not discriminate"], "now", "2026-12-01T11:00:00+00:00", placebo="reproduced")
    (tmp_path / "reports" / "dft").mkdir(parents=True)
    (tmp_path / "reports" / "dft" / "report.html").write_text("<html></html>", encoding="utf-8")
    monkeypatch.setattr("repro.provenance.code_sha256", lambda root: "now")
    md, page = catalog.write_index(tmp_path, tmp_path / "reports" / "index.md")
    text = md.read_text(encoding="utf-8")
    rows = {line.split("`")[1]: line for line in text.splitlines() if "(`" in line}
    assert (
        "| smoke | 2 / 0 / 1 / 0 / 0 / 0 | 1 holds | none | 1 | 2026-12-01 10:00:00 | no | [report.html](dft/report.html) |"
        in rows["dft"]
    )
    assert "| 0 / 1 / 0 / 1 / 0 / 0 | 1 fails |" in rows["bema"] and "**1 of 1**" in rows["bema"]
    assert "not rendered" in rows["bema"]
    assert "| no mechanism test at this tier (0 / 0 / 0 / 0 / 1 / 0) |" in rows["nca"]  # its only claim is vacuous
    assert "| not run |" in rows["dpo"]
    assert "4 paper folders; 3 with results" in text
    assert "**Mechanism claims reproduced: 2 of 6**" in text
    assert "2 reproduced, 1 not reproduced, 1 inconclusive, 1 insufficient seeds, 1 does not discriminate" in text
    assert "Premises (conditions under which the mechanism tests mean something): 1 holds, 1 fails" in text
    assert "No mechanism test at the tier run: `nca`." in text
    html = page.read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and 'href="dft/report.html"' in html


def test_index_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    from test_html import check_in_browser  # tests/ is on sys.path under pytest

    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "dft").symlink_to(ROOT / "papers" / "dft")
    _compare(tmp_path, "dft", ["reproduced", "not reproduced"], "now", "2026-12-01T10:00:00+00:00")
    _, page = catalog.write_index(tmp_path, tmp_path / "reports" / "index.md")
    seen = check_in_browser(page, tmp_path / "index.png")
    assert seen["tables"] == 1 and seen["images"] == [True] and seen["errors"] == []
