"""BEMA (arXiv 2508.00180) and the plain EMA it corrects, as pure updates of parameter tensors.

TRL 1.16's BEMACallback schedule, step for step (reference §3.5). With t the **absolute** optimizer step (TRL's
`state.global_step`, ≥ 1 at the first call):

- before training: θ₀ and the EMA are the pre-training weights; the BEMA iterate is the initial model;
- t < τ: nothing; t = τ (only reachable for τ ≥ 1): θ₀ ← θ_t and EMA ← θ_t (the BEMA iterate is not written);
- otherwise, when (t − τ) mod φ = 0:
      β_t = max((ρ + γt)^−κ, min_ema_multiplier),  α_t = (ρ + γt)^−η
      EMA ← (1 − β_t)·EMA + β_t·θ_t
      θ′_t = EMA + α_t·(θ_t − θ₀)                      (the BEMA iterate)

Between updates both averaged iterates keep their last value. The plain EMA (η → ∞, α = 0) is the EMA buffer
itself, so it is compared with BEMA on the very same β schedule. The authors' code (github.com/abblock/bema,
src/core_online.py) differs in two places, where TRL is followed: it uses t = step − τ + ρ inside (1 + γt).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch

from repro.sft_config import BemaConfig

Action = Literal["skip", "snapshot", "update", "idle"]


def ema_beta(cfg: BemaConfig, t: int) -> float:
    """β_t = max((ρ + γt)^−κ, min_ema_multiplier); κ = 0 gives β = 1 (the EMA is θ_t itself)."""
    return max((cfg.lag + cfg.multiplier * t) ** (-cfg.ema_power), cfg.min_ema_multiplier)


def bema_alpha(cfg: BemaConfig, t: int) -> float:
    """α_t = (ρ + γt)^−η; η = 0 gives α = 1."""
    return (cfg.lag + cfg.multiplier * t) ** (-cfg.bias_power)


def schedule_action(cfg: BemaConfig, t: int) -> Action:
    """What TRL's `on_step_end` does at global step t."""
    if t < cfg.update_after:
        return "skip"
    if t == cfg.update_after:
        return "snapshot"
    return "update" if (t - cfg.update_after) % cfg.update_freq == 0 else "idle"


class BemaAverager:
    """θ₀, the EMA and the BEMA iterate θ′ of a list of trainable parameters (each a detached copy)."""

    NAMES = ("theta0", "ema", "bema")

    def __init__(self, cfg: BemaConfig, params: Iterable[torch.Tensor]) -> None:
        start = [p.detach().clone() for p in params]  # the pre-training weights (TRL's on_train_begin)
        self.cfg = cfg
        self.theta0 = [p.clone() for p in start]
        self.ema = [p.clone() for p in start]
        self.bema = [p.clone() for p in start]  # TRL's running_model: the initial model until the first update
        self.updates: list[int] = []  # the steps at which the iterates were updated

    @torch.no_grad()
    def on_step_end(self, t: int, params: Sequence[torch.Tensor]) -> Action:
        action = schedule_action(self.cfg, t)
        if action == "snapshot":
            for theta, theta0, ema in zip(params, self.theta0, self.ema, strict=True):
                theta0.copy_(theta)
                ema.copy_(theta)
        elif action == "update":
            beta, alpha = ema_beta(self.cfg, t), bema_alpha(self.cfg, t)
            for theta, theta0, ema, out in zip(params, self.theta0, self.ema, self.bema, strict=True):
                ema.mul_(1 - beta).add_(theta.detach(), alpha=beta)  # EMA ← (1 − β)·EMA + β·θ_t
                out.copy_(ema + alpha * (theta.detach() - theta0))  # θ′ = EMA + α·(θ_t − θ₀)
            self.updates.append(t)
        return action

    def iterate(self, name: Literal["ema", "bema"]) -> list[torch.Tensor]:
        return self.ema if name == "ema" else self.bema

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Flat {"<buffer>.<i>": tensor} for a checkpoint."""
        return {f"{n}.{i}": t for n in self.NAMES for i, t in enumerate(getattr(self, n))}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], updates: list[int]) -> None:
        for n in self.NAMES:
            for i, t in enumerate(getattr(self, n)):
                t.copy_(tensors[f"{n}.{i}"])
        self.updates = list(updates)


def trainable_parameters(model: torch.nn.Module) -> list[torch.Tensor]:
    """The parameters BEMA averages, in TRL's order: `named_parameters()` (tied weights once) that require grad."""
    return [p for _, p in model.named_parameters() if p.requires_grad]


@torch.no_grad()
def load_iterate(model: torch.nn.Module, tensors: Sequence[torch.Tensor]) -> torch.nn.Module:
    """Write an averaged iterate into `model` (a scratch copy of the policy) and return it."""
    for p, value in zip(trainable_parameters(model), tensors, strict=True):
        p.copy_(value)
    return model
