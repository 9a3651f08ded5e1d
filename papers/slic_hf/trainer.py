"""SLiC-HF composed from the core: the offline preference loop with the `hinge` loss (Eq. 1).

ℓ = max(0, 1 − β(ρ_c − ρ_r)) on reference-normalised log-likelihoods ρ = log π − log π_ref (TRL's hinge, as
RSO arXiv 2309.06657 writes SLiC); the margin is δ = 1/β (`train.beta`). The paper's cross-entropy
regulariser on SFT targets (λ) is not part of TRL's hinge and is not implemented (README "Faithfulness").
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
