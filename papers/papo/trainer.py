"""PAPO composed from the core: the online RL loop (PAPO-G, GRPO as the base; the group filter is
`train.dynamic_sampling`'s).

The implicit perception loss and the double entropy loss are config keys in TRL's PAPOConfig vocabulary
(train.perception_loss_weight, mask_ratio, mask_type, der_loss_weight1, der_loss_weight2); the loop adds
them for a vision-language policy (repro/trainers/perception.py, repro/losses/perception.py). Nothing is
subclassed: with every weight 0 the same loop is GRPO and only measures the perception KL.
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, **parts)
