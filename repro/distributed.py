"""Data parallelism through accelerate: what a trainer needs to run under `accelerate launch` (DDP; FSDP and DeepSpeed
through accelerate's own config files at the paper tier).

Every rank draws the same global batch (the draw is a function of the seed and the step), keeps its contiguous
shard, and averages its loss over that shard; DDP's gradient all-reduce then averages over ranks, so with equal
shards the update is the one-process update of the global batch. Global quantities a loss or a metric needs (token
counts, batch statistics, filter counts) are reduced explicitly through `sum`, `mean` and `gather`. Only the main
rank writes files (metrics, checkpoints, the final model); the others wait for it at `barrier`.

Launched without accelerate (WORLD_SIZE unset or 1), `DataParallel.single()` is a no-op wrapper: one process, no
process group, nothing imported.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass
class DataParallel:
    accelerator: Any = None  # accelerate.Accelerator when launched on several processes

    @staticmethod
    def single() -> DataParallel:
        return DataParallel()

    @staticmethod
    def from_environment() -> DataParallel:
        """Under `accelerate launch` / torchrun (WORLD_SIZE > 1): an Accelerator (gloo on CPU, NCCL on GPUs)."""
        if launched_processes() <= 1:
            return DataParallel.single()
        from accelerate import Accelerator

        return DataParallel(Accelerator(cpu=not torch.cuda.is_available()))

    @property
    def world(self) -> int:
        return 1 if self.accelerator is None else self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return 0 if self.accelerator is None else self.accelerator.process_index

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list[T]) -> list[T]:
        """This rank's contiguous share of a global batch drawn identically on every rank."""
        if len(items) % self.world:
            raise ValueError(f"a global batch of {len(items)} does not split evenly over {self.world} processes")
        size = len(items) // self.world
        return items[self.rank * size : (self.rank + 1) * size]

    def wrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to run forward and backward through: DDP-wrapped under accelerate, else `model` itself.
        The optimizer, checkpoints and saved weights keep using `model` (the same parameters)."""
        return model if self.accelerator is None else self.accelerator.prepare_model(model)

    def sum(self, value: float) -> float:
        if self.accelerator is None:
            return float(value)
        return float(self.accelerator.reduce(torch.tensor([float(value)]), reduction="sum")[0])

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's tensor concatenated along dim 0, in rank order (the one-process layout of the batch)."""
        return tensor if self.accelerator is None else self.accelerator.gather(tensor.contiguous())

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Like `gather`, for shares of different lengths along dim 0 (a micro-batch that does not split evenly)."""
        if self.accelerator is None:
            return tensor
        sizes = self.accelerator.gather(torch.tensor([tensor.size(0)], device=tensor.device)).tolist()  # [world]
        longest = max(sizes)
        padded = torch.nn.functional.pad(tensor, (0, 0) * (tensor.dim() - 1) + (0, longest - tensor.size(0)))
        everyone = self.accelerator.gather(padded.contiguous())  # [world · longest, ...]
        return torch.cat([everyone[r * longest : r * longest + n] for r, n in enumerate(sizes)])

    def gather_objects(self, value: T) -> list[T]:
        """Every rank's picklable `value`, in rank order (a rank's rollouts, whose tensor widths differ by rank)."""
        if self.accelerator is None:
            return [value]
        import torch.distributed as dist

        everyone: list[Any] = [None] * self.world
        dist.all_gather_object(everyone, value)
        return everyone

    def mean(self, stats: dict[str, float]) -> dict[str, float]:
        """Key-wise mean over ranks of per-rank means of equal shards (= the global mean); NaN where a rank had none
        is left out of its key's mean."""
        if self.accelerator is None:
            return stats
        keys = list(stats)  # the same order on every rank: they run the same code
        values = torch.tensor([[float(stats[k]), 1.0] for k in keys], dtype=torch.float64)  # [K, 2]
        present = ~torch.isnan(values[:, 0])
        values[:, 1] = present.double()
        values[:, 0] = torch.where(present, values[:, 0], torch.zeros_like(values[:, 0]))
        total = self.accelerator.reduce(values, reduction="sum")  # [K, 2] summed values, counts
        return {k: (float(total[i, 0] / total[i, 1]) if total[i, 1] else math.nan) for i, k in enumerate(keys)}

    def barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()


def launched_processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def require_single_process(kind: str) -> None:
    """Refuse a multi-process launch of a trainer kind that does not support it, before anything is loaded."""
    from repro.trainer_kinds import ONLINE_RL, TRAINER_KINDS, shards_batch

    if launched_processes() > 1 and not shards_batch(kind):
        from repro.schema import ConfigError

        sharding = [ONLINE_RL] + [name for name, k in TRAINER_KINDS.items() if k.data_parallel]
        raise ConfigError(
            f"this run was launched on {launched_processes()} processes, but the {kind} trainer does not shard its "
            f"batch yet (data parallel: {', '.join(sharding)}); run it as one process (python -m repro "
            "train ...)"
        )
