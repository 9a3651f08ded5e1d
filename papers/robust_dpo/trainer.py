"""Robust DPO (rDPO) composed from the core: the offline preference loop with the `robust` loss.

The loss is `train.loss_type` (repro/losses/preference.py: `robust` is the de-biased loss
[−(1−ε)logσ(βΔ) + ε·logσ(−βΔ)]/(1−2ε) with ε = `train.label_smoothing`, the assumed flip rate); the noisy
training labels come from `data.label_flip` (repro/data/preference_synthetic.py::make_pairs), held-out labels
are never flipped. Reference log-probs are precomputed from the SFT policy (`train.precompute_ref_log_probs`).
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
