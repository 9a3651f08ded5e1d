"""DAPO composed from the core: the online RL loop with DAPO's group filter.

Clip-higher, overlong filtering, the token-level loss and soft overlong punishment are config keys
(train.epsilon_high, train.mask_truncated_completions, train.loss_type=dapo,
rewards.soft_overlong_punishment); dynamic sampling is `train.dynamic_sampling` (the core picks the group
filter from it: repro/trainers/group_filter.py config_group_filter).
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, **parts)
