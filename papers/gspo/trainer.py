"""GSPO composed from the core: the online RL loop (the group filter is `train.dynamic_sampling`'s).

The sequence-level ratio is the loss axis `train.importance_sampling_level` (sequence = GSPO Eq. 7,
sequence_token = GSPO-token Eq. 13, token = the GRPO baseline); the clip ranges are train.epsilon /
train.epsilon_high, and the four off-policy mini-batches per rollout are train.steps_per_generation.
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, **parts)
