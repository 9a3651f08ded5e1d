"""AOT composed from the core: the offline preference loop with the `aot` (paired) or `aot_pair` (unpaired) loss.

The loss is `train.loss_type` (repro/losses/preference.py), β is `train.beta`, and the reference log-probs
are precomputed from the SFT policy before training (`train.precompute_ref_log_probs`).
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
