"""TIS composed from the core: the online RL loop with DAPO's group filter when `train.dynamic_sampling` asks for it.

The rollout policy is the rollout backend (`train.rollout_backend`: vllm at the paper tier, `hf_mismatch`
at smoke: a bf16 round trip of the weights plus relative noise, re-derived after every step). The
correction ρ = π_train/π_rollout, truncated at C, is `train.rollout_correction: token_truncate` with
`train.rollout_correction_clip_max` (repro/losses/rollout_correction.py).
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, **parts)
