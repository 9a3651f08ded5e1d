"""AlphaPO composed from the core: the offline preference loop with the reference-free `alphapo` loss.

The loss is `train.loss_type: alphapo` (repro/losses/preference.py, TRL's CPOTrainer `simpo` with `cpo_alpha=0`):
the α-reward r = (1 − e^{−α·π̄})/α of the length-averaged log-prob π̄, SimPO's margin γ/β, α = `train.alpha`.
The loss needs no reference; the reference log-probs are still precomputed (`train.precompute_ref_log_probs`)
so that the likelihood-displacement metrics ρ = log π − log π_ref are logged.
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
