"""What every trainer's step loop shares: the clipped update that refuses a non-finite gradient, the
metrics.jsonl line, and the resumable driver of the offline kinds (preference, SFT, reward model, distillation).

Each trainer keeps what is its own: the micro-batches of one optimizer step (returning the step's metrics row),
what its checkpoint holds beyond the weights, and what its progress bar shows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from repro.distributed import DataParallel, scalar
from repro.io import write_text
from repro.progress import progress_bar
from repro.trackers import stream


def json_line(row: dict[str, Any]) -> str:
    """One metrics row as a JSON line; NaN and ±inf become null (JSON has no non-finite numbers)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    return json.dumps(clean) + "\n"


def mean_rows(window: list[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean over the micro-batches of one accumulation window (keys of the first micro-batch)."""
    return {key: float(sum(w[key] for w in window) / len(window)) for key in window[0]}


def adamw(model: torch.nn.Module, t: Any) -> torch.optim.AdamW:
    """AdamW on the model's parameters with the run's learning_rate, adam_beta1/2 and weight_decay; the fused kernel
    (what transformers' Trainer, and so TRL, defaults to: ~3× quicker per step on the smoke model's CPU) unless the
    parameters are FSDP shards (DTensors), which take the multi-tensor one."""
    params = list(model.parameters())
    sharded = any(type(p).__name__ == "DTensor" for p in params)
    return torch.optim.AdamW(
        params, lr=t.learning_rate, betas=(t.adam_beta1, t.adam_beta2), weight_decay=t.weight_decay,
        fused=None if sharded else True,  # None: torch's default (multi-tensor) for DTensors
    )  # fmt: skip


def clipped_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    max_grad_norm: float,
    next_step: int,
    ckpt_dir: Path,
) -> float:
    """Clip the accumulated gradient to `max_grad_norm`, step optimizer and schedule, clear the gradient.

    Returns the pre-clip gradient norm. A non-finite norm stops the run before the weights are touched, so the
    last checkpoint stays the last good state.
    """
    grad_norm = scalar(torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm))  # FSDP: a DTensor
    if not math.isfinite(grad_norm):
        raise FloatingPointError(
            f"non-finite gradient norm at step {next_step}; lower train.learning_rate or train.max_grad_norm "
            f"(the last good checkpoint is kept in {ckpt_dir})"
        )
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


class SteppedTrainer(Protocol):
    """What `drive_steps` needs of a trainer: its run dir, step counter, train config (max_steps, save_steps),
    metrics rows (restored from a checkpoint on resume), one optimizer step and a checkpoint writer."""

    out_dir: Path
    step: int
    metrics_rows: list[dict[str, Any]]
    t: Any

    def _optimizer_step(self) -> dict[str, Any]: ...

    def _save(self, ckpt_dir: Path) -> None: ...


def drive_steps(
    trainer: SteppedTrainer, desc: str, postfix: Callable[[dict[str, Any]], dict[str, str]], progress: bool = True
) -> None:
    """Run the trainer's optimizer steps until `t.max_steps`, appending each row to out_dir/metrics.jsonl (then
    streaming it to the run's report_to trackers) and checkpointing to out_dir/ckpt every `t.save_steps`.

    metrics.jsonl is first rewritten (atomically) with the rows the checkpoint holds: a resumed run drops the rows
    of steps it is about to redo, so the file never holds a step twice.
    """
    # Under data parallelism every rank steps; only the main rank writes (metrics, checkpoints) and shows progress.
    main = getattr(trainer, "dp", DataParallel.single()).is_main
    metrics_path = trainer.out_dir / "metrics.jsonl"
    if main:
        write_text(metrics_path, "".join(json_line(r) for r in trainer.metrics_rows))
    max_steps, save_steps = trainer.t.max_steps, trainer.t.save_steps
    pbar = progress_bar(total=max_steps, initial=trainer.step, desc=desc, disable=not (progress and main))
    try:
        with open(metrics_path if main else os.devnull, "a", encoding="utf-8") as metrics_file:
            while trainer.step < max_steps:
                row = trainer._optimizer_step()
                metrics_file.write(json_line(row))
                metrics_file.flush()
                if main:
                    stream(row)  # report_to's trackers, after metrics.jsonl has the row (repro/trackers.py)
                pbar.update(1)
                pbar.set_postfix(**postfix(row), refresh=False)
                if save_steps and trainer.step % save_steps == 0:  # every rank: FSDP gathers the weights
                    trainer._save(trainer.out_dir / "ckpt")
    finally:
        pbar.close()
