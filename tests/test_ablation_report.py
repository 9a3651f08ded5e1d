"""The ablation report: each row's increment over the previous and the first row, paper vs ours, by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from repro.report.ablation import difference, direction, render_ablation_report, row_deltas

ROOT = Path(__file__).resolve().parents[1]
T_975_DF2 = 4.302652729911275  # Student t quantile, 2 degrees of freedom


def _row(variant: str, published: float | None, by_seed: dict[str, float]) -> dict[str, object]:
    values = list(by_seed.values())
    return {"variant": variant, "label": f"+ {variant}", "published": published, "n_seeds": len(values),
            "ours_mean": sum(values) / len(values) if values else None, "ours_ci": None, "ours_by_seed": by_seed}  # fmt: skip


ROWS = [
    _row("naive_grpo", 30, {"0": 10.0, "1": 12.0, "2": 14.0}),
    _row("overlong_filtering", 36, {"0": 13.0, "1": 14.0, "2": 18.0}),  # +3, +2, +4 over the row above
    _row("clip_higher", 38, {"0": 12.0, "1": 12.0, "2": 15.0}),  # −1, −2, −3
    _row("soft_overlong", 41, {"0": 20.0}),  # one seed: no CI
]


def test_increments_are_paired_by_seed_with_a_t_interval() -> None:
    mean, ci, how = difference(ROWS[1]["ours_by_seed"], ROWS[0]["ours_by_seed"])
    half = T_975_DF2 * 1.0 / math.sqrt(3)  # differences 3, 2, 4: sd 1
    assert how == "paired" and mean == pytest.approx(3.0) and ci == pytest.approx([3.0 - half, 3.0 + half])
    mean, ci, how = difference({"0": 1.0, "1": 3.0}, {"5": 0.0, "6": 1.0})  # no shared seed: Welch
    assert how == "Welch" and mean == pytest.approx(1.5)
    assert difference({"0": 2.0}, {"0": 1.0, "1": 3.0})[1:] == (None, "one seed")


def test_direction_against_the_papers_sign() -> None:
    assert direction(6.0, [0.5, 5.5]) == "agrees" and direction(-6.0, [0.5, 5.5]) == "opposite"
    assert direction(2.0, [-4.5, 0.5]) == "unclear" and direction(2.0, None) == "—"


def test_row_deltas_from_previous_and_first_row() -> None:
    deltas = {d["variant"]: d for d in row_deltas(ROWS)}
    assert list(deltas) == ["overlong_filtering", "clip_higher", "soft_overlong"]
    of, ch, so = deltas["overlong_filtering"], deltas["clip_higher"], deltas["soft_overlong"]
    assert of["published_prev"] == 6 and of["ours_prev"] == pytest.approx(3.0) and of["direction_prev"] == "agrees"
    assert ch["published_prev"] == 2 and ch["ours_prev"] == pytest.approx(-2.0) and ch["direction_prev"] == "unclear"
    assert ch["published_first"] == 8 and ch["ours_first"] == pytest.approx(1.0)  # 12,12,15 vs 10,12,14
    assert so["how_prev"] == "one seed" and so["direction_prev"] == "—"


def test_report_renders_tables_figures_and_html(tmp_path: Path) -> None:
    compare = tmp_path / "compare.json"
    meta = {"title": "Progressive techniques", "source": "Table 1", "metric": "avg@32", "unit": "percent",
            "ours_metric": "eval.json sampled_accuracy ×100"}  # fmt: skip
    claims = [
        {"id": "ds", "kind": "mechanism", "treatment": "dapo", "control": "clip_higher", "effect": 0.1,
         "ci": [0.05, 0.15], "verdict": "reproduced", "placebo": {"test_verdict": "inconclusive", "passes": False,
                                                                  "effect": 0.0, "control_mean": 0.5}},
        {"id": "moves", "kind": "premise", "treatment": "clip_higher", "control": "base_model", "verdict": "holds"},
        {"id": "elsewhere", "kind": "mechanism", "treatment": "x", "control": "y", "verdict": "reproduced"},
    ]  # fmt: skip
    result = {"tier": "smoke", "ablation": ROWS, "ablation_meta": meta, "runs": [], "claims": claims}
    compare.write_text(json.dumps(result))
    md, page = render_ablation_report(ROOT / "papers" / "dapo", compare, "smoke", tmp_path / "r" / "ablation.md")
    text = md.read_text(encoding="utf-8")
    assert "| + overlong_filtering | +6 | 3 [" in text and "| agrees |" in text
    assert "Of 3 increments, ours 1 agree with the paper's direction, 0 go the opposite way and 1 are unclear" in text
    assert (tmp_path / "r" / "figures" / "ablation_deltas.png").is_file()
    mechanism, premises = text.split("## Mechanism claims on these rows")[1].split("## Premises on these rows")
    assert "| ds | dapo vs clip_higher |" in mechanism and "fails (effect 0, p —)" in mechanism
    assert "| moves | clip_higher vs base_model |" in premises and "elsewhere" not in text
    assert page.read_text(encoding="utf-8").count("data:image/png;base64,") == 2
    with pytest.raises(ValueError, match="no `ablation:` table"):
        render_ablation_report(ROOT / "papers" / "dft", compare, "smoke", tmp_path / "x.md")
    with pytest.raises(ValueError, match="not 'paper'"):
        render_ablation_report(ROOT / "papers" / "dapo", compare, "paper", tmp_path / "x.md")
