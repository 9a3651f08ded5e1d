"""Dr. GRPO composed from the core: the online RL loop (the group filter is `train.dynamic_sampling`'s).

Both of the paper's fixes are loss axes of the `dr_grpo` preset: the advantage is r − mean without the
std (`scale_rewards: none`) and the loss is summed over tokens and divided by a constant
(`aggregation: constant_length`, B · L_max). The loop logs the mean length of correct and incorrect
responses per step (`len_correct`, `len_incorrect`) for the length-bias claim.
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, **parts)
