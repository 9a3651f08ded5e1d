"""Lite PPO composed from the core: the online RL loop with no group filter.

Its two tricks are loss axes: group-mean advantages scaled by the batch-level std
(`train.scale_rewards: batch`) and the token-level loss (`train.loss_type: dapo` → global token mean).
The seed's batch arithmetic (4 per device, 8 steps per generation, 32 accumulation steps) runs as
written: one optimizer step accumulates GA / spg = 4 generations.
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.group_filter import GROUP_FILTERS
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, group_filter=GROUP_FILTERS.get("none"), **parts)
