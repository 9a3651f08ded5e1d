"""The Snakemake DAG: lint, dry runs of every tier, and the DAG's shape."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from repro import workflow as wf
from repro.config import merged_paper_config

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["snakemake", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def job_counts(text: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    lines = text.split("Job stats:")[1].splitlines()
    counts = {}
    for line in lines[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_lint_is_clean() -> None:
    out = snakemake("--lint")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("tier", ["smoke", "small", "paper"])
def test_dry_run_of_every_tier(tier: str) -> None:
    out = snakemake("papers/dapo", "--config", f"tier={tier}", "-n", "--forceall")
    assert out.returncode == 0, out.stdout + out.stderr
    counts = job_counts(out.stdout)
    seeds = {"smoke": 3, "small": 2, "paper": 1}[tier]
    assert counts["train"] == counts["evaluate"] == 6 * seeds  # six Table 1 rows × the tier's seeds
    assert counts["benchmark"] == 6 * seeds  # every run scored on AIME 2024 (the targets' benchmark)
    assert counts.get("prepare_base", 0) == (1 if tier == "smoke" else 0)  # only smoke builds its own base model
    assert counts["paper"] == counts["report"] == counts["compare"] == 1


def test_paper_tier_dry_run_names_the_hub_model_and_declares_gpus() -> None:
    out = snakemake("papers/dapo", "--config", "tier=paper", "-n", "--forceall")
    assert out.returncode == 0, out.stderr
    assert "--expect-model Qwen/Qwen2.5-32B" in out.stdout
    assert "gpu=8" in out.stdout and "nodes=16" in out.stdout
    assert "--benchmark aime24" in out.stdout and "gpu=1" in out.stdout  # evaluation: one GPU per job
    assert "cpus_per_task=16" in out.stdout  # the tier's resources.threads


def test_a_multi_gpu_run_of_a_sharding_kind_is_launched_by_accelerate() -> None:
    out = snakemake("papers/dpo", "--config", "tier=paper", "-n", "--forceall", "-p")
    assert out.returncode == 0, out.stderr
    assert "accelerate launch --multi_gpu --num_processes 8 --num_machines 1 -m repro train --paper dpo" in out.stdout
    rloo = wf.train_launcher("rloo", "paper", "rloo", "python")  # online RL, per-group sampling seeds: sharded
    assert rloo.startswith("accelerate launch --multi_gpu --num_processes 8")
    dapo = wf.train_launcher("dapo", "paper", "dapo", "python")  # 16 nodes × 8 GPUs: srun, one launcher per node
    assert dapo.startswith("srun --nodes 16") and "--num_processes 128" in dapo
    papo = wf.train_launcher("papo", "paper", "papo", "python")  # 2 GPUs, one RNG stream per batch: one process
    tis = wf.train_launcher("tis", "paper", "tis", "python")  # vLLM rollouts keep whole weights: one process
    assert papo == tis == "python"


def test_a_multi_node_run_is_launched_once_per_node_through_srun(tmp_path: Path) -> None:
    import shutil

    papers = tmp_path / "papers"
    shutil.copytree(ROOT / "papers" / "dpo", papers / "dpo")
    paper_yaml = papers / "dpo" / "configs" / "paper.yaml"
    paper_yaml.write_text(paper_yaml.read_text(encoding="utf-8").replace("  nodes: 1", "  nodes: 2"), encoding="utf-8")
    launcher = wf.train_launcher("dpo", "paper", "dpo", "python", papers_dir=papers)
    assert launcher.startswith("srun --nodes 2 --ntasks-per-node 1 bash -c 'accelerate launch --multi_gpu")
    assert "--num_machines 2 --num_processes 16 --machine_rank $SLURM_NODEID" in launcher  # 8 GPUs × 2 nodes
    assert wf.train_launcher("dpo", "smoke", "dpo", "python", papers_dir=papers) == "python"  # no GPUs: one process


def test_the_slurm_profile_submits_with_the_tiers_resources() -> None:
    import importlib.util

    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text(encoding="utf-8"))
    assert profile["executor"] == "slurm" and profile["retries"] >= 1  # a lost job is resubmitted and resumes
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
    out = snakemake("papers/dapo", "--profile", "profiles/slurm", "--config", "tier=paper", "-n", "--forceall")
    assert out.returncode == 0, out.stderr
    train = [block for block in out.stdout.split("rule ") if block.startswith("train:")]
    assert len(train) == 6 and all("gpu=8" in b and "nodes=16" in b and "runtime=20160" in b for b in train)


def test_every_target_benchmark_runs_with_the_papers_protocol_at_its_tier() -> None:
    """Contract over every paper folder: the DAG scores each target's variant on the target's benchmark,
    and at the target's tier the configured protocol equals what the paper states."""
    from repro.config import load_paper_config
    from repro.eval.benchmark import get_benchmark
    from repro.report.compare import protocol_deviations
    from repro.report.targets import load_paper_meta, load_targets

    for paper in wf.paper_ids():
        variants = list(load_paper_meta(ROOT / "papers" / paper).variants)
        for target in load_targets(ROOT / "papers" / paper / "targets.yaml", variants).targets:
            for tier in ("smoke", "small", "paper"):
                assert target.benchmark in wf.benchmarks(paper, tier, target.variant), (paper, tier, target.id)
            cfg = load_paper_config(ROOT / "papers" / paper, target.tier, target.variant)
            protocol = get_benchmark(target.benchmark).resolve(cfg.eval.benchmarks.get(target.benchmark, {}))
            stated = target.protocol.as_dict()
            ours = {k: protocol.as_dict()[k] for k in stated if k in protocol.as_dict()}
            # a grader we cannot run (e.g. DAPO's verl string match) is recorded as the paper's and flagged
            if ours.get("grader") != stated.get("grader"):
                flagged = protocol_deviations(stated, ours)
                assert any(d.startswith("grader: ours ") for d in flagged), (paper, target.id, flagged)
                ours.pop("grader", None)
            assert ours == {k: stated[k] for k in ours}, (paper, target.id)
            assert {"metric", "k", "temperature", "max_tokens"} <= set(ours)


