"""A paper's trainer.py never overrides a config key: what config.resolved.yaml records is what runs (issue 25).

The online-RL group filter is the case that went wrong: six papers' trainer.py passed the `none` filter, so
`train.dynamic_sampling: true` was recorded and ignored. The core now picks it from the config
(repro/trainers/group_filter.py config_group_filter) and no trainer.py passes anything but the runner's parts.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from repro import workflow as wf
from repro.config import load_paper_config, merged_paper_config
from repro.overrides import Overrides
from repro.trainer_kinds import ONLINE_RL
from repro.trainers.group_filter import GROUP_FILTERS

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "papers"
# PAPO's terms need a vision-language policy; off, its loop is the text loop every other online-RL paper runs
TEXT_POLICY = (("train.perception_loss_weight", 0.0), ("train.der_loss_weight1", 0.0), ("train.der_loss_weight2", 0.0))


def online_rl_papers() -> list[str]:
    return [
        paper
        for paper in wf.paper_ids(PAPERS)
        if merged_paper_config(PAPERS / paper, "smoke", wf.default_variant(paper, PAPERS)).get("trainer", ONLINE_RL)
        == ONLINE_RL
    ]


def test_the_online_rl_papers_are_found() -> None:
    """The parametrised test below covers every online-RL paper, not an empty list."""
    expected = {"dapo", "dr_grpo", "gfpo", "gspo", "lite_ppo", "papo", "rloo", "scalerl", "tis"}
    assert expected <= set(online_rl_papers())


class StubRollout:
    """Never called: building the trainer only stores its rollout backend."""

    synced_gpus = False


@pytest.mark.parametrize("paper", online_rl_papers())
@pytest.mark.parametrize("dynamic_sampling", [True, False])
def test_the_group_filter_follows_train_dynamic_sampling(
    paper: str, dynamic_sampling: bool, tiny_model_dir: str, tmp_path: Path
) -> None:
    from repro.models.loading import load_policy

    variant = wf.default_variant(paper, PAPERS)
    # off: its retry budget goes back to the default too (a budget for a switched-off filter is refused)
    off = () if dynamic_sampling else (("train.dynamic_sampling_max_tries", None),)
    overrides = Overrides(sets=(("train.dynamic_sampling", dynamic_sampling), *off, *TEXT_POLICY))
    cfg = load_paper_config(PAPERS / paper, "smoke", variant, overrides)
    assert cfg.train.dynamic_sampling is dynamic_sampling  # what config.resolved.yaml records
    model, tok = load_policy(tiny_model_dir)
    trainer = importlib.import_module(f"papers.{paper}.trainer").build_trainer(
        cfg, model=model, tokenizer=tok, prompts=[], rollout=StubRollout(), out_dir=tmp_path, seed=0
    )
    expected = GROUP_FILTERS.get("dynamic_sampling" if dynamic_sampling else "none")
    assert trainer.group_filter is expected, (
        f"papers/{paper}/trainer.py runs group filter {trainer.group_filter.__name__} while the config records "
        f"train.dynamic_sampling: {dynamic_sampling}"
    )


def constructor_calls(tree: ast.Module) -> list[ast.Call]:
    """The calls `build_trainer` returns (the trainer it builds)."""
    build = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_trainer")
    return [n.value for n in ast.walk(build) if isinstance(n, ast.Return) and isinstance(n.value, ast.Call)]


@pytest.mark.parametrize("paper", wf.paper_ids(PAPERS))
def test_no_trainer_py_passes_more_than_the_config_and_the_runners_parts(paper: str) -> None:
    """Every setting a run trains with is a config key the core reads; trainer.py hands the core `cfg` and the
    runner's parts (model, data, out_dir, seed, ...) and nothing it chose itself, which the config would not record."""
    path = PAPERS / paper / "trainer.py"
    calls = constructor_calls(ast.parse(path.read_text(encoding="utf-8")))
    assert calls, f"{path}: build_trainer returns no trainer construction"
    for call in calls:
        extra = [ast.unparse(a) for a in call.args[1:]] + [f"{k.arg}=" for k in call.keywords if k.arg is not None]
        assert [ast.unparse(a) for a in call.args[:1]] == ["cfg"] and not extra, (
            f"{path}: build_trainer passes {', '.join(extra) or 'no cfg'} besides (cfg, **parts); a setting the run "
            "uses must be a config key the core reads, so that config.resolved.yaml records what runs"
        )
