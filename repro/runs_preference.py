"""The `train` and `eval` verbs for offline preference runs (`trainer: preference`); repro/runs.py dispatches here.

Training data: synthetic pairs labelled from a prepared sample file (`data.pairs: prepared:<name>`,
repro/data/preference_synthetic.py), or a real preference dataset (local file or hub id,
repro/data/preference_loader.py). Held-out evaluation uses the same source's eval split, labelled
deterministically by the gold reward and never flipped.
"""

from __future__ import annotations

import copy
import importlib
import random
import time
from pathlib import Path
from typing import Any

from repro.distributed import DataParallel
from repro.io import read_json, write_json
from repro.preference_config import PreferenceRunConfig
from repro.schema import ConfigError
from repro.trackers import reporting
from repro.workflow import PREPARED

BASE_ROOT = Path("results/base")


def prepared_data_dir(name_or_path: str) -> Path:
    """`prepared:<name>` -> results/base/<name> (its prepare.json must exist)."""
    base = name_or_path[len(PREPARED) :]
    if not (BASE_ROOT / base / "prepare.json").is_file():
        raise ConfigError(
            f"preference data {name_or_path!r} has not been prepared; build it with "
            f"`snakemake results/base/{base}/prepare.json`"
        )
    return BASE_ROOT / base


def training_examples(cfg: PreferenceRunConfig) -> list[Any]:
    d = cfg.data
    if d.pairs.startswith(PREPARED):
        from repro.data.preference_synthetic import load_samples, make_pairs, unpaired_from_samples

        samples = load_samples(prepared_data_dir(d.pairs), d.split)
        if d.format == "unpaired":
            examples: list[Any] = unpaired_from_samples(samples, threshold=d.thumbs_up_threshold, seed=d.data_seed)
        else:
            examples = make_pairs(
                samples,
                preferences=d.preferences,
                bt_temperature=d.bt_temperature,
                label_flip=d.label_flip,
                seed=d.data_seed,
            )
        return examples[: d.limit] if d.limit else examples
    if d.format == "unpaired":
        from repro.data.preference_loader import load_unpaired

        return load_unpaired(d.pairs, split=d.split, limit=d.limit, seed=d.data_seed, prompt_field=d.prompt_field)
    return real_pairs(cfg)[0]


def real_pairs(cfg: PreferenceRunConfig) -> tuple[list[Any], list[Any]]:
    """(training pairs, held-out pairs) of a real dataset. With `data.eval_split` equal to `data.split` (a single
    local file), `eval.n_prompts` prompts drawn with the data seed are held out and every training row with one
    of those prompts is dropped, so training and evaluation never share a prompt."""
    from repro.data.preference_loader import load_preference_pairs

    d, n = cfg.data, cfg.eval.n_prompts
    fields = {"prompt_field": d.prompt_field, "chosen_field": d.chosen_field, "rejected_field": d.rejected_field}
    if d.eval_split != d.split:
        train = load_preference_pairs(d.pairs, split=d.split, limit=d.limit, seed=d.data_seed, **fields)
        held = load_preference_pairs(d.pairs, split=d.eval_split, limit=n, seed=d.data_seed, **fields)
        return _flipped(cfg, train), held
    everything = load_preference_pairs(d.pairs, split=d.split, seed=d.data_seed, **fields)
    order = list(range(len(everything)))
    random.Random(d.data_seed).shuffle(order)
    held = [everything[i] for i in sorted(order[:n])]
    held_prompts = {p.prompt for p in held}
    train = [everything[i] for i in order[n:] if everything[i].prompt not in held_prompts]
    if not train:
        raise ConfigError(f"{d.pairs}: nothing left to train on after holding out {n} prompts; lower eval.n_prompts")
    return _flipped(cfg, train[: d.limit] if d.limit else train), held


def _flipped(cfg: PreferenceRunConfig, train: list[Any]) -> list[Any]:
    """Training labels of real data swapped at `data.label_flip` (held-out labels never are)."""
    from repro.data.preference import flip_labels

    return flip_labels(train, cfg.data.label_flip, cfg.data.data_seed) if cfg.data.label_flip else train


def eval_data(cfg: PreferenceRunConfig) -> tuple[list[Any], list[Any]]:
    """(held-out prompts with answers, held-out pairs with gold-deterministic labels)."""
    from repro.eval.alignment import EvalPrompt

    d, n = cfg.data, cfg.eval.n_prompts
    if d.pairs.startswith(PREPARED):
        from repro.data.preference_synthetic import load_samples, make_pairs

        samples = load_samples(prepared_data_dir(d.pairs), d.eval_split)[:n]
        prompts = [EvalPrompt(s["prompt"], s["answer"], str(s["id"])) for s in samples]
        return prompts, make_pairs(samples, preferences="deterministic", seed=d.data_seed)
    if d.format == "unpaired":  # thumbs-up data has no pairs: held-out prompts only
        from repro.data.preference_loader import load_unpaired

        rows = load_unpaired(d.pairs, split=d.eval_split, limit=n, seed=d.data_seed, prompt_field=d.prompt_field)
        return [EvalPrompt(r.prompt, "", r.id) for r in rows], []
    pairs = real_pairs(cfg)[1]
    return [EvalPrompt(p.prompt, "", p.id) for p in pairs], pairs