def test_every_paper_resolves_at_every_tier_and_smoke_benchmarks_read_local_data() -> None:
    """Contract over every paper folder: each variant resolves at each tier (fix-it errors before any job
    starts), and a smoke-tier run that is scored on a benchmark reads it from a local copy (no hub on CPU
    machines or in CI)."""
    from repro.config import load_paper_config
    from repro.report.targets import load_paper_meta, load_targets

    for paper in wf.paper_ids():
        meta = load_paper_meta(ROOT / "papers" / paper)
        load_targets(ROOT / "papers" / paper / "targets.yaml", list(meta.variants))
        for tier in ("smoke", "small", "paper"):
            for variant in meta.variants:
                cfg = load_paper_config(ROOT / "papers" / paper, tier, variant)
                if tier == "smoke" and wf.benchmarks(paper, tier, variant):
                    assert cfg.eval.data_dir, (paper, variant, "smoke benchmarks need eval.data_dir")


def test_smoke_benchmark_protocols_fit_the_smoke_models_context() -> None:
    """A paper-tier protocol inherited by a smoke overlay (e.g. 32,768 tokens) must be scaled down there:
    the prepared base models have a 256-token context, and lm-eval refuses longer generations."""
    import yaml

    from repro.config import load_paper_config
    from repro.eval.benchmark import get_benchmark
    from repro.report.targets import load_paper_meta
    from repro.runs import benchmark_overrides

    for paper in wf.paper_ids():
        for variant in load_paper_meta(ROOT / "papers" / paper).variants:
            cfg = load_paper_config(ROOT / "papers" / paper, "smoke", variant)
            base = cfg.model.name_or_path.removeprefix("prepared:")
            spec = yaml.safe_load((ROOT / "configs" / "base" / f"{base}.yaml").read_text(encoding="utf-8"))
            context = spec["model"]["max_position_embeddings"]
            for name in wf.benchmarks(paper, "smoke", variant):
                protocol = get_benchmark(name).resolve(benchmark_overrides(cfg, name, "smoke"))
                assert protocol.max_tokens < context, (paper, variant, name, protocol.max_tokens)


def test_every_paper_folder_carries_its_empty_snakemake_timestamp() -> None:
    """Snakemake touches papers/<id>/.snakemake_timestamp (the paper rule's directory output); committed empty,
    it keeps the working tree clean after a run, so run provenance does not record a dirty tree."""
    for paper in wf.paper_ids():
        stamp = ROOT / "papers" / paper / ".snakemake_timestamp"
        assert stamp.is_file() and stamp.stat().st_size == 0, paper


