"""BCO composed from the core: the offline preference loop with paired `bco_pair` or unpaired BCO.

Paired (`train.loss_type: bco_pair`, TRL 1.16's DPOTrainer loss): −log σ(βρ_c) − log σ(−βρ_r), no shift.
Unpaired (`train.loss_type: bco_unpaired` with `data.format: unpaired`; TRL's experimental BCOTrainer, removed
in TRL 1.16): one thumbs-up/down row per completion (desirable when the gold reward ≥ `data.thumbs_up_threshold`),
r = β(log π − log π_ref), loss −log σ(r − δ) for desirable rows and −log σ(−(r − δ)) for undesirable ones, with
δ the running mean of all rewards updated with the batch before use (repro/losses/preference.py::bco_unpaired_loss,
RunningMoments). Reference log-probs are precomputed from the SFT policy (`train.precompute_ref_log_probs`).
"""

from __future__ import annotations

from typing import Any

from repro.preference_config import PreferenceRunConfig
from repro.trainers.preference import PreferenceTrainer


def build_trainer(cfg: PreferenceRunConfig, **parts: Any) -> PreferenceTrainer:
    return PreferenceTrainer(cfg, **parts)
