# File plumbing only: every rule calls `python -m repro <verb>`; the logic lives in repro/.
#
#   snakemake papers/dapo                          reproduce one paper (tier from config; default smoke)
#   snakemake papers/dapo --config tier=paper -n   the paper-scale DAG, without running it
#   snakemake papers/dapo --config tier=small model=<folder or hub id> [data_dir=<folder>] [set="k=v;k=v"]
#                                                  the same on your own model and data (repro/overrides.py): runs go
#                                                  to results/<paper>/<tier>@<name>-<hash>/, the report to
#                                                  reports/<paper>/<tier>@<name>-<hash>/report.md
#
# The target `papers/<paper>` is the paper folder itself. Its rule is forced on every invocation by
# the default profile (profiles/default), declares the folder as update() output so Snakemake never
# deletes it, and only prints where the report is: nothing under papers/ is ever written.

import shlex

from repro import nightly
from repro import workflow as wf
from repro.overrides import Overrides, tier_of
from repro.prepare import PREPARE_THREADS

TIER = config.get("tier", "smoke")
OVERRIDES = Overrides.parse(config.get("model"), config.get("data_dir"), config.get("set"))
LABEL = OVERRIDES.label(TIER)  # the results folder of this invocation's runs: the tier, or <tier>@<name>-<hash>
SEEDS_OVERRIDE = config.get("seeds")  # --config seeds=N runs the first N seeds of each variant
MAX_STEPS = config.get("max_steps")  # --config max_steps=N shortens every run (CI)
PYTHON = config.get("python", "python")
# --config bases=N: every run again on warm starts 1..N-1 of its prepared bases (repro/warm_starts.py), each in its
# own results folder (<tier>@base<k>); the report marks a claim whose verdict changes with the warm start.
BASES = int(config.get("bases", 1))
if BASES < 1:
    raise ValueError(f"--config bases={BASES}: give 1 (the bases themselves) or more")
WARM_STARTS = {OVERRIDES.with_warm_start(k).label(TIER): OVERRIDES.with_warm_start(k) for k in range(BASES)}


wildcard_constraints:
    paper=r"[a-z][a-z0-9_]*",
    variant=r"[a-z][a-z0-9_]*",
    seed=r"\d+",
    tier=r"(smoke|small|paper|nightly)(@[A-Za-z0-9._-]+)?",  # a results folder: the tier, or tier@<overrides>
    label=r"(smoke|small|paper)@[A-Za-z0-9._-]+",
    base=r"[a-z][a-z0-9_]*",
    benchmark=r"[a-z][a-z0-9_]*",


NIGHTLY = nightly.load_settings()


def steps_flag(tier):
    """--max-steps for a train job: the nightly run's own length, else --config max_steps=N when given."""
    if tier == "nightly":
        return f"--max-steps {NIGHTLY.max_steps}"
    return f"--max-steps {MAX_STEPS}" if MAX_STEPS else ""


NIGHTLY_PAPERS = [p for p in str(config.get("papers", "")).split(",") if p] or wf.paper_ids()  # --config papers=a,b


def nightly_runs():
    return [
        f"results/{paper}/nightly/{wf.default_variant(paper)}/seed{seed}/eval.json"
        for paper in NIGHTLY_PAPERS
        for seed in NIGHTLY.seeds
    ]


def overrides_of(label):
    """The overrides that make a results folder: one of this invocation's warm starts, else its overrides."""
    return WARM_STARTS.get(label, OVERRIDES)


def eval_files(wildcards):
    return wf.eval_files(wildcards.paper, wildcards.tier, SEEDS_OVERRIDE, overrides=overrides_of(wildcards.tier))  # each variant's seeds


def bench_files(wildcards):
    return wf.benchmark_files(wildcards.paper, wildcards.tier, SEEDS_OVERRIDE, overrides=overrides_of(wildcards.tier))


def run_resource(name):
    return lambda wildcards: wf.resources(
        wildcards.paper, wildcards.tier, wildcards.variant, overrides=overrides_of(wildcards.tier)
    )[name]


def run_threads(wildcards):
    """A run's CPU threads (its tier's resources.threads; Snakemake scales a claim above --cores down to it); the job
    gets them as $REPRO_THREADS, which caps torch's threads (repro/runs.py use_threads)."""
    return wf.resources(wildcards.paper, wildcards.tier, wildcards.variant, overrides=overrides_of(wildcards.tier))[
        "cpus_per_task"
    ]


def report_file(paper):
    """The report of this invocation's runs: reports/<paper>/report.md, or reports/<paper>/<label>/ with overrides."""
    return f"reports/{paper}/report.md" if LABEL == TIER else f"reports/{paper}/{LABEL}/report.md"


