"""DiscoPOP composed from the core: the offline preference loop with the `discopop` loss (LRML).

The loss is `train.loss_type` (repro/losses/preference.py): with z = β(ρ_c − ρ_r) and m = σ(z/τ),
f(z) = (1 − m)·(−log σ(z)) + m·e^{−z}, τ = `train.discopop_tau`; tests/test_preference_losses.py pins it by
hand and against TRL 1.16. Reference log-probs are precomputed from the SFT policy
(`train.precompute_ref_log_probs`).
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
