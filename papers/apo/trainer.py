"""APO composed from the core: the offline preference loop with the `apo_zero` / `apo_down` losses
(arXiv 2408.06266 §3, Eq. 7 and 8).

APO-zero: ℓ = (1 − σ(βρ_c)) + σ(βρ_r) (raise y_c, lower y_r, each anchored at the reference); APO-down:
ℓ = σ(βρ_c) + (1 − σ(β(ρ_c − ρ_r))) (lower y_c, and y_r more). The loss is `train.loss_type`; the reference
log-probs are precomputed from the SFT policy.
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