# Before the first job runs (not on a dry run or a no-op rerun): `repro check` of every planned (paper, results
# folder), with the overrides: every variant validates, the model and data files are where the config says, the
# tokenizer has the chat template the prompts need, the stop tokens resolve. A bad path fails here, in seconds,
# not after a base model is built or a checkpoint loaded.
onstart:
    wf.preflight(workflow.dag.needrun_jobs(), overrides_of, PYTHON)


# The whole catalog: every paper's report, then the catalog index (reports/index.md, index.html). Each
# `snakemake papers/<id>` refreshes the index too (rule paper), from whatever comparisons exist, unless nothing it
# reads changed since it was written (`--if-changed`: a no-op rerun stays a few seconds); `python -m repro index`
# always rebuilds it. The index is not a declared output: a rule owning it would let Snakemake skip
# missing reports whenever an older index exists.
rule all:
    input:
        expand("reports/{paper}/report.md", paper=wf.paper_ids()),
    log:
        "logs/index.log",
    params:
        python=PYTHON,
    localrule: True
    conda:
        "envs/repro.yaml"
    shell:
        "{params.python} -m repro index --if-changed --out reports/index.md | tee {log}"


rule paper:
    input:
        lambda wildcards: report_file(wildcards.paper),
    output:
        update(directory("papers/{paper}")),
    log:
        "logs/{paper}/paper.log",
    params:
        python=PYTHON,
        tier=TIER,
        html=lambda wildcards: report_file(wildcards.paper).replace(".md", ".html"),
    localrule: True
    conda:
        "envs/repro.yaml"
    shell:
        "{params.python} -m repro index --if-changed --out reports/index.md > {log} 2>&1 &&"
        " echo 'report ({params.tier} tier): {input} (HTML: {params.html});"
        " catalog: reports/index.html' | tee -a {log}"


rule prepare_base:
    input:
        lambda wildcards: wf.base_inputs(wildcards.base),
    output:
        "results/base/{base}/prepare.json",
    log:
        "logs/base/{base}.log",
    params:
        python=PYTHON,
    threads: PREPARE_THREADS
    conda:
        "envs/repro.yaml"
    shell:
        "{params.python} -m repro prepare --config configs/base/{wildcards.base}.yaml --out results/base/{wildcards.base} > {log} 2>&1"


rule train:
    input:
        lambda wildcards: wf.run_inputs(
            wildcards.paper, wildcards.tier, wildcards.variant, overrides=overrides_of(wildcards.tier)
        ),
    output:
        summary="results/{paper}/{tier}/{variant}/seed{seed}/summary.json",
        metrics="results/{paper}/{tier}/{variant}/seed{seed}/metrics.jsonl",
        resolved="results/{paper}/{tier}/{variant}/seed{seed}/config.resolved.yaml",
    log:
        "logs/{paper}/{tier}/{variant}/seed{seed}/train.log",
    params:
        # one process, or `accelerate launch` over the tier's GPUs for a kind that shards its batch
        python=lambda wildcards: wf.train_launcher(
            wildcards.paper, wildcards.tier, wildcards.variant, PYTHON, overrides=overrides_of(wildcards.tier)
        ),
        max_steps=lambda wildcards: steps_flag(wildcards.tier),
        model=lambda wildcards: shlex.quote(
            wf.model_name(wildcards.paper, wildcards.tier, wildcards.variant, overrides=overrides_of(wildcards.tier))
        ),
        tier=lambda wildcards: tier_of(wildcards.tier),
        overrides=lambda wildcards: shlex.join(overrides_of(wildcards.tier).cli_args()),  # "" for a plain tier
    threads: run_threads
    resources:
        gpu=run_resource("gpus"),  # GPUs per node (the SLURM executor plugin reads `gpu`)
        nodes=run_resource("nodes"),
        mem_mb=run_resource("mem_mb"),
        runtime=run_resource("runtime"),
        cpus_per_task=run_resource("cpus_per_task"),
    conda:
        "envs/repro.yaml"
    shell:
        "REPRO_THREADS={threads} {params.python} -m repro train --paper {wildcards.paper} --tier {params.tier}"
        " --variant {wildcards.variant} --seed {wildcards.seed}"
        " --out results/{wildcards.paper}/{wildcards.tier}/{wildcards.variant}/seed{wildcards.seed}"
        " --expect-model {params.model} {params.max_steps} {params.overrides} > {log} 2>&1"


rule evaluate:
    input:
        "results/{paper}/{tier}/{variant}/seed{seed}/summary.json",
    output:
        "results/{paper}/{tier}/{variant}/seed{seed}/eval.json",
    log:
        "logs/{paper}/{tier}/{variant}/seed{seed}/eval.log",
    params:
        python=PYTHON,
    threads: run_threads
    conda:
        "envs/repro.yaml"
    shell:
        "REPRO_THREADS={threads} {params.python} -m repro eval"
        " --run results/{wildcards.paper}/{wildcards.tier}/{wildcards.variant}/seed{wildcards.seed}"
        " --out {output} > {log} 2>&1"


