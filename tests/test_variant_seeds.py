"""Each variant runs its own seeds (issue 25): `seeds:` is read from that variant's merged config, never the first
variant's for all; `--config seeds=N` takes the first N of each variant's list."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro import workflow as wf

TIER_SEEDS = [0, 1, 2]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def papers(tmp_path: Path) -> Path:
    """A paper `toy` with variants a (the tier's seeds), b (its own seeds) and c (its own seeds at the small tier
    only); a is listed first, so a reader of the first variant's seeds imposes a's on b and c."""
    root = tmp_path / "papers"
    write(root / "toy" / "paper.yaml", "id: toy\nvariants: [a, b, c]\ndefault_variant: a\n")
    tier = "train:\n  max_steps: 3\neval:\n  benchmarks: {aime24: {}}\nseeds: [0, 1, 2]\n"
    write(root / "toy" / "configs" / "smoke.yaml", tier)
    write(root / "toy" / "configs" / "small.yaml", tier)
    write(root / "toy" / "configs" / "variants" / "a.yaml", "train:\n  beta: 0.0\n")
    write(root / "toy" / "configs" / "variants" / "b.yaml", "train:\n  beta: 0.1\nseeds: [5, 6]\n")
    write(root / "toy" / "configs" / "variants" / "c.yaml", "tiers:\n  small:\n    seeds: [7]\n")
    return root


def test_each_variant_runs_the_seeds_of_its_own_config(papers: Path) -> None:
    runs = wf.runs("toy", "smoke", papers_dir=papers)
    assert [s for v, s in runs if v == "a"] == TIER_SEEDS  # the tier's seeds
    assert [s for v, s in runs if v == "b"] == [5, 6]  # b's own, not a's
    assert [s for v, s in runs if v == "c"] == TIER_SEEDS  # c sets seeds only at the small tier
    assert wf.seeds("toy", "small", papers_dir=papers, variant="c") == [7]
    assert wf.seeds("toy", "small", papers_dir=papers, variant="a") == TIER_SEEDS  # c's small seeds stay c's


def test_the_planned_files_list_each_variants_seeds(papers: Path) -> None:
    benches = wf.benchmark_files("toy", "smoke", papers_dir=papers)
    assert "results/toy/smoke/b/seed5/bench/aime24.json" in benches
    assert "results/toy/smoke/b/seed0/bench/aime24.json" not in benches  # a's seeds are not imposed on b
    evals = wf.eval_files("toy", "smoke", papers_dir=papers)
    for seed in (5, 6):
        assert f"results/toy/smoke/b/seed{seed}/eval.json" in evals
        assert f"results/toy/smoke/b/seed{seed}/bench/aime24.json" in benches
        assert f"results/toy/smoke/a/seed{seed}/eval.json" not in evals  # b's seeds are not imposed on a
    assert not [f for f in evals + benches if "/b/seed0/" in f or "/b/seed1/" in f or "/b/seed2/" in f]
    assert len(evals) == len(benches) == 3 + 2 + 3  # a, b, c: one eval and one benchmark file per run


def test_a_seeds_override_takes_the_first_n_of_each_variants_list(papers: Path) -> None:
    runs = wf.runs("toy", "smoke", 1, papers_dir=papers)
    assert runs == [("a", 0), ("b", 5), ("c", 0)]
    assert wf.benchmark_files("toy", "smoke", 1, papers_dir=papers) == [
        "results/toy/smoke/a/seed0/bench/aime24.json",
        "results/toy/smoke/b/seed5/bench/aime24.json",
        "results/toy/smoke/c/seed0/bench/aime24.json",
    ]
