"""Centred reward model composed from the core: TRL's RewardTrainer loss with the centring term (Eq. 2).

`train.center_rewards_coefficient` is η in −log σ(r_c − r_r) + η·(r_c + r_r)² (repro/losses/reward_model.py); the
loop is repro/trainers/reward_model.py (a one-output sequence classifier on the starting checkpoint).
"""

from __future__ import annotations

from typing import Any

from repro.reward_model_config import RewardRunConfig
from repro.trainers.reward_model import RewardModelTrainer


def build_trainer(cfg: RewardRunConfig, **parts: Any) -> RewardModelTrainer:
    return RewardModelTrainer(cfg, **parts)