rule benchmark:
    input:
        "results/{paper}/{tier}/{variant}/seed{seed}/summary.json",
        "repro/eval/benchmarks/{benchmark}.yaml",
    output:
        "results/{paper}/{tier}/{variant}/seed{seed}/bench/{benchmark}.json",
    log:
        "logs/{paper}/{tier}/{variant}/seed{seed}/bench_{benchmark}.log",
    params:
        python=PYTHON,
    threads: run_threads
    resources:
        gpu=lambda wildcards: min(
            1, wf.resources(wildcards.paper, wildcards.tier, wildcards.variant, overrides=overrides_of(wildcards.tier))[
                "gpus"
            ]
        ),
    conda:
        "envs/repro.yaml"
    shell:
        "REPRO_THREADS={threads} {params.python} -m repro bench"
        " --run results/{wildcards.paper}/{wildcards.tier}/{wildcards.variant}/seed{wildcards.seed}"
        " --benchmark {wildcards.benchmark} --out {output} > {log} 2>&1"


rule compare:
    input:
        eval_files,
        bench_files,
        "papers/{paper}/paper.yaml",
        "papers/{paper}/targets.yaml",
    output:
        "results/{paper}/{tier}/compare.json",
    log:
        "logs/{paper}/{tier}/compare.log",
    params:
        python=PYTHON,
    conda:
        "envs/repro.yaml"
    shell:
        "{params.python} -m repro compare --paper {wildcards.paper} --tier {wildcards.tier} --out {output} > {log} 2>&1"


def replica_compares(paper, label):
    """With --config bases=N, the report of this invocation's runs also reads the other warm starts' comparisons."""
    return [f"results/{paper}/{other}/compare.json" for other in list(WARM_STARTS)[1:]] if label == LABEL else []


rule report:
    input:
        compare=f"results/{{paper}}/{TIER}/compare.json",  # the plain tier; runs with overrides: report_labelled
        replicas=lambda wildcards: replica_compares(wildcards.paper, TIER),
    output:
        md="reports/{paper}/report.md",
        html="reports/{paper}/report.html",
    log:
        "logs/{paper}/report.log",
    params:
        python=PYTHON,
        tier=TIER,
        replicas=lambda wildcards, input: f"--replicas {' '.join(input.replicas)}" if input.replicas else "",
    conda:
        "envs/repro.yaml"
    shell:
        "{params.python} -m repro report --paper {wildcards.paper} --tier {params.tier}"
        " --compare {input.compare} {params.replicas} --out {output.md} > {log} 2>&1"


# The report of runs made with overrides (model=, data_dir=, set=): beside the plain tier's, never over it.
use rule report as report_labelled with:
    input:
        compare="results/{paper}/{label}/compare.json",
        replicas=lambda wildcards: replica_compares(wildcards.paper, wildcards.label),
    output:
        md="reports/{paper}/{label}/report.md",
        html="reports/{paper}/{label}/report.html",
    log:
        "logs/{paper}/{label}/report.log",
    params:
        python=PYTHON,
        tier=lambda wildcards: wildcards.label,
        replicas=lambda wildcards, input: f"--replicas {' '.join(input.replicas)}" if input.replicas else "",


# `snakemake reports/<paper>/ablation.md`: the paper's ablation table beside ours, with what each row adds.
rule ablation:
    input:
        compare=lambda wildcards: wf.ablation_input(wildcards.paper, TIER),
    output:
        md="reports/{paper}/ablation.md",
        html="reports/{paper}/ablation.html",
    log:
        "logs/{paper}/ablation.log",
    params:
        python=PYTHON,
        tier=TIER,
    conda:
        "envs/repro.yaml"
    shell:
        "{params.python} -m repro ablation --paper {wildcards.paper} --tier {params.tier}"
        " --compare {input.compare} --out {output.md} > {log} 2>&1"



# `snakemake nightly`: every paper's default variant at the smoke config, shortened (configs/nightly.yaml), compared
# with results/baselines/; exits non-zero on a regression. `--config update_baselines=true` rewrites the baselines.
rule nightly:
    input:
        nightly_runs(),
    log:
        "logs/nightly.log",
    params:
        python=PYTHON,
        update_flag="--update-baselines" if str(config.get("update_baselines", "")).lower() in ("true", "1", "yes") else "",
        papers=",".join(NIGHTLY_PAPERS),
    localrule: True
    conda:
        "envs/repro.yaml"
    shell:
        "{params.python} -m repro nightly {params.update_flag} --papers {params.papers} --out reports/nightly.md"
        " > {log} 2>&1"
        " && cat {log} || {{ cat {log}; exit 1; }}"
