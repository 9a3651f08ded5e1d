"""What the CLI verbs do: train one run, evaluate one run, prepare a base model.

Each verb validates its inputs first (config, paths) and only then loads models.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import importlib
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from repro.config import RunConfig, config_hash, dump, load_paper_config, load_resolved
from repro.io import read_json, write_json, write_text
from repro.overrides import Overrides
from repro.schema import ConfigError
from repro.trackers import reporting
from repro.trainer_kinds import ONLINE_RL, kind_of
from repro.workflow import PREPARED

BASE_ROOT = Path("results/base")
# The overrides (model=, data_dir=, --set) of the run being trained in this process: every kind's driver writes its
# config and summary through `write_resolved` and `finish_run`, which record them.
RUN_OVERRIDES: contextvars.ContextVar[Overrides | None] = contextvars.ContextVar("run_overrides", default=None)


def resolve_model_path(name_or_path: str) -> str:
    """`prepared:<name>` -> results/base/<name>/model (built by `repro prepare`); anything else unchanged."""
    if not name_or_path.startswith(PREPARED):
        return name_or_path
    base = name_or_path[len(PREPARED) :]
    path = BASE_ROOT / base / "model"
    if not (BASE_ROOT / base / "prepare.json").is_file():
        raise ConfigError(
            f"model {name_or_path!r} has not been prepared: {path} is missing. "
            f"Build it with `snakemake results/base/{base}/prepare.json` "
            f"(or `python -m repro prepare --config configs/base/{base}.yaml --out results/base/{base}`)."
        )
    _warn_if_built_with_other_numerics(base)
    return str(path)


def _warn_if_built_with_other_numerics(base: str) -> None:
    """A base built before numerics were pinned (or with the other setting) gives runs that another machine cannot
    reproduce bit for bit: say so, with the fix (repro/numerics.py)."""
    from repro.io import read_json
    from repro.numerics import wanted

    built = read_json(BASE_ROOT / base / "prepare.json").get("numerics_pinned")
    if built is None or built != wanted():
        how = "before numerics were pinned" if built is None else f"with numerics {'pinned' if built else 'native'}"
        print(
            f"warning: results/base/{base} was built {how}, and this run's numerics are "
            f"{'pinned' if wanted() else 'native'}: its numbers will not match another machine's; rebuild it "
            f"(rm -r results/base/{base} && snakemake results/base/{base}/prepare.json)",
            file=sys.stderr,
        )


THREADS_ENV = "REPRO_THREADS"  # the cores the scheduler gave this job (the Snakefile sets it from the rule's threads)


def use_threads(configured: int) -> int:
    """Set torch's intra-op threads: the config's count, capped by the job's cores ($REPRO_THREADS, set by the DAG)
    and the machine's (a GPU box's 8 threads on a 2-core laptop would oversubscribe it); returns the count."""
    import torch

    cap = int(os.environ.get(THREADS_ENV) or 0) or os.cpu_count() or 1
    threads = max(1, min(configured, cap, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    """Seed every RNG; with pinned numerics, torch's deterministic algorithms too (repro/numerics.py)."""
    import numpy as np
    import torch

    from repro.numerics import use_deterministic_torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    use_deterministic_torch()


