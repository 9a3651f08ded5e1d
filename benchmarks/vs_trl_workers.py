"""One benchmark run per process (benchmarks/vs_trl.py starts them): our trainer or TRL 1.16's on the same model,
data and settings. Each writes a JSON record: the time after each optimizer step, the first losses, generated
tokens, a hash of each `generate` output (to tell whether both sides trained on the same samples) and peak RSS.
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from repro.data.preference import PreferencePair
from repro.data.prompts import load_prompts
from repro.rewards.functions import REWARDS
from repro.rewards.grader import extract_answer, grade
from repro.rollout.hf import eos_mask

GRPO = {"num_generations": 8, "prompts_per_step": 16, "max_completion_length": 32, "learning_rate": 1e-4}
DPO = {"batch_size": 16, "beta": 0.1, "learning_rate": 1e-4}
FIRST_LOSSES = 3  # losses recorded per run
ORDER_SEED = 0  # our trainers' run seed: both sides see prompts/pairs in the order ours draws them


def digit_share(completions: list[str], completion_lengths: list[int], answers: list[str], **_: Any) -> list[float]:
    """Share of a completion's characters that are digits: a dense reward, so that a random-init policy's groups
    have non-zero advantages (exact-match correctness is all zeros there)."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


if "digit_share" not in REWARDS:
    REWARDS.add("digit_share", digit_share)


class Recorder:
    """Step end times, losses, generated tokens and `generate` output hashes of one run."""

    def __init__(self, eos_id: int) -> None:
        self.eos_id = eos_id
        self.step_times: list[float] = []
        self.losses: list[float] = []
        self.tokens = 0
        self.generate_hashes: list[str] = []

    def wrap_generate(self, model: torch.nn.Module) -> None:
        """TRL's side: reseed before every `generate` call (the same seeds on both sides: equal inputs give equal
        samples) and count the completion tokens up to the first EOS, inclusive."""
        inner = model.generate

        def generate(*args: Any, **kwargs: Any) -> Any:
            self._reseed()
            out = inner(*args, **kwargs)
            sequences = out if torch.is_tensor(out) else out.sequences  # [N, P+T]
            completion_mask, _ = eos_mask(sequences[:, kwargs["input_ids"].size(1) :], self.eos_id)  # [N, T]
            self._saw(sequences, int(completion_mask.sum()))
            return out

        model.generate = generate

    def wrap_rollout(self, rollout: Any) -> None:
        """Our side: the same around each rollout batch (its sampler need not be `generate`), hashing prompt +
        completion ids as `generate` lays them out."""
        inner = rollout._generate

        def generate(*args: Any, **kwargs: Any) -> Any:
            self._reseed()
            batch = inner(*args, **kwargs)
            self._saw(torch.cat([batch.prompt_ids, batch.completion_ids], dim=1), int(batch.completion_mask.sum()))
            return batch

        rollout._generate = generate

    def _reseed(self) -> None:
        torch.manual_seed(10_000 + len(self.generate_hashes))

    def _saw(self, sequences: torch.Tensor, tokens: int) -> None:
        """One sampling call's output: its prompt + completion ids [N, P+T] (hashed) and its completion tokens."""
        self.tokens += tokens
        self.generate_hashes.append(hashlib.sha256(sequences.numpy().tobytes()).hexdigest()[:16])

    def record(self, out: Path, **extra: Any) -> None:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        record = {
            "step_times": self.step_times,
            "losses": self.losses[:FIRST_LOSSES],
            "tokens": self.tokens,
            "generate_hashes": self.generate_hashes[:FIRST_LOSSES],
            "peak_rss_mb": peak_mb,
            **extra,
        }
        out.write_text(json.dumps(record), encoding="utf-8")


def grpo_prompts(n: int) -> list[Any]:
    return load_prompts("synthetic:addition", limit=n, seed=0)


def draw_order(n: int) -> list[int]:
    """The order our trainers draw n items in their first epoch (Random(seed·1_000_003 + 0).shuffle)."""
    order = list(range(n))
    random.Random(ORDER_SEED * 1_000_003).shuffle(order)
    return order


