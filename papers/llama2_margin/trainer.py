"""Llama 2's margin ranking loss composed from the core: −log σ(r_c − r_r − m(rating)) (§3.2.2, Eq. 2).

`data.margin` picks m from the pair's 4-level rating (Table 27: llama2_small, llama2_large; repro/data/reward_pairs.py);
the loss is repro/losses/reward_model.py and the loop repro/trainers/reward_model.py.
"""

from __future__ import annotations

from typing import Any

from repro.reward_model_config import RewardRunConfig
from repro.trainers.reward_model import RewardModelTrainer


def build_trainer(cfg: RewardRunConfig, **parts: Any) -> RewardModelTrainer:
    return RewardModelTrainer(cfg, **parts)