def train_run(
    paper: str,
    tier: str,
    variant: str,
    seed: int,
    out: Path,
    max_steps: int | None = None,
    expect_model: str | None = None,
    overrides: Overrides | None = None,
) -> dict[str, Any]:
    started = time.time()
    overrides = overrides or Overrides()
    RUN_OVERRIDES.set(overrides)
    cfg = load_paper_config(Path("papers") / paper, tier, variant, overrides)  # validates before anything loads
    if max_steps:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=max_steps))
    if expect_model and expect_model != cfg.model.name_or_path:
        raise ConfigError(
            f"the DAG expected model {expect_model!r} but the config names {cfg.model.name_or_path!r}; rerun snakemake"
        )
    model_path = resolve_model_path(cfg.model.name_or_path)
    from repro.preflight import check_sources

    # the model folder, its tokenizer's templates and stop tokens, the data files: before any weights load
    for note in check_sources(cfg, f"{paper} tier={tier} variant={variant}"):
        print(note)
    from repro.distributed import launched_processes, require_single_process

    require_single_process(getattr(cfg, "trainer", ONLINE_RL))
    if (kind := kind_of(cfg)) is not None:
        return kind.load("train")(cfg, paper, tier, variant, seed, out, model_path)
    trainer_module = importlib.import_module(f"papers.{paper}.trainer")
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(out, cfg)

    from repro.data.prompts import load_prompts
    from repro.distributed import DataParallel
    from repro.models.loading import load_policy
    from repro.models.vision import load_processor
    from repro.rollout.hf import make_backend

    prompts = load_prompts(  # data problems (a missing file, a malformed row) surface before the model loads
        cfg.data.prompts,
        split=cfg.data.split,
        limit=cfg.data.limit,
        problem_field=cfg.data.problem_field,
        answer_field=cfg.data.answer_field,
        seed=seed,
    )
    from repro.trainers.online_rl import check_data_parallel

    images = any(getattr(p, "image", None) is not None for p in prompts[:1])
    check_data_parallel(cfg, launched_processes(), images, strategy=cfg.resources.data_parallel)
    use_threads(cfg.train.num_threads or cfg.resources.threads)
    # several processes under `accelerate launch` (DDP or FSDP, resources.data_parallel); else one
    dp = DataParallel.from_environment(cfg.resources.data_parallel)
    seed_everything(seed)  # the same seed on every rank: each draws the same prompts and shuffles alike
    model, tokenizer = load_policy(model_path, cfg.model.dtype, cfg.model.trust_remote_code)
    processor = load_processor(model_path)  # a vision-language policy's; None for text
    vision = {"processor": processor} if processor is not None else {}
    if cfg.train.cast_lm_head_to_fp32:
        from repro.models.loading import cast_lm_head_to_fp32

        cast_lm_head_to_fp32(model)  # before the reference / rollout copies, which inherit it
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    ref_model = copy.deepcopy(model).eval().requires_grad_(False) if cfg.train.beta != 0.0 else None
    trainer = trainer_module.build_trainer(
        cfg,
        model=model,
        tokenizer=tokenizer,
        prompts=prompts,
        rollout=make_backend(cfg.train.rollout_backend, model, tokenizer, **cfg.train.rollout_options),
        out_dir=out,
        seed=seed,
        ref_model=ref_model,
        dp=dp,
        **vision,
    )
    with reporting(cfg, out, dp.is_main, paper=paper, tier=tier, variant=variant, seed=seed):  # report_to
        rows = trainer.train(progress=True)
    weights = dp.full_state_dict(model) if dp.shards_parameters else None  # FSDP: a collective
    if not dp.is_main:  # the main rank saves the model and writes the summary
        return {}
    _save_model(model, tokenizer if processor is None else processor, out / "model", weights)
    return finish_run(cfg, out, rows, started, paper=paper, tier=tier, variant=variant, seed=seed)


def write_resolved(out: Path, cfg: Any) -> None:
    """config.resolved.yaml: every field explicit; a header comment names the run's overrides, if any, and the
    defaults it keeps that differ from TRL's (repro/trl_vocabulary.py)."""
    from repro.trl_vocabulary import differing_defaults

    overrides = RUN_OVERRIDES.get() or Overrides()
    header = f"# overrides on the paper folder's config: {overrides.describe()}\n" if overrides else ""
    differing = differing_defaults(cfg)
    if differing:
        header += "# this harness's defaults that differ from TRL's (the values below equal them):\n" + "".join(
            f"#   {d}\n" for d in differing
        )
    write_text(out / "config.resolved.yaml", header + dump(cfg))


def finish_run(cfg: Any, out: Path, rows: list[dict[str, Any]], started: float, **identity: Any) -> dict[str, Any]:
    """Write summary.json (last: its presence marks a finished run) and drop the run's checkpoint."""
    from repro.distributed import launched_processes
    from repro.provenance import collect_provenance

    summary = {
        **identity,  # paper, tier, variant, seed (+ what a trainer adds, e.g. n_examples)
        "steps": len(rows),
        "wall_time_s": time.time() - started,
        "model": cfg.model.name_or_path,
        "overrides": (RUN_OVERRIDES.get() or Overrides()).as_record(),  # model=, data_dir=, --set
        "config_hash": config_hash(cfg),
        "processes": launched_processes(),  # data-parallel ranks (per-device batches × this = the global batch)
        "final": rows[-1] if rows else {},
        "provenance": collect_provenance(dump(cfg)),
    }
    write_json(out / "summary.json", summary)
    shutil.rmtree(out / "ckpt", ignore_errors=True)
    return summary


