"""The `train` and `eval` verbs for distillation runs (`trainer: distillation`); repro/runs.py dispatches here.

Training prompts: a synthetic task's problems (`data.prompts: synthetic:<task>`, the held-out set excluded, with
their gold completions for off-policy batches) or a prompt file / hub dataset. Held-out problems: the task's
fixed held-out set (repro/data/synthetic.py `held_out`), or `eval.prompts`. The teacher is
`train.teacher_model_name_or_path` (`prepared:<name>`: a tiny model the DAG builds from configs/base/<name>.yaml).
"""

from __future__ import annotations

import functools
import importlib
import math
import time
from pathlib import Path
from typing import Any

from repro.distillation_config import DistillationRunConfig
from repro.io import read_json, read_jsonl_tolerant, write_json
from repro.schema import ConfigError
from repro.trackers import reporting

HEADLINE = ("sampled_accuracy", "greedy_accuracy", "teacher_sampled_accuracy", "reverse_kl", "steps_to_target")


def training_problems(cfg: DistillationRunConfig) -> list[Any]:
    from repro.data.prompts import load_prompts

    d = cfg.data
    return load_prompts(
        d.prompts,
        split=d.split,
        limit=d.limit,
        problem_field=d.problem_field,
        answer_field=d.answer_field,
        seed=d.data_seed,
    )  # synthetic: the held-out prompts are excluded (make_train)


def eval_problems(cfg: DistillationRunConfig, n: int) -> list[Any]:
    """The first n held-out problems: the synthetic task's fixed held-out set, or `eval.prompts`."""
    from repro.data.prompts import held_out_problems

    e, d = cfg.eval, cfg.data
    task = str(cfg.synthetic_task) if e.prompts is None else None
    return held_out_problems(
        task, e.prompts, n=n, split=e.split, problem_field=d.problem_field, answer_field=d.answer_field
    )


def load_teacher(cfg: DistillationRunConfig, student_tokenizer: Any) -> Any:
    """The teacher model; a ConfigError when its vocabulary differs from the student's (token-level losses)."""
    from repro.models.loading import load_policy
    from repro.runs import resolve_model_path

    path = resolve_model_path(cfg.train.teacher_model_name_or_path)
    teacher, teacher_tokenizer = load_policy(path, cfg.model.dtype, cfg.model.trust_remote_code)
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ConfigError(
            f"teacher {cfg.train.teacher_model_name_or_path!r} has a different vocabulary from the student: the "
            "generalised JSD compares distributions token by token (GKD / GOLD same-tokenizer path); pick a teacher "
            "of the same tokenizer family"
        )
    return teacher


def _measure(cfg: DistillationRunConfig, teacher: Any, tokenizer: Any, problems: list[Any], k: int, seed: int):
    from repro.eval.distillation import measure_student

    e = cfg.eval
    return functools.partial(
        measure_student,
        teacher=teacher,
        tokenizer=tokenizer,
        problems=problems,
        template=cfg.data.template,
        answer_style=cfg.data.answer_style,
        k=k,
        temperature=e.temperature,
        top_p=e.top_p,
        max_new_tokens=e.max_new_tokens,
        seed=seed,
        batch_size=e.batch_size,
    )


def train_distillation_run(
    cfg: DistillationRunConfig, paper: str, tier: str, variant: str, seed: int, out: Path, model_path: str
) -> dict[str, Any]:
    from repro.distributed import DataParallel, launched_processes
    from repro.models.loading import load_policy
    from repro.runs import _save_model, finish_run, resolve_model_path, seed_everything, use_threads, write_resolved
    from repro.trainers.distillation import check_data_parallel

    started = time.time()
    check_data_parallel(cfg, launched_processes())
    resolve_model_path(cfg.train.teacher_model_name_or_path)  # an unprepared teacher fails before any load
    problems = training_problems(cfg)
    held_out = eval_problems(cfg, cfg.train.eval_prompts) if cfg.train.eval_every else []
    trainer_module = importlib.import_module(f"papers.{paper}.trainer")
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(out, cfg)
    use_threads(cfg.train.num_threads or cfg.resources.threads)
    # several processes under `accelerate launch` (DDP or FSDP, resources.data_parallel); else one
    dp = DataParallel.from_environment(cfg.resources.data_parallel)
    seed_everything(seed)  # the same seed on every rank: each draws the same global micro-batches
    model, tokenizer = load_policy(model_path, cfg.model.dtype, cfg.model.trust_remote_code)
    teacher = load_teacher(cfg, tokenizer)
    monitor = None
    if cfg.train.eval_every:
        monitor = _measure(cfg, teacher, tokenizer, held_out, cfg.train.eval_samples, cfg.eval.seed + seed)
    trainer = trainer_module.build_trainer(
        cfg,
        model=model,
        tokenizer=tokenizer,
        teacher=teacher,
        problems=problems,
        out_dir=out,
        seed=seed,
        monitor=monitor,
        dp=dp,
    )
    with reporting(cfg, out, dp.is_main, paper=paper, tier=tier, variant=variant, seed=seed):  # report_to
        rows = trainer.train(progress=True)
    weights = dp.full_state_dict(model) if dp.shards_parameters else None  # FSDP: a collective
    if not dp.is_main:  # the main rank saves the model and writes the summary
        return {}
    _save_model(model, tokenizer, out / "model", weights)
    identity = {"paper": paper, "tier": tier, "variant": variant, "seed": seed, "n_prompts": len(problems)}
    return finish_run(cfg, out, rows, started, **identity)


