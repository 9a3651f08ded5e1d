"""RLOO composed from the core: the online RL loop (the group filter is `train.dynamic_sampling`'s).

The leave-one-out baseline is the advantage estimator (`train.loss_type: rloo` → `leave_one_out`),
the KL penalty goes into the reward before the baseline (`train.kl_in_reward`, β = `train.beta`), and
the split-half gradient variance behind the variance claim is `train.grad_variance_every`.
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, **parts)