# ---------------------------------------------------------------------------------------------- GRPO


def grpo_ours(model_dir: str, steps: int, out: Path) -> None:
    from repro.config import resolve
    from repro.models.loading import load_policy
    from repro.rollout.hf import HFRollout
    from repro.trainers.online_rl import OnlineRLTrainer

    g = GRPO
    cfg = resolve(
        {
            "model": {"name_or_path": model_dir},
            "data": {"prompts": "synthetic:addition", "template": "raw", "answer_style": "plain"},
            "train": {
                "loss_type": "dapo",  # TRL 1.16's default: token-level sum over the batch's tokens
                "scale_rewards": "group",
                "epsilon_high": 0.2,
                "num_generations": g["num_generations"],
                "per_device_train_batch_size": g["num_generations"] * g["prompts_per_step"],
                "max_completion_length": g["max_completion_length"],
                "learning_rate": g["learning_rate"],
                "max_steps": steps,
                "save_steps": 0,
            },
            "rewards": {"correctness": {"weight": 1.0}, "digit_share": {"weight": 1.0}},
            "eval": {"task": "addition"},
        },
        "benchmarks/vs_trl grpo",
    )
    torch.manual_seed(ORDER_SEED)
    model, tokenizer = load_policy(model_dir)
    recorder = Recorder(tokenizer.eos_token_id)
    rollout = HFRollout(model, tokenizer)
    recorder.wrap_rollout(rollout)
    prompts = grpo_prompts(steps * g["prompts_per_step"])
    trainer = OnlineRLTrainer(cfg, model, tokenizer, prompts, rollout, out.parent / "ours_grpo", 0)
    step = trainer._optimizer_step

    def timed_step(window: list[dict[str, float]], *args: Any) -> None:
        recorder.losses.extend(w["loss"] for w in window)
        step(window, *args)
        recorder.step_times.append(time.perf_counter())

    trainer._optimizer_step = timed_step
    trainer.train(progress=False)
    recorder.record(out)


