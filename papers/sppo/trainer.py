"""SPPO composed from the core: the offline preference loop with the `sppo_hard` loss (Eq. 4.7, hard P).

ℓ = (ρ_c − 1/(2β))² + (ρ_r + 1/(2β))² with ρ = log π − log π_ref summed over completion tokens and β = 1/η.
The paper's self-play loop (sample K responses from the current policy, estimate P(y ≻ π_t) with PairRM,
iterate) is not part of the offline loop: training uses fixed pairs with P ∈ {0, 1} (README "Faithfulness").
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
