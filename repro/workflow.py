"""Cheap helpers the Snakefile calls while it builds the DAG (no torch import, no validation).

They only read YAML: which variants a paper runs at a tier and each variant's seeds, which files a run depends on,
and what resources a training job declares. Validation happens in `python -m repro check` (which the DAG runs
when it starts) and `python -m repro train`.

`tier` arguments are results-folder labels: a tier name, or `<tier>@<name>-<hash>` for runs with overrides
(repro/overrides.py); such a label must be the one the invocation's overrides make.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro.config import layer_files, merged_paper_config, paper_layer_paths
from repro.io import read_yaml
from repro.overrides import Overrides, tier_of
from repro.trainer_kinds import ONLINE_RL, samples_during_training, shards_batch

PAPERS_DIR = Path("papers")
PREPARED = "prepared:"


def merged(
    paper: str, label: str, variant: str, overrides: Overrides | None = None, papers_dir: Path = PAPERS_DIR
) -> dict[str, Any]:
    """The merged (unvalidated) config of a run in results folder `label` under the invocation's overrides."""
    overrides = overrides or Overrides()
    tier = tier_of(label)
    if label != overrides.label(tier):
        from repro.schema import ConfigError

        raise ConfigError(
            f"results/{paper}/{label} holds runs made with other overrides than this invocation's "
            f"({overrides.describe()}, folder {overrides.label(tier)}); rerun with the model=, data_dir= and set= "
            "that made it, or ask for the folder of these overrides"
        )
    return merged_paper_config(papers_dir / paper, tier, variant, overrides)


def paper_ids(papers_dir: Path = PAPERS_DIR) -> list[str]:
    return sorted(p.parent.name for p in papers_dir.glob("*/paper.yaml"))


def paper_meta(paper: str, papers_dir: Path = PAPERS_DIR) -> dict[str, Any]:
    if not (papers_dir / paper / "paper.yaml").is_file():
        from repro.registry import unknown_name_message
        from repro.schema import ConfigError

        raise ConfigError(unknown_name_message("paper", paper, paper_ids(papers_dir)))
    return read_yaml(papers_dir / paper / "paper.yaml")


def ablation_papers(papers_dir: Path = PAPERS_DIR) -> list[str]:
    return [p for p in paper_ids(papers_dir) if paper_meta(p, papers_dir).get("ablation")]


def ablation_input(paper: str, tier: str, papers_dir: Path = PAPERS_DIR) -> str:
    """The comparison an ablation report reads; a paper without an ablation table is refused before any run."""
    if not paper_meta(paper, papers_dir).get("ablation"):
        from repro.schema import ConfigError

        raise ConfigError(
            f"papers/{paper}/paper.yaml has no `ablation:` table, so there is no ablation report to build; papers "
            f"with one: {', '.join(ablation_papers(papers_dir)) or 'none'} (add rows as papers/dapo/paper.yaml does)"
        )
    return f"results/{paper}/{tier}/compare.json"


def default_variant(paper: str, papers_dir: Path = PAPERS_DIR) -> str:
    return str(paper_meta(paper, papers_dir)["default_variant"])


def variants(paper: str, papers_dir: Path = PAPERS_DIR) -> list[str]:
    return list(paper_meta(paper, papers_dir)["variants"])


def seeds(
    paper: str,
    tier: str,
    override: int | None = None,
    papers_dir: Path = PAPERS_DIR,
    overrides: Overrides | None = None,
    *,
    variant: str,
) -> list[int]:
    """The seeds of one variant: `seeds:` of its merged config (the tier's, unless the variant sets its own);
    `override` (from --config seeds=N) takes the first N of them."""
    chosen = list(merged(paper, tier, variant, overrides, papers_dir).get("seeds", [0]))
    return chosen[: int(override)] if override else chosen


def runs(
    paper: str,
    tier: str,
    override: int | None = None,
    papers_dir: Path = PAPERS_DIR,
    overrides: Overrides | None = None,
) -> list[tuple[str, int]]:
    """Every (variant, seed) run of a paper at a tier, each variant with its own seeds (`seeds`)."""
    return [
        (variant, seed)
        for variant in variants(paper, papers_dir)
        for seed in seeds(paper, tier, override, papers_dir, overrides, variant=variant)
    ]