def grpo_trl(model_dir: str, steps: int, out: Path) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    g = GRPO
    model, tokenizer, recorder = _trl_setup(model_dir)
    recorder.wrap_generate(model)
    prompts = grpo_prompts(steps * g["prompts_per_step"])
    ordered = [prompts[i] for i in draw_order(len(prompts))]
    dataset = Dataset.from_list([{"prompt": p.prompt, "answer": p.answer} for p in ordered])

    def correctness(completions: list[str], answer: list[str], **_: Any) -> list[float]:
        return [float(grade(extract_answer(c, "plain"), a)) for c, a in zip(completions, answer)]

    def digits(completions: list[str], answer: list[str], **_: Any) -> list[float]:
        return digit_share(completions, [], answer)

    args = GRPOConfig(
        output_dir=str(out.parent / "trl_grpo"), report_to="none", save_strategy="no", use_cpu=True, bf16=False,
        gradient_checkpointing=False, disable_tqdm=True, logging_steps=steps, seed=ORDER_SEED,
        shuffle_dataset=False,  # the prompts come in the order ours draws them
        per_device_train_batch_size=g["num_generations"] * g["prompts_per_step"],
        num_generations=g["num_generations"], max_completion_length=g["max_completion_length"],
        learning_rate=g["learning_rate"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        loss_type="dapo", beta=0.0, temperature=1.0, top_p=1.0, top_k=0, max_steps=steps,
    )  # fmt: skip

    trainer = GRPOTrainer(
        model=model, reward_funcs=[correctness, digits], args=args, train_dataset=dataset,
        processing_class=tokenizer, callbacks=[_timer(recorder)],
    )  # fmt: skip
    _trl_train(trainer, recorder, out)


def _trl_setup(model_dir: str) -> tuple[Any, Any, Recorder]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, Recorder(tokenizer.eos_token_id)


def _timer(recorder: Recorder) -> Any:
    """A TrainerCallback that stamps the end of each optimizer step."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            recorder.step_times.append(time.perf_counter())

    return Timer()


def _trl_train(trainer: Any, recorder: Recorder, out: Path) -> None:
    """Train with each micro-batch's loss recorded unrounded (TRL's logs round to 4 digits), then write the record."""
    compute_loss = trainer.compute_loss

    def recorded_loss(*a: Any, **k: Any) -> Any:
        loss = compute_loss(*a, **k)
        recorder.losses.append(float(loss.detach()))
        return loss

    trainer.compute_loss = recorded_loss
    trainer.train()
    recorder.record(out)


# ---------------------------------------------------------------------------------------------- DPO


def dpo_pairs(n: int) -> list[PreferencePair]:
    """Addition prompts; chosen = the sum, rejected = the sum with one digit changed (deterministic)."""
    rng = random.Random(7)
    pairs = []
    for p in grpo_prompts(n):
        digits = list(p.answer)
        i = rng.randrange(len(digits))
        digits[i] = str((int(digits[i]) + rng.randrange(1, 10)) % 10)
        pairs.append(PreferencePair(p.prompt, p.answer, "".join(digits)))
    return pairs


def dpo_ours(model_dir: str, steps: int, out: Path) -> None:
    from repro.models.loading import load_policy
    from repro.preference_config import resolve_preference
    from repro.trainers.preference import PreferenceTrainer

    d = DPO
    cfg = resolve_preference(
        {
            "trainer": "preference",
            "model": {"name_or_path": model_dir},
            "data": {"pairs": "benchmark"},
            "train": {
                "loss_type": "sigmoid",
                "beta": d["beta"],
                "per_device_train_batch_size": d["batch_size"],
                "learning_rate": d["learning_rate"],
                "lr_scheduler_type": "constant",
                "max_steps": steps,
                "precompute_ref_log_probs": True,
                "save_steps": 0,
            },  # fmt: skip
        },
        "benchmarks/vs_trl dpo",
    )
    torch.manual_seed(ORDER_SEED)
    model, tokenizer = load_policy(model_dir)
    recorder = Recorder(tokenizer.eos_token_id)
    trainer = PreferenceTrainer(cfg, model, tokenizer, dpo_pairs(steps * d["batch_size"]), out.parent / "ours_dpo", 0)
    step = trainer._optimizer_step

    def timed_step() -> dict[str, Any]:
        row = step()
        recorder.step_times.append(time.perf_counter())
        recorder.losses.append(row["loss"])
        return row

    trainer._optimizer_step = timed_step
    trainer.train(progress=False)
    recorder.record(out)


def dpo_trl(model_dir: str, steps: int, out: Path) -> None:
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from trl import DPOConfig, DPOTrainer

    d = DPO
    model, tokenizer, recorder = _trl_setup(model_dir)
    pairs = dpo_pairs(steps * d["batch_size"])
    ordered = [pairs[i] for i in draw_order(len(pairs))]
    dataset = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in ordered])
    args = DPOConfig(
        output_dir=str(out.parent / "trl_dpo"), report_to="none", save_strategy="no", use_cpu=True, bf16=False,
        gradient_checkpointing=False, disable_tqdm=True, logging_steps=steps, seed=ORDER_SEED,
        per_device_train_batch_size=d["batch_size"], learning_rate=d["learning_rate"], lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, beta=d["beta"], loss_type=["sigmoid"], max_length=None,
        precompute_ref_log_probs=True, max_steps=steps,
    )  # fmt: skip

    class InOrder(DPOTrainer):  # the pairs in the order ours draws them (TRL shuffles by default)
        def _get_train_sampler(self, *_: Any, **__: Any) -> SequentialSampler:
            return SequentialSampler(self.train_dataset)

    trainer = InOrder(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=[_timer(recorder)]
    )
    _trl_train(trainer, recorder, out)


WORKERS = {"grpo_ours": grpo_ours, "grpo_trl": grpo_trl, "dpo_ours": dpo_ours, "dpo_trl": dpo_trl}

if __name__ == "__main__":  # python benchmarks/vs_trl_workers.py <worker> <model_dir> <steps> <out.json> <threads>
    name, model_dir, steps, out, threads = sys.argv[1:6]
    torch.set_num_threads(int(threads))
    WORKERS[name](model_dir, int(steps), Path(out))
