"""GFPO composed from the core: the online RL loop (the group filter is `train.dynamic_sampling`'s).

GFPO's filter is a loop option, not a group filter: `train.num_generations` completions are sampled per
prompt, `train.gfpo_retain` = k of them are kept by `train.gfpo_score` (length: shortest; reward_per_token:
highest reward per token), and advantages are computed over the kept k
(repro/trainers/group_filter.py::retain_top_k; the test that each group keeps its own best k is in
tests/test_online_rl.py).
"""

from __future__ import annotations

from typing import Any

from repro.config import RunConfig
from repro.trainers.online_rl import OnlineRLTrainer


def build_trainer(cfg: RunConfig, **parts: Any) -> OnlineRLTrainer:
    return OnlineRLTrainer(cfg, **parts)
