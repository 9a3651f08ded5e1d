"""SFT warm start on a synthetic task (plain PyTorch; loss on completion tokens only).

The recipe of cpu_feasibility.md §3: AdamW (betas 0.9, 0.98), linear warm-up then constant lr, fresh random
problems every step. On the tiny model (bs 128, lr 1e-3) accuracy jumps between steps ~800 and ~1100, so pick a
warm start by step count. Threads: whatever the caller set with torch.set_num_threads.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import torch

from repro.data.synthetic import TASKS, held_out
from repro.data.templates import render
from repro.progress import progress_bar


def completion_batch(
    tokenizer: Any,
    prompts: list[str],
    targets: list[str],
    *,
    max_length: int | None = None,
    completion_only: bool = True,
) -> dict[str, torch.Tensor]:
    """Right-padded prompt+target+EOS rows; labels are -100 except on target and EOS tokens.

    `max_length` keeps each row's first tokens (TRL's truncation_mode keep_start); `completion_only=False` trains
    on the prompt's tokens too (TRL's completion_only_loss=False). Prompt and target are tokenized apart, so no
    token merges across their boundary (with a character tokenizer this is TRL's tokenization exactly).
    """
    rows, labels = [], []
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(targets, add_special_tokens=False)["input_ids"]
    for p, t in zip(prompt_ids, target_ids):
        t = t + [tokenizer.eos_token_id]
        rows.append((p + t)[:max_length])
        labels.append(((p if not completion_only else [-100] * len(p)) + t)[:max_length])
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),  # [B, L]
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),  # [B, L]
        "labels": torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels]),  # [B, L]
    }


def sft_warm_start(
    model: torch.nn.Module,
    tokenizer: Any,
    task: str,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    warmup_steps: int = 30,
    seed: int = 0,
    template: str = "raw",
    progress: bool = True,
    processor: Any = None,
    until: Callable[[], bool] | None = None,
    max_steps: int | None = None,
    check_every: int = 25,
) -> list[dict[str, float]]:
    """Train `model` in place; returns the loss curve [{"step", "loss", "lr"}]. Deterministic for a seed.

    With `until`, training goes on past `steps` (the same constant learning rate and data stream, as if `steps`
    had been larger) and asks `until()` after `steps` and every `check_every` steps after, stopping when it says
    True or at `max_steps`: a warm start whose seed crosses the task's phase transition later than the base's.

    Each step draws `batch_size` fresh problems (held-out prompts excluded) and minimises the mean
    cross-entropy over target + EOS tokens (the prompt is masked). A visual task's images go through the
    vision-language model's `processor` (repro/models/vision.py) and into the forward as pixel_values.
    """
    sampler = TASKS.get(task)
    exclude = frozenset(p.key for p in held_out(task))
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(warmup_steps, 1)))
    model.train()
    curve = []
    last = max(steps, max_steps or steps) if until is not None else steps
    for step in progress_bar(iterable=range(last), desc="sft", disable=not progress):
        problems = sampler.make(batch_size, rng.randrange(2**31), exclude)
        prompts = [render(template, p.prompt, tokenizer) for p in problems]
        extra: dict[str, torch.Tensor] = {}
        if processor is not None:
            from repro.models.vision import encode_images

            prompts, extra = encode_images(processor, prompts, [p.image for p in problems])
        batch = {**completion_batch(tokenizer, prompts, [p.target for p in problems]), **extra}
        loss = model(**batch).loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"SFT loss is {loss.item()} at step {step}; lower the learning rate")
        loss.backward()
        lr_now = optimizer.param_groups[0]["lr"]
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        curve.append({"step": step + 1, "loss": loss.item(), "lr": lr_now})
        done = step + 1
        if until is not None and done >= steps and (done - steps) % check_every == 0:
            model.eval()
            if until():
                break
            model.train()
    model.eval()
    return curve
