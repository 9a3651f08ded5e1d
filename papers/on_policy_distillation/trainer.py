"""On-policy distillation composed from the core: the distillation loop with the generalised JSD by name.

λ (`train.lmbda`) picks student rollouts, β (`train.beta`) the divergence (1: reverse KL, the blog's per-token
objective), `train.gold` GOLD's loss temperature, `train.loss_type: sft` with `seq_kd` the SFT-on-teacher-samples
baseline (repro/trainers/distillation.py, repro/losses/distillation.py).
"""

from __future__ import annotations

from typing import Any

from repro.distillation_config import DistillationRunConfig
from repro.trainers.distillation import DistillationTrainer


def build_trainer(cfg: DistillationRunConfig, **parts: Any) -> DistillationTrainer:
    return DistillationTrainer(cfg, **parts)
