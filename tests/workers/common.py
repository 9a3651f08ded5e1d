"""What the data-parallel workers share: 16 addition pairs (a preferred sum and a wrong one) and the raw config of a
short run. The workers run as scripts, so this directory is on their sys.path."""

from __future__ import annotations

from typing import Any


def addition_pairs() -> list[tuple[str, str, str, int]]:
    """(prompt, right answer, wrong answer, a) for 16 sums; `a` lets a worker derive per-pair extras (margins)."""
    return [(f"{a}+{b}=", str(a + b), str(a + b + 1 + a % 3), a) for a, b in zip(range(10, 42, 2), range(7, 39, 2))]


def short_run(trainer: str, model_dir: str, data: dict[str, Any], steps: int, per_device: int, **train: Any) -> dict:
    """The raw config of a `steps`-step run at learning rate 1e-2 without checkpoints."""
    return {
        "trainer": trainer,
        "model": {"name_or_path": model_dir},
        "data": data,
        "train": {"max_steps": steps, "learning_rate": 1e-2, "per_device_train_batch_size": per_device,
                  "save_steps": 0, **train},
    }  # fmt: skip


def launch_note(dp: Any, model: Any) -> str:
    """What the test checks the launch was: the number of processes, the strategy and whether the trained model's
    weights are FSDP shards (DTensor)."""
    sharded = any(type(p).__name__ == "DTensor" for p in model.parameters())
    return f"world {dp.world} {dp.strategy} sharded {sharded}\n"


def noisy_copy(model: Any, scale: float) -> Any:
    """A copy of `model` with seeded Gaussian noise of std `scale` added to every weight (a different fixed policy)."""
    import copy

    import torch

    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * torch.randn_like(p))
    return other
