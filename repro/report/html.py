"""A report's markdown as one self-contained HTML page.

Tables are styled, verdict and status cells coloured, settings that deviate from the paper highlighted, and
every figure embedded as a data: URI, so the page can be mailed, archived or opened from any directory alone.
A section index at the top links every `##` heading.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

from repro.io import write_text

# cell text (a verdict or a target status, as render.py writes them) -> CSS class
STATUS_CLASS = {
    "reproduced": "ok",
    "better than reported": "ok",
    "within tolerance": "ok",
    "not reproduced": "bad",
    "inconclusive": "warn",
    "insufficient seeds": "muted",
    "holds": "ok",
    "fails": "bad",
    "does not discriminate": "bad",
    "not testable": "muted",
    "not comparable": "muted",
    "not run": "muted",
}
MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       max-width: 1180px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fbfbfc; }
td.ok { background: #dafbe1 !important; } td.bad { background: #ffebe9 !important; }
td.warn { background: #fff8c5 !important; } td.muted { color: #6e7781; }
tr.deviates td { background: #fff4e5 !important; }
img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
img.missing { display: none; }
code { background: #f6f8fa; padding: 0 3px; border-radius: 3px; font-size: 90%; }
nav { background: #f6f8fa; padding: .5em 1em; border-radius: 6px; font-size: 13px; }
nav a { margin-right: 1em; white-space: nowrap; }
.missing-figure { color: #cf222e; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""


def markdown_to_html(text: str, base_dir: Path) -> str:
    """The page for markdown `text` whose relative image paths are relative to `base_dir`."""
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists", "toc"], output_format="html")
    body = _embed_images(body, base_dir)
    body = _mark_status_cells(body)
    body = _mark_deviating_rows(body)
    body = _add_section_index(body)
    title_match = re.search(r"<h1[^>]*>(.*?)</h1>", body, flags=re.S)
    title = re.sub(r"<[^>]+>", "", title_match.group(1)) if title_match else "report"
    return PAGE.format(title=title, css=CSS, body=body)


def write_html(md_path: str | Path, html_path: str | Path | None = None) -> Path:
    """Write the HTML page of the markdown file `md_path` (default: beside it, `.html`) and return its path."""
    md_path = Path(md_path)
    out = Path(html_path) if html_path is not None else md_path.with_suffix(".html")
    write_text(out, markdown_to_html(md_path.read_text(encoding="utf-8"), md_path.parent))
    return out


def _embed_images(body: str, base_dir: Path) -> str:
    def embed(match: re.Match[str]) -> str:
        tag, src = match.group(0), html.unescape(match.group(1))
        if src.startswith(("data:", "http://", "https://")):
            return tag
        path = (base_dir / src).resolve()
        mime = MIME.get(path.suffix.lower())
        if mime is None or not path.is_file():
            return f'<span class="missing-figure">figure missing: {html.escape(src)}</span>'
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return tag.replace(match.group(1), f"data:{mime};base64,{data}")

    return re.sub(r'<img[^>]*?src="([^"]+)"[^>]*>', embed, body)


def _mark_status_cells(body: str) -> str:
    def mark(match: re.Match[str]) -> str:
        inner = match.group(1)
        word = re.sub(r"<[^>]+>", "", inner).strip().lower()
        cls = STATUS_CLASS.get(word)
        return f'<td class="{cls}">{inner}</td>' if cls else match.group(0)

    return re.sub(r"<td>(.*?)</td>", mark, body, flags=re.S)


def _mark_deviating_rows(body: str) -> str:
    """In a table with a "Deviation" column (the settings table), mark the rows whose deviation is not "none"."""

    def table(match: re.Match[str]) -> str:
        block = match.group(0)
        headers = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", block, flags=re.S)]
        if "Deviation" not in headers:
            return block
        col = headers.index("Deviation")

        def row(m: re.Match[str]) -> str:
            cells = re.findall(r"<td[^>]*>(.*?)</td>", m.group(1), flags=re.S)
            if len(cells) > col and re.sub(r"<[^>]+>", "", cells[col]).strip() not in ("none", ""):
                return f'<tr class="deviates">{m.group(1)}</tr>'
            return m.group(0)

        return re.sub(r"<tr>(.*?)</tr>", row, block, flags=re.S)

    return re.sub(r"<table>.*?</table>", table, body, flags=re.S)


def _add_section_index(body: str) -> str:
    """A line of links to every h2 (ids come from the toc extension), placed after the first paragraph block."""
    sections = re.findall(r'<h2 id="([^"]+)">(.*?)</h2>', body, flags=re.S)
    if len(sections) < 3:
        return body
    links = " ".join(f'<a href="#{sid}">{re.sub(r"<[^>]+>", "", name)}</a>' for sid, name in sections)
    first = body.find("<h2")
    return body[:first] + f"<nav>{links}</nav>\n" + body[first:]
