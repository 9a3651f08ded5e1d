"""PAPO composed from the core: the online RL loop with no group filter (PAPO-G, GRPO as the base).

The implicit perception loss and the double entropy loss are config keys in TRL's PAPOConfig vocabulary
(train.perception_loss_weight, mask_ratio, mask_type, der_loss_weight1, der_loss_weight2); the loop adds
them for a vision-language policy (repro/trainers/perception.py, repro/losses/perception.py). Nothing is
subclassed: with every weight 0 the same loop is GRPO and only measures the perception KL.
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.group_filter import GROUP_FILTERS
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, group_filter=GROUP_FILTERS.get("none"), **parts)