def test_every_preference_paper_trains_on_prepared_pairs_the_dag_builds_at_smoke_tier() -> None:
    """Contract over the preference folders: the smoke tier reads synthetic pairs that a `kind: preference_data`
    base builds from a prepared policy (so the DAG prepares both, in order), names a gold reward for the
    frontier, and needs no judge; the paper tier names a hub or local dataset."""
    import yaml

    from repro.config import load_paper_config
    from repro.preference_config import PreferenceRunConfig
    from repro.report.targets import load_paper_meta

    checked = 0
    for paper in wf.paper_ids():
        for variant in load_paper_meta(ROOT / "papers" / paper).variants:
            cfg = load_paper_config(ROOT / "papers" / paper, "smoke", variant)
            if not isinstance(cfg, PreferenceRunConfig):
                continue
            checked += 1
            data = cfg.data.pairs.removeprefix("prepared:")
            assert cfg.data.pairs.startswith("prepared:"), (paper, variant)
            spec = yaml.safe_load((ROOT / "configs" / "base" / f"{data}.yaml").read_text(encoding="utf-8"))
            assert spec["kind"] == "preference_data" and cfg.eval.gold_reward, (paper, variant)
            policy = f"results/base/{spec['policy']}/prepare.json"
            assert policy in wf.base_inputs(data, ROOT / "configs" / "base"), (paper, variant)
            assert f"results/base/{data}/prepare.json" in wf.run_inputs(paper, "smoke", variant, ROOT / "papers")
            assert cfg.eval.judge is None, (paper, variant, "no API or hub judge at smoke tier")
            paper_cfg = load_paper_config(ROOT / "papers" / paper, "paper", variant)
            assert not paper_cfg.data.pairs.startswith("prepared:"), (paper, variant, "the paper tier uses real data")
    assert checked, "no preference paper folder found"


def test_every_distillation_paper_distils_from_a_larger_prepared_teacher_at_smoke_tier() -> None:
    """Contract over the distillation folders: the smoke tier's teacher is a `prepared:` tiny model the DAG builds
    before the run, with the student's tokenizer (both text bases use the one char vocabulary), larger and trained
    longer on the student's task, in an accuracy band above the student's; the paper tier names hub models."""
    import yaml

    from repro.config import load_paper_config
    from repro.distillation_config import DistillationRunConfig
    from repro.report.targets import load_paper_meta

    def spec(name: str) -> dict:
        return yaml.safe_load((ROOT / "configs" / "base" / f"{name}.yaml").read_text(encoding="utf-8"))

    def params(m: dict) -> int:  # per layer: attention 4h², MLP 3·h·ffn
        return m["num_hidden_layers"] * (4 * m["hidden_size"] ** 2 + 3 * m["hidden_size"] * m["intermediate_size"])

    checked = 0
    for paper in wf.paper_ids():
        for variant in load_paper_meta(ROOT / "papers" / paper).variants:
            cfg = load_paper_config(ROOT / "papers" / paper, "smoke", variant)
            if not isinstance(cfg, DistillationRunConfig):
                continue
            checked += 1
            teacher = cfg.train.teacher_model_name_or_path
            assert teacher.startswith("prepared:") and cfg.model.name_or_path.startswith("prepared:"), (paper, variant)
            student_spec, teacher_spec = spec(cfg.model.name_or_path[9:]), spec(teacher[9:])
            assert f"results/base/{teacher[9:]}/prepare.json" in wf.run_inputs(paper, "smoke", variant, ROOT / "papers")
            assert "vision" not in student_spec and "vision" not in teacher_spec and "kind" not in teacher_spec
            assert teacher_spec["task"] == student_spec["task"] == cfg.synthetic_task, (paper, variant)
            assert params(teacher_spec["model"]) > params(student_spec["model"]), (paper, variant)
            grown_from = teacher_spec.get("init_from")  # a teacher grown from a prepared base continues its SFT
            teacher_steps = teacher_spec["sft"]["steps"] + (spec(grown_from)["sft"]["steps"] if grown_from else 0)
            assert teacher_steps > student_spec["sft"]["steps"], (paper, variant)
            if grown_from:
                assert f"results/base/{grown_from}/prepare.json" in wf.base_inputs(
                    teacher[9:], ROOT / "configs" / "base"
                )
            assert teacher_spec["accuracy_band"][0] > student_spec["accuracy_band"][1], (paper, variant)
            paper_cfg = load_paper_config(ROOT / "papers" / paper, "paper", variant)
            for name in (paper_cfg.model.name_or_path, paper_cfg.train.teacher_model_name_or_path):
                assert not name.startswith("prepared:"), (paper, variant, "the paper tier names hub models")
    assert checked, "no distillation paper folder found"


