"""Every paper folder's DAG end to end at smoke tier, shortened (8 steps, 1 seed), in one copy of the project.

What a clean checkout promises for each paper: `snakemake papers/<id>` builds the base model(s) it needs,
trains and evaluates every variant, scores the benchmarks, and renders a report whose claims each carry a
verdict (with one seed: "insufficient seeds", said as such) and whose references are listed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_e2e_dapo import copy_project, snakemake  # tests/ is on sys.path under pytest

from repro import workflow as wf
from repro.report.verdicts import MECHANISM_VERDICTS, PREMISE_VERDICTS

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["max_steps=8", "seeds=1"]
VERDICTS = tuple(dict.fromkeys(MECHANISM_VERDICTS + PREMISE_VERDICTS))  # a mechanism claim's words, a premise's
# CI runs one folder per trainer kind and per prepared base (and the report sections only some folders have:
# unpaired pairs, a scaling fit, five benchmark suites, a vision-language policy, gradient variance); the others
# carry the `catalog` mark: `pytest -m slow` runs them all, as does `snakemake nightly` (every folder, every night).
# DFT left CI when the small tier's end-to-end test came in (tests/test_e2e_small.py runs it there; BEMA keeps SFT here).
CI_PAPERS = {"dpo", "bco", "bema", "centered_rm", "on_policy_distillation", "dr_grpo", "papo", "rloo", "scalerl"}
PAPERS = [
    pytest.param(p, marks=() if p in CI_PAPERS else pytest.mark.catalog)
    for p in wf.paper_ids()
    if p != "dapo"  # DAPO has its own, fuller end-to-end test
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("family"))


@pytest.mark.parametrize("paper", PAPERS)
def test_paper_dag_renders_its_report(work: Path, paper: str) -> None:
    out = snakemake(work, f"papers/{paper}", "--config", *SHORT)
    assert f"report (smoke tier): reports/{paper}/report.md" in out.stdout
    text = (work / "reports" / paper / "report.md").read_text(encoding="utf-8")
    targets = yaml.safe_load((work / "papers" / paper / "targets.yaml").read_text(encoding="utf-8"))
    for claim in targets["claims"]:
        row = next(line for line in text.splitlines() if line.startswith(f"| {claim['id']} |"))
        assert any(f"**{v}**" in row for v in VERDICTS), row
    for ref in targets.get("references") or []:
        assert f"| {ref['id']} |" in text
    assert "## Training curves" in text and (work / "reports" / paper / "figures").is_dir()
    page = (work / "reports" / paper / "report.html").read_text(encoding="utf-8")
    assert 'src="figures/' not in page and "data:image/png;base64," in page  # self-contained
    index = (work / "reports" / "index.md").read_text(encoding="utf-8")  # refreshed by every paper's DAG
    row = next(line for line in index.splitlines() if f"(`{paper}`)" in line)
    assert f"[report.html]({paper}/report.html)" in row and "| smoke |" in row