def eval_files(
    paper: str,
    tier: str,
    seeds_override: int | None = None,
    papers_dir: Path = PAPERS_DIR,
    overrides: Overrides | None = None,
) -> list[str]:
    """Every evaluation file of a paper at a tier (all variants, each over its own seeds)."""
    return [
        f"results/{paper}/{tier}/{variant}/seed{seed}/eval.json"
        for variant, seed in runs(paper, tier, seeds_override, papers_dir, overrides)
    ]


def run_inputs(
    paper: str, tier: str, variant: str, papers_dir: Path = PAPERS_DIR, overrides: Overrides | None = None
) -> list[str]:
    """Every config file a run reads (tier chain + variant chain) and the prepared base model if any."""
    tier_file, variant_file = paper_layer_paths(papers_dir / paper, tier_of(tier), variant)
    files = [str(p) for p in layer_files(tier_file) + layer_files(variant_file)]
    bases = prepared_bases(paper, tier, variant, papers_dir, overrides)
    files += [f"results/base/{base}/prepare.json" for base in bases]
    return list(dict.fromkeys(files))


def prepared_bases(
    paper: str, tier: str, variant: str, papers_dir: Path = PAPERS_DIR, overrides: Overrides | None = None
) -> list[str]:
    """Prepared bases a run reads: its model's, a preference run's synthetic pairs (`data.pairs`), and a
    distillation run's teacher (`train.teacher_model_name_or_path`)."""
    config = merged(paper, tier, variant, overrides, papers_dir)
    names = [str(config.get("model", {}).get("name_or_path", "")), str(config.get("data", {}).get("pairs", ""))]
    names.append(str((config.get("train") or {}).get("teacher_model_name_or_path", "")))
    return [n[len(PREPARED) :] for n in names if n.startswith(PREPARED)]


def base_inputs(base: str, base_dir: Path = Path("configs/base")) -> list[str]:
    """What `prepare` of a base reads: its config, and for preference samples the policy that samples them. Warm
    start k of a base (`<name>_s<k>`, repro/warm_starts.py) reads `<name>`'s config and warm start k of its source."""
    from repro.warm_starts import replica_name, split_replica

    stem, k = split_replica(base, base_dir)
    path = base_dir / f"{stem}.yaml"
    raw = read_yaml(path) if path.is_file() else {}
    files = [str(path)]
    if isinstance(raw, dict) and raw.get("kind") == "preference_data" and raw.get("policy"):
        files.append(f"results/base/{replica_name(raw['policy'], k)}/prepare.json")
    if isinstance(raw, dict) and raw.get("init_from"):  # a base grown from another prepared base
        files.append(f"results/base/{replica_name(raw['init_from'], k)}/prepare.json")
    return files


def resources(
    paper: str, tier: str, variant: str, papers_dir: Path = PAPERS_DIR, overrides: Overrides | None = None
) -> dict[str, int]:
    return _resources_of(merged(paper, tier, variant, overrides, papers_dir))


def _resources_of(merged: dict[str, Any]) -> dict[str, int]:
    """A merged config's `resources:` with the defaults filled in, under the names the Snakefile's rules use."""
    res = merged.get("resources", {}) or {}
    return {
        "gpus": int(res.get("gpus", 0)),
        "nodes": int(res.get("nodes", 1)),
        "mem_mb": int(res.get("mem_mb", 4000)),
        "runtime": int(res.get("runtime_min", 30)),
        "cpus_per_task": int(res.get("threads", 1)),
    }


def train_launcher(
    paper: str, tier: str, variant: str, python: str, papers_dir: Path = PAPERS_DIR, overrides: Overrides | None = None
) -> str:
    """What runs `-m repro train` for a run: `python` (one process), or accelerate's launcher over the tier's GPUs
    when the run has several and its trainer kind shards its batch (repro/distributed.py; a sampling kind only with
    train.rollout_seeding: per_group). Several nodes: `srun` starts one launcher per node of the SLURM allocation,
    each told its node rank and the head node's address (`multi_node_launcher`)."""
    config = merged(paper, tier, variant, overrides, papers_dir)
    res = _resources_of(config)
    kind = config.get("trainer", ONLINE_RL)
    # Sampling kinds shard only where each prompt (group) is sampled from its own seed (train.rollout_seeding).
    per_group = not samples_during_training(kind) or (config.get("train") or {}).get("rollout_seeding") == "per_group"
    if not (shards_batch(kind) and per_group) or res["gpus"] * res["nodes"] <= 1:
        return python
    if res["nodes"] == 1:
        return f"accelerate launch --multi_gpu --num_processes {res['gpus']} --num_machines 1"
    return multi_node_launcher(res["nodes"], res["gpus"])


