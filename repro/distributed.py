"""Data parallelism through accelerate: what a trainer needs to run under `accelerate launch` (DDP; FSDP and DeepSpeed
through accelerate's own config files at the paper tier).

Every rank draws the same global batch (the draw is a function of the seed and the step), keeps its contiguous
shard, and averages its loss over that shard; DDP's gradient all-reduce then averages over ranks, so with equal
shards the update is the one-process update of the global batch. Global quantities a loss or a metric needs (token
counts, batch statistics, filter counts) are reduced explicitly through `sum`, `mean` and `gather`. Only the main
rank writes files (metrics, checkpoints, the final model); the others wait for it at `barrier`.

Two strategies (`resources.data_parallel`): `ddp` keeps a whole replica of the weights and the optimizer state on every
rank and averages gradients (accelerate's DDP wrapper); `fsdp` shards weights, gradients and optimizer state over the
ranks with PyTorch's FSDP2 (`fully_shard` on each transformer block, then the root), for models whose replica and
AdamW state do not fit one device. Under `fsdp` every forward is a collective: whatever runs the policy (generation,
monitors, checkpoints, the final save) runs on every rank, and whole weights are gathered (`full_state_dict`) for
checkpoints and the saved model.

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


STRATEGIES = ("ddp", "fsdp")


@dataclass
class DataParallel:
    accelerator: Any = None  # accelerate.Accelerator when launched on several processes
    strategy: str = "ddp"  # ddp | fsdp (STRATEGIES)

    @staticmethod
    def single() -> DataParallel:
        return DataParallel()

    @staticmethod
    def from_environment(strategy: str = "ddp") -> DataParallel:
        """Under `accelerate launch` / torchrun (WORLD_SIZE > 1): an Accelerator (gloo on CPU, NCCL on GPUs)."""
        if strategy not in STRATEGIES:
            raise ValueError(f"data-parallel strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
        if launched_processes() <= 1:
            return DataParallel.single()
        from accelerate import Accelerator

        return DataParallel(Accelerator(cpu=not torch.cuda.is_available()), strategy)

    @property
    def shards_parameters(self) -> bool:
        """FSDP on several processes: each rank holds a shard of every weight (forwards are collectives)."""
        return self.accelerator is not None and self.strategy == "fsdp"

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
        The optimizer, checkpoints and saved weights keep using `model` (the same parameters). Under FSDP `model` is
        sharded in place (its parameters become DTensor shards): build the optimizer after this call."""
        if self.accelerator is None:
            return model
        if self.strategy == "fsdp":
            return shard_parameters(model)
        return self.accelerator.prepare_model(model)

    def full_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The model's whole weights. Under FSDP a collective (every rank calls it) whose result is on the main rank
        only (the others get {})."""
        if not self.shards_parameters:
            return model.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_full_state_dict(self, model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
        """Load whole weights (every rank read the same file); under FSDP each rank keeps its shard."""
        if not self.shards_parameters:
            model.load_state_dict(weights)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True))

    def optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's whole state (under FSDP a collective, keyed by parameter name, on the main rank only)."""
        if not self.shards_parameters:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(model, optimizer, options=options)

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        if not self.shards_parameters:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))

    def sum(self, value: float) -> float:
        if self.accelerator is None:
            return float(value)
        return float(self.accelerator.reduce(torch.tensor([float(value)]), reduction="sum")[0])

    def sum_each(self, values: dict[str, float]) -> dict[str, float]:
        """Key-wise sums over ranks in one all-reduce (float64, so counts stay exact)."""
        if self.accelerator is None:
            return {k: float(v) for k, v in values.items()}
        keys = list(values)  # the same order on every rank: they run the same code
        total = self.accelerator.reduce(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64), "sum")
        return {k: float(total[i]) for i, k in enumerate(keys)}

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


def shard_parameters(model: torch.nn.Module) -> torch.nn.Module:
    """FSDP2 in place: each transformer block (the classes a Hugging Face model lists as `_no_split_modules`) is its own
    unit, so a forward gathers one block's weights at a time; then the root (embeddings, head)."""
    from torch.distributed.fsdp import fully_shard

    blocks = set(getattr(model, "_no_split_modules", None) or [])
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(model)
    return model


def scalar(value: Any) -> float:
    """A float from a tensor that may be a DTensor (FSDP's gradient norm is one)."""
    return float(value.full_tensor() if hasattr(value, "full_tensor") else value)


def launched_processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def require_sample_seeds(what: str, seeding: str, world: int) -> None:
    """Refuse a sampling trainer on several processes unless each prompt (group) is sampled from its own seed."""
    if world > 1 and seeding != "per_group":
        from repro.schema import ConfigError

        raise ConfigError(
            f"this {what} run was launched on {world} processes with train.rollout_seeding: {seeding}; set it to "
            "per_group, so that each prompt group is sampled from its own seed whichever process draws it (with one "
            "RNG stream per process the ranks would sample alike)"
        )


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
