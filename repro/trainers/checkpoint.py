"""Training checkpoints, written to a temporary directory and swapped in whole.

A kill at any moment leaves either the previous complete checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from repro.distributed import DataParallel


def save_checkpoint(
    ckpt_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    tensors: dict[str, torch.Tensor] | None = None,
    dp: DataParallel | None = None,
) -> None:
    """`tensors`: a trainer's own buffers (e.g. BEMA's θ₀ and EMA), read back with `load_checkpoint_tensors`.
    Call it on every rank: under FSDP the whole weights and optimizer state are gathered; the main rank writes."""
    dp = dp or DataParallel.single()
    if not dp.is_main and not dp.shards_parameters:
        return
    model_state = dp.full_state_dict(model)  # collectives under FSDP
    optimizer_state = dp.optimizer_state(model, optimizer)
    if not dp.is_main:
        return
    tmp = ckpt_dir.with_name(ckpt_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous().clone() for k, v in model_state.items()}
    save_file(weights, tmp / "model.safetensors")  # clones: tied embeddings no longer share memory
    if tensors:
        save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, tmp / "extra.safetensors")
    torch.save(
        {"optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state()},
        tmp / "optim.pt",
    )
    (tmp / "state.json").write_text(json.dumps({**state, "python_rng": _py_rng_state()}), encoding="utf-8")
    old = ckpt_dir.with_name(ckpt_dir.name + ".old")
    if ckpt_dir.exists():
        ckpt_dir.rename(old)
    tmp.rename(ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    ckpt_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    dp: DataParallel | None = None,
) -> dict[str, Any] | None:
    """Restore a checkpoint if one exists (also one left as `.old` by a kill mid-swap); every rank reads it."""
    dp = dp or DataParallel.single()
    old = ckpt_dir.with_name(ckpt_dir.name + ".old")
    if dp.is_main and not ckpt_dir.exists() and old.exists():
        old.rename(ckpt_dir)
    dp.barrier()
    if not (ckpt_dir / "state.json").exists():
        return None
    dp.load_full_state_dict(model, load_file(ckpt_dir / "model.safetensors"))
    extra = torch.load(ckpt_dir / "optim.pt", weights_only=True)
    dp.load_optimizer_state(model, optimizer, extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["torch_rng"])
    state = json.loads((ckpt_dir / "state.json").read_text(encoding="utf-8"))
    version, internal, gauss = state.pop("python_rng")
    random.setstate((version, tuple(internal), gauss))
    # a rerun after a kill says where it picks up (the train log is what a user reads after a crash)
    print(f"resuming from the checkpoint in {ckpt_dir} at step {state.get('step', '?')}", file=sys.stderr, flush=True)
    return state


def load_checkpoint_tensors(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    """The `tensors` saved with the checkpoint in `ckpt_dir` (empty if none); call after `load_checkpoint`."""
    path = ckpt_dir / "extra.safetensors"
    return load_file(path) if path.is_file() else {}


def _py_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]