def _save_model(model: Any, tokenizer: Any, path: Path, weights: dict[str, Any] | None = None) -> None:
    """Weights and tokenizer (or a VL policy's whole processor, which saves its tokenizer) swapped in at once.
    `weights`: the whole state dict when the model's own parameters are FSDP shards."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict=weights)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def eval_run(run_dir: Path, out: Path) -> dict[str, Any]:
    cfg = load_resolved(run_dir / "config.resolved.yaml")
    if (kind := kind_of(cfg)) is not None:
        return kind.load("evaluate")(run_dir, cfg, out)
    from repro.eval.synthetic import evaluate_policy
    from repro.models.loading import load_policy
    from repro.models.vision import load_processor

    problems = held_out_problems(cfg, str(run_dir))  # the same problems for every run; read before any model
    use_threads(cfg.resources.threads)
    run_seed = int(read_json(run_dir / "summary.json").get("seed", 0))
    sampling_seed = cfg.eval.seed + run_seed  # sampling noise differs per run, and is shared with its base eval
    model, tokenizer = load_policy(str(run_dir / "model"), cfg.model.dtype, cfg.model.trust_remote_code)
    processor = load_processor(str(run_dir / "model"))
    result = _evaluate(model, tokenizer, cfg, problems, sampling_seed, evaluate_policy, processor)
    result["sampling_seed"] = sampling_seed
    result["held_out"] = cfg.eval.task and f"synthetic:{cfg.eval.task}" or f"{cfg.eval.prompts} ({cfg.eval.split})"
    # The starting model (a prepared warm start or the researcher's checkpoint), scored on the same problems with
    # the same sampling seed and protocol: the paired control of every "above the starting model" claim. The same
    # for every variant of this seed: computed once per results folder (repro/eval/cache.py).
    from repro.eval.cache import cached, control_key

    base_path = resolve_model_path(cfg.model.name_or_path)

    def starting_model() -> dict[str, Any]:
        base_model, base_tokenizer = load_policy(base_path, cfg.model.dtype, cfg.model.trust_remote_code)
        processor = load_processor(base_path)
        base = _evaluate(base_model, base_tokenizer, cfg, problems, sampling_seed, evaluate_policy, processor)
        return {k: base[k] for k in BASE_EVAL_KEYS}

    key = control_key("online_rl starting model", cfg, problems, sampling_seed, model=base_path)
    result["base"] = cached(run_dir.parent.parent, key, starting_model)
    write_json(out, result)
    return result


BASE_EVAL_KEYS = ("greedy_accuracy", "sampled_accuracy", "pass_at_k", "mean_response_length", "truncation_rate")


def held_out_problems(cfg: RunConfig, where: str) -> list[Any]:
    """An online-RL run's held-out problems: the synthetic task's fixed set (smoke), or the first
    `eval.n_problems` of `eval.prompts` (a file or hub dataset, small and paper tiers)."""
    from repro.data.prompts import held_out_problems as load_held_out

    e = cfg.eval
    return load_held_out(
        e.task,
        e.prompts,
        n=e.n_problems,
        split=e.split,
        problem_field=e.problem_field or cfg.data.problem_field,
        answer_field=e.answer_field or cfg.data.answer_field,
        fields_key="eval" if e.problem_field or e.answer_field else "data",
        seed=e.seed,
        where=where,
    )


def _evaluate(
    model: Any,
    tokenizer: Any,
    cfg: RunConfig,
    problems: list[Any],
    seed: int,
    evaluate_policy: Any,
    processor: Any = None,
) -> dict[str, Any]:
    return evaluate_policy(
        model,
        tokenizer,
        problems,
        template=cfg.data.template,
        answer_style=cfg.data.answer_style,
        k=cfg.eval.k,
        temperature=cfg.eval.temperature,
        top_p=cfg.eval.top_p,
        max_new_tokens=cfg.eval.max_new_tokens,
        seed=seed,
        processor=processor,
    )


def benchmark_overrides(cfg: RunConfig, name: str, tier: str) -> dict[str, Any]:
    """The run config's protocol overrides for a benchmark; at smoke tier on top of the benchmark's smoke block
    (a paper-tier entry inherited by the smoke overlay must not ask a 1M-parameter model for 3,000 tokens)."""
    from repro.eval.benchmark import get_benchmark

    smoke = dict(get_benchmark(name).smoke) if tier == "smoke" else {}
    return {**smoke, **cfg.eval.benchmarks.get(name, {})}


def bench_run(run_dir: Path, name: str, out: Path) -> dict[str, Any]:
    """Score a finished run's checkpoint on one benchmark through lm-eval; reuse `out` if its cache key matches."""

    from repro.eval.benchmark import data_dir, get_benchmark, items_hash, load_items, protocol_hash

    cfg = load_resolved(run_dir / "config.resolved.yaml")
    summary = read_json(run_dir / "summary.json")
    bench = get_benchmark(name)
    protocol = bench.resolve(benchmark_overrides(cfg, name, str(summary.get("tier", ""))), str(run_dir))
    local_dir = data_dir(cfg.eval.data_dir)
    model_dir = run_dir / "model"
    items = load_items(bench, local_dir, protocol.limit)
    cache_key = {
        "checkpoint": checkpoint_fingerprint(model_dir),
        "protocol": protocol_hash(bench, protocol),
        "dataset": items_hash(items),
    }
    if out.is_file():
        try:
            previous = read_json(out)
        except ValueError:
            previous = {}
        if previous.get("cache_key") == cache_key:
            print(f"{out}: same checkpoint, protocol and data; kept")
            return previous
    return _bench_and_write(bench, protocol, str(model_dir), local_dir, cfg, out, cache_key, run_dir, items)