def time_to_target(
    rows: list[dict[str, Any]], reference: dict[str, Any] | None, fraction: float, max_steps: int, eval_every: int
) -> dict[str, Any]:
    """The first monitored step (and cumulative FLOPs) at which held-out sampled accuracy reaches
    base + fraction·(teacher − base), both ends measured by the monitor before step 1 (reference.json).

    A run that never reaches it is censored at the next monitoring step after the budget (max_steps +
    eval_every; FLOPs extrapolated at the run's mean FLOPs per step), `reached_target` false: a lower bound.
    """
    if not reference or not eval_every:
        return {"steps_to_target": None, "flops_to_target": None, "reached_target": None, "target_accuracy": None}
    base, teacher = reference["base"]["sampled_accuracy"], reference["teacher"]["sampled_accuracy"]
    target = base + fraction * (teacher - base)
    out: dict[str, Any] = {"target_accuracy": target, "reference_base": base, "reference_teacher": teacher}
    if teacher <= base:
        return {**out, "steps_to_target": None, "flops_to_target": None, "reached_target": None}
    for row in rows:
        value = row.get("eval_sampled_accuracy")
        if isinstance(value, int | float) and math.isfinite(value) and value >= target:
            return {**out, "steps_to_target": row["step"], "flops_to_target": row["flops"], "reached_target": True}
    censored = max_steps + eval_every
    per_step = rows[-1]["flops"] / rows[-1]["step"] if rows else math.nan
    return {**out, "steps_to_target": censored, "flops_to_target": per_step * censored, "reached_target": False}


def eval_distillation_run(run_dir: Path, cfg: DistillationRunConfig, out: Path) -> dict[str, Any]:
    from repro.models.loading import load_policy
    from repro.runs import resolve_model_path, use_threads
    from repro.trainers.distillation import read_reference

    use_threads(cfg.resources.threads)
    problems = eval_problems(cfg, cfg.eval.n_problems)
    run_seed = int(read_json(run_dir / "summary.json").get("seed", 0))
    sampling_seed = cfg.eval.seed + run_seed  # shared by the student, its teacher and its starting point
    model, tokenizer = load_policy(str(run_dir / "model"), cfg.model.dtype)
    teacher = load_teacher(cfg, tokenizer)
    measure = _measure(cfg, teacher, tokenizer, problems, cfg.eval.k, sampling_seed)
    student = measure(model)
    # the teacher and the starting student: the same for every variant of this seed, measured once per results folder
    from repro.eval.cache import cached, control_key

    base_path = resolve_model_path(cfg.model.name_or_path)
    teacher_path = resolve_model_path(cfg.train.teacher_model_name_or_path)
    key = control_key("distillation teacher", cfg, problems, sampling_seed, teacher=teacher_path)
    teacher_numbers = cached(run_dir.parent.parent, key, lambda: measure(teacher))
    key = control_key(
        "distillation starting student", cfg, problems, sampling_seed, teacher=teacher_path, model=base_path
    )
    base_numbers = cached(run_dir.parent.parent, key, lambda: measure(load_policy(base_path, cfg.model.dtype)[0]))
    gap = teacher_numbers["sampled_accuracy"] - base_numbers["sampled_accuracy"]
    rows = read_jsonl_tolerant(run_dir / "metrics.jsonl")
    t = cfg.train
    to_target = time_to_target(rows, read_reference(run_dir), cfg.eval.target_gap_fraction, t.max_steps, t.eval_every)
    flops = to_target["flops_to_target"]
    result: dict[str, Any] = {
        "trainer": "distillation",
        **student,
        "teacher_sampled_accuracy": teacher_numbers["sampled_accuracy"],
        "teacher_greedy_accuracy": teacher_numbers["greedy_accuracy"],
        # share of the starting student → teacher gap (sampled accuracy) the run closed
        "gap_closed": (student["sampled_accuracy"] - base_numbers["sampled_accuracy"]) / gap if gap > 0 else None,
        **to_target,
        "tflops_to_target": flops / 1e12 if flops is not None else None,
        "target_gap_fraction": cfg.eval.target_gap_fraction,
        "final_flops": rows[-1]["flops"] if rows else None,
        "teacher": teacher_numbers,
        "base": base_numbers,
        "k": cfg.eval.k,
        "n_problems": len(problems),
        "temperature": cfg.eval.temperature,
        "sampling_seed": sampling_seed,
        "headline": list(HEADLINE),
    }
    write_json(out, result)
    return result