def train_preference_run(
    cfg: PreferenceRunConfig, paper: str, tier: str, variant: str, seed: int, out: Path, model_path: str
) -> dict[str, Any]:
    from repro.losses.preference import combined_loss
    from repro.models.loading import load_policy
    from repro.runs import _save_model, finish_run, seed_everything, use_threads, write_resolved

    started = time.time()
    examples = training_examples(cfg)  # data problems surface before the model loads
    prompts, _ = eval_data(cfg)
    trainer_module = importlib.import_module(f"papers.{paper}.trainer")
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(out, cfg)
    use_threads(cfg.train.num_threads or cfg.resources.threads)
    # several processes under `accelerate launch` (DDP or FSDP, resources.data_parallel); else one
    dp = DataParallel.from_environment(cfg.resources.data_parallel)
    seed_everything(seed)  # the same seed on every rank: each draws the same global batches
    model, tokenizer = load_policy(model_path, cfg.model.dtype, cfg.model.trust_remote_code)
    needs_ref = cfg.data.format == "unpaired" or combined_loss(cfg.train.loss_terms).needs_reference
    keep_ref = (needs_ref and not cfg.train.precompute_ref_log_probs) or cfg.train.eval_every > 0
    ref_model = copy.deepcopy(model).eval().requires_grad_(False) if keep_ref else None
    monitor = None
    if cfg.train.eval_every:
        from repro.data.preference_synthetic import GOLD_REWARDS
        from repro.eval.alignment import FrontierMonitor

        gold = GOLD_REWARDS.get(cfg.eval.gold_reward) if cfg.eval.gold_reward else None
        monitor = FrontierMonitor(
            ref_model, tokenizer, prompts[: cfg.train.eval_prompts], gold,
            max_new_tokens=cfg.eval.max_new_tokens, seed=cfg.eval.seed,
        )  # fmt: skip
    trainer = trainer_module.build_trainer(
        cfg,
        model=model,
        tokenizer=tokenizer,
        examples=examples,
        out_dir=out,
        seed=seed,
        ref_model=ref_model,
        monitor=monitor,
        dp=dp,
    )
    with reporting(cfg, out, dp.is_main, paper=paper, tier=tier, variant=variant, seed=seed):  # report_to
        rows = trainer.train(progress=True)
    weights = dp.full_state_dict(model) if dp.shards_parameters else None  # FSDP: a collective
    if not dp.is_main:  # the main rank saves the model and writes the summary
        return {}
    _save_model(model, tokenizer, out / "model", weights)
    identity = {"paper": paper, "tier": tier, "variant": variant, "seed": seed, "n_examples": len(examples)}
    return finish_run(cfg, out, rows, started, **identity)


def eval_preference_run(run_dir: Path, cfg: PreferenceRunConfig, out: Path) -> dict[str, Any]:
    from repro.data.preference_synthetic import GOLD_REWARDS
    from repro.eval.alignment import evaluate_alignment
    from repro.losses.preference import PREFERENCE_LOSSES, PreferenceParams, combined_loss
    from repro.models.loading import load_policy
    from repro.runs import resolve_model_path, use_threads

    use_threads(cfg.resources.threads)
    prompts, pairs = eval_data(cfg)
    run_seed = int(read_json(run_dir / "summary.json").get("seed", 0))
    t = cfg.train
    # unpaired BCO has no pair loss; its implicit reward is DPO's β·ρ
    loss = PREFERENCE_LOSSES.get("sigmoid") if cfg.data.format == "unpaired" else combined_loss(t.loss_terms)
    params = PreferenceParams(
        beta=t.beta, label_smoothing=t.label_smoothing or 0.0, discopop_tau=t.discopop_tau, alpha=t.alpha,
        simpo_gamma=t.simpo_gamma,
    )  # fmt: skip
    judge = None
    if cfg.eval.judge:
        from repro.eval.judge import make_judge

        judge = make_judge(cfg.eval.judge)
    model, tokenizer = load_policy(str(run_dir / "model"))
    ref_model, _ = load_policy(resolve_model_path(cfg.model.name_or_path))
    sampling_seed = cfg.eval.seed + run_seed
    result = evaluate_alignment(
        model,
        ref_model,
        tokenizer,
        prompts,
        pairs,
        loss=loss,
        params=params,
        limits={
            "max_prompt_length": cfg.data.max_prompt_length,
            "max_completion_length": t.max_completion_length,
            "max_length": t.max_length,
        },
        k=cfg.eval.samples_per_prompt,
        max_new_tokens=cfg.eval.max_new_tokens,
        temperature=cfg.eval.temperature,
        top_p=cfg.eval.top_p,
        seed=sampling_seed,
        gold=GOLD_REWARDS.get(cfg.eval.gold_reward) if cfg.eval.gold_reward else None,
        judge=judge,
    )
    result["sampling_seed"] = sampling_seed
    if cfg.eval.judged_benchmarks:
        from repro.eval.judge import evaluate_judged, get_judged_benchmark

        data_dir = Path(cfg.eval.data_dir) if cfg.eval.data_dir else None
        result["judged"] = {
            name: evaluate_judged(get_judged_benchmark(name).resolve(overrides), model, tokenizer, judge, data_dir)
            for name, overrides in cfg.eval.judged_benchmarks.items()
        }
    write_json(out, result)
    return result