def _bench_and_write(
    bench: Any,
    protocol: Any,
    model_path: str,
    local_dir: Path | None,
    cfg: RunConfig | None,
    out: Path,
    cache_key: dict[str, str] | None,
    run_dir: Path | None,
    items: list[Any] | None = None,
) -> dict[str, Any]:
    from repro.eval.lmeval_bridge import evaluate_benchmark
    from repro.provenance import collect_provenance

    use_threads(cfg.resources.threads if cfg else max(1, os.cpu_count() or 1))
    result = evaluate_benchmark(
        bench,
        protocol,
        model_path=model_path,
        local_dir=local_dir,
        backend=cfg.eval.backend if cfg else "auto",
        batch_size=cfg.eval.batch_size if cfg else 64,
        dtype=cfg.model.dtype if cfg else "float32",
        items=items,
    )
    result.update(
        checkpoint=model_path,
        run=str(run_dir) if run_dir else None,
        cache_key=cache_key,
        provenance=collect_provenance(dump(cfg) if cfg else ""),
    )
    write_json(out, result)
    return result


def bench_model(
    model_path: str, names: list[str], out_dir: Path, *, smoke: bool, overrides: dict[str, Any], data: str | None
) -> list[dict[str, Any]]:
    """Score any checkpoint on named benchmarks (no run dir); one JSON per benchmark in `out_dir`."""
    from repro.eval.benchmark import data_dir, get_benchmark

    benches = [get_benchmark(n) for n in names]  # all names checked before any model is loaded
    protocols = [b.resolve({**(b.smoke if smoke else {}), **overrides}) for b in benches]
    local_dir = data_dir(data)
    model_path = resolve_model_path(model_path)
    results = []
    for bench, protocol in zip(benches, protocols, strict=True):
        out = out_dir / f"{bench.name}.json"
        results.append(_bench_and_write(bench, protocol, model_path, local_dir, None, out, None, None))
    return results


def checkpoint_fingerprint(model_dir: Path) -> str:
    """Hash of a checkpoint directory: each file's name, size and first 4 MiB (cheap for 60 GB checkpoints)."""
    import hashlib

    if not model_dir.is_dir():
        raise ConfigError(f"{model_dir}: no checkpoint here; train the run first")
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(model_dir)}:{path.stat().st_size}:".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(4 << 20))
    return digest.hexdigest()[:16]
