"""Lite PPO composed from the core: the online RL loop (the group filter is `train.dynamic_sampling`'s).

Its two tricks are loss axes: group-mean advantages scaled by the batch-level std
(`train.scale_rewards: batch`) and the token-level loss (`train.loss_type: dapo` → global token mean).
The seed's batch arithmetic (4 per device, 8 steps per generation, 32 accumulation steps) runs as
written: one optimizer step accumulates GA / spg = 4 generations.
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, **parts)
