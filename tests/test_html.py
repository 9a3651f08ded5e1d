"""The self-contained HTML page of a report: figures embedded, verdicts coloured, deviations marked; and the page
as a real browser shows it (headless Chromium, when the machine has it)."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from repro.report.html import markdown_to_html, write_html

REPORT_MD = """# Paper X — reproduction report

Paper: [arXiv 1](https://arxiv.org/abs/1) · tier **smoke**

## Settings (ours vs paper)

| Setting | Paper | Ours | Deviation | Source |
|---|---|---|---|---|
| `train.learning_rate` | 1e-06 | 1e-05 | ×10 of paper | §4 |
| `train.beta` | 0.1 | 0.1 | none | §4 |

## Claims

| Claim | p | Verdict |
|---|---|---|
| a | 0.01 | **reproduced** |
| b | 0.2 | **inconclusive** |
| c \\| with a pipe | 0.9 | **not reproduced** |

## Training curves

![loss](figures/loss.png)

![gone](figures/gone.png)
"""


def _figure(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().plot([0, 1, 2], [2, 1, 0.5])
    fig.savefig(path)
    return path.read_bytes()


def test_page_embeds_figures_and_marks_verdicts_and_deviations(tmp_path: Path) -> None:
    png = _figure(tmp_path / "figures" / "loss.png")
    (tmp_path / "report.md").write_text(REPORT_MD, encoding="utf-8")
    page = write_html(tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page
    assert 'src="figures/' not in page and "figure missing: figures/gone.png" in page
    assert "<title>Paper X — reproduction report</title>" in page
    verdicts = dict(re.findall(r'<td class="(\w+)"><strong>([a-z ]+)</strong></td>', page))
    assert verdicts == {"ok": "reproduced", "warn": "inconclusive", "bad": "not reproduced"}
    deviating = re.findall(r'<tr class="deviates">(.*?)</tr>', page, flags=re.S)
    assert len(deviating) == 1 and "train.learning_rate" in deviating[0]
    assert "c | with a pipe" in page  # an escaped pipe stays inside its cell
    nav = re.search(r"<nav>(.*?)</nav>", page, flags=re.S).group(1)
    assert re.findall(r'href="#([^"]+)"', nav) == ["settings-ours-vs-paper", "claims", "training-curves"]


def test_a_short_page_has_no_section_index_and_keeps_remote_images() -> None:
    page = markdown_to_html("# t\n\n## one\n\n![x](https://example.org/x.png)\n", Path("."))
    assert "<nav>" not in page and 'src="https://example.org/x.png"' in page


def _browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright for the browser check")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    return playwright, chromium


def check_in_browser(page_path: Path, screenshot: Path) -> dict[str, object]:
    """Open `page_path` in headless Chromium: count tables, check every image decoded, collect console errors."""
    playwright, chromium = _browser()
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.resolve().as_uri())
            tables = page.locator("table").count()
            images = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"tables": tables, "images": images, "errors": errors}


def test_report_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    _figure(tmp_path / "figures" / "loss.png")
    (tmp_path / "report.md").write_text(REPORT_MD.replace("![gone](figures/gone.png)\n", ""), encoding="utf-8")
    seen = check_in_browser(write_html(tmp_path / "report.md"), tmp_path / "shot.png")
    assert seen["tables"] == 2 and seen["images"] == [True] and seen["errors"] == []
    assert (tmp_path / "shot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