def test_every_reward_model_paper_trains_on_prepared_pairs_at_smoke_and_real_pairs_at_paper_tier() -> None:
    """Contract over the reward-model folders (`trainer: reward_model`): the smoke tier trains a prepared base on
    synthetic pairs that a `kind: preference_data` base builds from a prepared policy (the DAG prepares all three,
    in order); the paper tier names real pairs, with a rating column wherever a variant maps ratings to margins."""
    import yaml

    from repro.config import load_paper_config
    from repro.report.targets import load_paper_meta
    from repro.reward_model_config import RewardRunConfig

    papers = set()
    for paper in wf.paper_ids():
        for variant in load_paper_meta(ROOT / "papers" / paper).variants:
            cfg = load_paper_config(ROOT / "papers" / paper, "smoke", variant)
            if not isinstance(cfg, RewardRunConfig):
                continue
            papers.add(paper)
            data = cfg.data.pairs.removeprefix("prepared:")
            assert cfg.data.pairs.startswith("prepared:") and cfg.model.name_or_path.startswith("prepared:"), paper
            spec = yaml.safe_load((ROOT / "configs" / "base" / f"{data}.yaml").read_text(encoding="utf-8"))
            assert spec["kind"] == "preference_data", (paper, variant)
            assert f"results/base/{spec['policy']}/prepare.json" in wf.base_inputs(data, ROOT / "configs" / "base")
            inputs = wf.run_inputs(paper, "smoke", variant, ROOT / "papers")
            assert f"results/base/{data}/prepare.json" in inputs, (paper, variant)
            paper_cfg = load_paper_config(ROOT / "papers" / paper, "paper", variant)
            assert not paper_cfg.data.pairs.startswith("prepared:"), (paper, variant, "the paper tier uses real data")
            if paper_cfg.data.margin.startswith("llama2"):
                assert paper_cfg.data.rating_field, (paper, variant, "rated margins need a rating column")
    assert {"centered_rm", "llama2_margin"} <= papers


def test_every_sft_paper_trains_on_a_synthetic_task_from_a_prepared_base_at_smoke_tier() -> None:
    """Contract over the SFT folders (`trainer: sft`): the smoke tier fine-tunes a prepared base the DAG builds on a
    synthetic task whose held-out sets (evaluation and shifted) training never draws, scores every eval step of a
    BEMA run on an update step, and the paper tier names a real dataset and a hub model."""
    from repro.config import load_paper_config
    from repro.data.synthetic import HELD_OUT_SEED
    from repro.report.targets import load_paper_meta
    from repro.sft_config import SFTRunConfig

    papers = set()
    for paper in wf.paper_ids():
        for variant in load_paper_meta(ROOT / "papers" / paper).variants:
            cfg = load_paper_config(ROOT / "papers" / paper, "smoke", variant)
            if not isinstance(cfg, SFTRunConfig):
                continue
            papers.add(paper)
            base = cfg.model.name_or_path.removeprefix("prepared:")
            assert cfg.model.name_or_path.startswith("prepared:") and cfg.synthetic_task, (paper, variant)
            assert f"results/base/{base}/prepare.json" in wf.run_inputs(paper, "smoke", variant, ROOT / "papers")
            assert cfg.eval.seed == HELD_OUT_SEED and cfg.eval_task, (paper, variant)
            if cfg.bema is not None:
                assert cfg.train.eval_every % cfg.bema.update_freq == 0, (paper, variant, "stale iterates at eval")
            paper_cfg = load_paper_config(ROOT / "papers" / paper, "paper", variant)
            assert paper_cfg.synthetic_task is None and not paper_cfg.model.name_or_path.startswith("prepared:")
    assert {"dft", "bema"} <= papers


def test_ci_end_to_end_subset_covers_every_trainer_kind_and_prepared_base():
    """CI runs the DAGs of a subset of folders (tests/test_e2e_family.py CI_PAPERS); a new kind or base must join it."""
    from test_e2e_family import CI_PAPERS  # tests/ is on sys.path under pytest

    def kinds_and_bases(papers: set[str]) -> tuple[set[str], set[str]]:
        kinds, bases = set(), set()
        for paper in papers:
            for variant in wf.variants(paper):
                kinds.add(merged_paper_config(Path("papers") / paper, "smoke", variant).get("trainer", "online_rl"))
                bases.update(wf.prepared_bases(paper, "smoke", variant))
        return kinds, bases

    assert CI_PAPERS <= set(wf.paper_ids())
    assert kinds_and_bases(CI_PAPERS | {"dapo"}) == kinds_and_bases(set(wf.paper_ids()))
