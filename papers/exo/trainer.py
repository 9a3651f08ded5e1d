"""EXO composed from the core: the offline preference loop with the `exo_pair` loss (arXiv 2402.00856 Eq. 16).

EXO-pref for K = 2 minimises KL(q_θ ‖ p_ε), the reverse KL from the policy's pairwise preference distribution
q_θ = (σ(βΔ), σ(−βΔ)) to the smoothed label p_ε = (1−ε, ε); DPO (the `dpo` variant) minimises the forward
cross-entropy −log σ(βΔ). The loss is `train.loss_type`, ε is `train.label_smoothing` (1e-3 when unset), and the
reference log-probs are precomputed from the SFT policy (`train.precompute_ref_log_probs`).
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