def multi_node_launcher(nodes: int, gpus_per_node: int, port: int = 29500) -> str:
    """A command prefix that runs what follows it (`-m repro train ...`) on every node of a SLURM allocation of
    `nodes` nodes: srun starts one task per node, whose accelerate launcher starts that node's processes and joins
    the others at the first node of the allocation (SLURM_NODEID is the node rank)."""
    head = "$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1)"
    accelerate = (
        f"accelerate launch --multi_gpu --num_machines {nodes} --num_processes {nodes * gpus_per_node} "
        f"--machine_rank $SLURM_NODEID --main_process_ip {head} --main_process_port {port}"
    )
    # bash -c '... "$@"' launch ARGS: the inner shell expands SLURM_NODEID per node and receives ARGS as "$@"
    return f"srun --nodes {nodes} --ntasks-per-node 1 bash -c '{accelerate} \"$@\"' launch"


def model_name(
    paper: str, tier: str, variant: str, papers_dir: Path = PAPERS_DIR, overrides: Overrides | None = None
) -> str:
    return str(merged(paper, tier, variant, overrides, papers_dir).get("model", {}).get("name_or_path", "?"))


def target_benchmarks(paper: str, papers_dir: Path = PAPERS_DIR) -> dict[str, list[str]]:
    """variant -> benchmarks that targets.yaml compares it on (any tier)."""
    path = papers_dir / paper / "targets.yaml"
    raw = read_yaml(path) if path.is_file() else {}
    found: dict[str, list[str]] = {}
    for target in (raw or {}).get("targets") or []:
        found.setdefault(str(target["variant"]), []).append(str(target["benchmark"]))
    return found


def benchmarks(
    paper: str, tier: str, variant: str, papers_dir: Path = PAPERS_DIR, overrides: Overrides | None = None
) -> list[str]:
    """Benchmarks a run is scored on: its tier config's eval.benchmarks, plus those its targets name."""
    configured = merged(paper, tier, variant, overrides, papers_dir).get("eval", {}).get("benchmarks") or {}
    if not isinstance(configured, dict):
        configured = {}
    named = target_benchmarks(paper, papers_dir).get(variant, [])
    return sorted(set(configured) | set(named))


def benchmark_files(
    paper: str,
    tier: str,
    seeds_override: int | None = None,
    papers_dir: Path = PAPERS_DIR,
    overrides: Overrides | None = None,
) -> list[str]:
    """Every benchmark result file of a paper at a tier (all variants, each over its own seeds)."""
    return [
        f"results/{paper}/{tier}/{variant}/seed{seed}/bench/{name}.json"
        for variant, seed in runs(paper, tier, seeds_override, papers_dir, overrides)
        for name in benchmarks(paper, tier, variant, papers_dir, overrides)
    ]


def preflight(jobs: Any, overrides_of: Callable[[str], Overrides], python: str) -> None:
    """Run `repro check` for every (paper, results folder) that a planned train job belongs to, before the first
    job starts (the Snakefile's `onstart`): one process per results folder, with the overrides that make it
    (`overrides_of(label)`). A failure stops the run with the check's message (a bad path then costs seconds, not
    a base-model build)."""
    import shlex
    import subprocess
    import sys

    planned: dict[str, set[str]] = {}
    for job in jobs:
        if job.rule.name == "train":
            planned.setdefault(str(job.wildcards["tier"]), set()).add(str(job.wildcards["paper"]))
    for label, papers in sorted(planned.items()):
        tier = tier_of(label)
        command = [*shlex.split(python), "-m", "repro", "check", "--paper", ",".join(sorted(papers)), "--tier", tier]
        command += overrides_of(label).cli_args() if label != tier else []
        print(f"checking {', '.join(sorted(papers))} at {label} before any job starts: {shlex.join(command)}")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
            raise SystemExit(f"repro check failed for {', '.join(sorted(papers))} at {label}: nothing was run")
