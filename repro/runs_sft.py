"""The `train` and `eval` verbs for supervised fine-tuning runs (`trainer: sft`); repro/runs.py dispatches here.

A run writes `model/` (the last iterate θ_T) and, with a `bema:` block, `model_ema/` and `model_bema/` (the final
EMA and BEMA iterates; TRL's BEMACallback saves the latter to `<output_dir>/bema`). Evaluation scores every saved
iterate and the starting model ("base") on the same held-out problems with the same sampling seed: greedy and
sampled accuracy (avg@k, pass@k, maj@k) and NLL per completion token on the training task's held-out set and, with
`eval.shifted_task`, on the shifted task's; for a real dataset, held-out NLL and next-token accuracy only.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from repro.distributed import DataParallel
from repro.io import read_json, write_json
from repro.sft_config import SFTRunConfig
from repro.trackers import reporting

ITERATES = ("ema", "bema")  # the averaged iterates a BEMA run saves beside model/
BASE_KEYS = ("greedy_accuracy", "sampled_accuracy", "pass_at_k", "eval_loss", "mean_response_length")


def training_data(cfg: SFTRunConfig, tokenizer: Any, seed: int, world: int = 1) -> tuple[Any, list[Any], list[Any]]:
    """(training stream, held-out examples, held-out problems or []) of a run; on `world` processes the stream
    draws global micro-batches of per_device_train_batch_size × world (each rank trains on its shard)."""
    from repro.data.sft_data import (
        TrainingStream,
        real_examples,
        synthetic_examples,
        training_exclusions,
    )

    t, d = cfg.train, cfg.data
    shape = {
        "seed": seed,
        "batch_size": t.per_device_train_batch_size * world,
        "grad_accum": t.gradient_accumulation_steps,
    }
    task = cfg.synthetic_task
    if task is None:
        train, held = real_examples(cfg, tokenizer)
        problems = heldout_problems(cfg, cfg.eval_task) if cfg.eval_task else []
        return TrainingStream(examples=train, **shape), held, problems
    from repro.data.synthetic import TASKS

    exclude = training_exclusions(cfg)
    problems = heldout_problems(cfg, cfg.eval_task)
    held = synthetic_examples(problems, d.template, tokenizer)
    if d.n_train is None:
        stream = TrainingStream(task=task, exclude=exclude, template=d.template, tokenizer=tokenizer, **shape)
    else:  # a fixed set, the same for every run seed (data_seed); seed + 1 as make_train does
        fixed = TASKS.get(task).make(d.n_train, d.data_seed + 1, exclude)
        stream = TrainingStream(examples=synthetic_examples(fixed, d.template, tokenizer), **shape)
    return stream, held, problems


def heldout_problems(cfg: SFTRunConfig, task: str | None) -> list[Any]:
    from repro.data.synthetic import held_out

    return held_out(str(task), n=cfg.eval.n_problems, seed=cfg.eval.seed) if task else []


def train_sft_run(
    cfg: SFTRunConfig, paper: str, tier: str, variant: str, seed: int, out: Path, model_path: str
) -> dict[str, Any]:
    from repro.models.loading import load_policy, load_tokenizer
    from repro.runs import _save_model, finish_run, seed_everything, use_threads, write_resolved

    started = time.time()
    trainer_module = importlib.import_module(f"papers.{paper}.trainer")
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(out, cfg)
    use_threads(cfg.train.num_threads or cfg.resources.threads)
    # several processes under `accelerate launch` (DDP or FSDP, resources.data_parallel); else one
    dp = DataParallel.from_environment(cfg.resources.data_parallel)
    seed_everything(seed)
    tokenizer = load_tokenizer(model_path, cfg.model.trust_remote_code)
    stream, held, problems = training_data(cfg, tokenizer, seed, dp.world)  # data problems before the model loads
    model, _ = load_policy(model_path, cfg.model.dtype, cfg.model.trust_remote_code)
    trainer = trainer_module.build_trainer(
        cfg, model=model, tokenizer=tokenizer, stream=stream, out_dir=out, held_out=held, held_out_problems=problems,
        dp=dp,
    )  # fmt: skip
    with reporting(cfg, out, dp.is_main, paper=paper, tier=tier, variant=variant, seed=seed):  # report_to
        rows = trainer.train(progress=True)
    weights = dp.full_state_dict(model) if dp.shards_parameters else None  # FSDP: a collective
    if not dp.is_main:  # the main rank saves the models and writes the summary
        return {}
    for name, averaged in trainer.averaged_models().items():
        _save_model(averaged, tokenizer, out / f"model_{name}")
    _save_model(model, tokenizer, out / "model", weights)
    identity = {"paper": paper, "tier": tier, "variant": variant, "seed": seed}
    return finish_run(cfg, out, rows, started, **identity)


def evaluate_model(model: Any, tokenizer: Any, cfg: SFTRunConfig, sampling_seed: int) -> dict[str, Any]:
    """One model's numbers: on the evaluation task (and the shifted one, keys `shifted_*`), or held-out loss."""
    from repro.eval.synthetic import evaluate_policy
    from repro.trainers.sft_loop import heldout_loss

    result: dict[str, Any] = {}
    tasks = [("", cfg.eval_task), ("shifted_", cfg.eval.shifted_task)]
    for prefix, task in tasks:
        if task is None:
            continue
        problems = heldout_problems(cfg, task)
        e = cfg.eval
        scored = evaluate_policy(
            model, tokenizer, problems, template=cfg.data.template, answer_style=cfg.data.answer_style, k=e.k,
            temperature=e.temperature, top_p=e.top_p, max_new_tokens=e.max_new_tokens, seed=sampling_seed,
        )  # fmt: skip
        from repro.data.sft_data import synthetic_examples

        loss = heldout_loss(model, tokenizer, synthetic_examples(problems, cfg.data.template, tokenizer), None)
        for key in ("greedy_accuracy", "sampled_accuracy", "pass_at_k", "maj_at_k", "mean_response_length"):
            result[prefix + key] = scored[key]
        result[prefix + "eval_loss"] = loss["loss"]
        result[prefix + "eval_token_accuracy"] = loss["token_accuracy"]
        result[prefix + "items"] = scored["items"]
    if cfg.synthetic_task is None:
        from repro.data.sft_data import real_examples

        held = real_examples(cfg, tokenizer)[1]
        loss = heldout_loss(model, tokenizer, held, cfg.train.max_length)
        result["eval_loss"], result["eval_token_accuracy"] = loss["loss"], loss["token_accuracy"]
    return result


