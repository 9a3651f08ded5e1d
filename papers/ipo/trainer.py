"""IPO composed from the core: the offline preference loop with the `ipo` loss (Eq. 17, TRL's form).

ℓ = (ρ_c/|y_c| − ρ_r/|y_r| − 1/(2β))² with ρ = log π − log π_ref summed over completion tokens; β plays the
role of τ (Eq. 6). TRL length-normalises the log-ratios (the paper's Eq. 17 does not): README "Faithfulness".
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
