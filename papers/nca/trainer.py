"""NCA composed from the core: the offline preference loop with the `nca_pair` loss (arXiv 2402.05369, §4).

Pairwise NCA scores each response's own log-ratio, ℓ = −logσ(βρ_c) − ½logσ(−βρ_c) − ½logσ(−βρ_r), instead of the
margin ρ_c − ρ_r that DPO (the `dpo` variant; InfoNCA with K = 2) scores. The loss is `train.loss_type`, β is
`train.beta`, and the reference log-probs are precomputed from the SFT policy.
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