def eval_sft_run(run_dir: Path, cfg: SFTRunConfig, out: Path) -> dict[str, Any]:
    from repro.models.loading import load_policy
    from repro.runs import resolve_model_path, use_threads

    use_threads(cfg.resources.threads)
    run_seed = int(read_json(run_dir / "summary.json").get("seed", 0))
    sampling_seed = cfg.eval.seed + run_seed  # shared by every iterate and the base model: paired comparisons
    model, tokenizer = load_policy(str(run_dir / "model"))
    result: dict[str, Any] = {"trainer": "sft", **evaluate_model(model, tokenizer, cfg, sampling_seed)}
    for name in ITERATES:
        if (run_dir / f"model_{name}").is_dir():
            averaged, _ = load_policy(str(run_dir / f"model_{name}"))
            scored = evaluate_model(averaged, tokenizer, cfg, sampling_seed)
            result.update({f"{name}_{k}": v for k, v in scored.items() if not k.endswith("items")})
    base_model, base_tokenizer = load_policy(resolve_model_path(cfg.model.name_or_path))
    base = evaluate_model(base_model, base_tokenizer, cfg, sampling_seed)
    result["base"] = {k: v for k, v in base.items() if not k.endswith("items")}
    result["protocol"] = {
        "k": cfg.eval.k, "temperature": cfg.eval.temperature, "top_p": cfg.eval.top_p,
        "max_new_tokens": cfg.eval.max_new_tokens, "n_problems": cfg.eval.n_problems, "seed": cfg.eval.seed,
    }  # fmt: skip
    result["sampling_seed"] = sampling_seed
    headline = ["greedy_accuracy", "sampled_accuracy", "eval_loss", "shifted_sampled_accuracy", "bema_eval_loss"]
    result["headline"] = [k for k in headline if k in result]
    write_json(out, result)
    return result
