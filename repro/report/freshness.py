"""Whether the catalog index is newer than everything it is rendered from (no heavy imports: the DAG's no-op
rerun asks this before anything else loads)."""

from __future__ import annotations

from pathlib import Path

# What reports/index.{md,html} is rendered from: paper folders (metadata, targets, the configs that decide
# staleness), every comparison, every paper's report, and the code (its hash marks runs stale).
INDEX_INPUTS = (
    "papers/**/*",
    "results/*/*/compare.json",
    "reports/*/report.md",
    "reports/*/report.html",
    "repro/**/*.py",
)


def index_is_current(root: Path, out_md: Path) -> bool:
    """True when the index (markdown and HTML) exists and no input is newer than either file."""
    outputs = [out_md, out_md.with_suffix(".html")]
    if not all(p.is_file() for p in outputs):
        return False
    written = min(p.stat().st_mtime for p in outputs)
    for pattern in INDEX_INPUTS:
        for path in root.glob(pattern):
            if _source(path) and path.stat().st_mtime > written:
                return False
    return True


def _source(path: Path) -> bool:
    """A file the index reads: not bytecode, not a hidden file (Snakemake stamps papers/<id>/.snakemake_timestamp)."""
    return "__pycache__" not in path.parts and not path.name.startswith(".") and path.is_file()
