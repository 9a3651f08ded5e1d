"""ScaleRL composed from the core: the online RL loop with zero-variance filtering.

CISPO is the loss preset `cispo` (stop-gradient truncated IS weight × log-prob, cap `train.epsilon_high`),
batch-level advantage normalisation is `train.scale_rewards: batch`, the FP32 LM head is
`train.cast_lm_head_to_fp32` (repro/models/loading.py), and zero-variance filtering is DAPO's dynamic
sampling group filter, which the core picks from `train.dynamic_sampling`. The sigmoidal compute-performance fit is drawn by
the report from `paper.yaml: scaling_fit` (repro/report/scaling_fit.py).
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, **parts)
