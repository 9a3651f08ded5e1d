"""BEMA composed from the core: the SFT loop with the `bema:` block, which keeps the EMA and BEMA iterates of the
weights on TRL 1.16's BEMACallback schedule (repro/trainers/bema.py) and scores them beside the raw iterate.
"""

from __future__ import annotations

from typing import Any

from repro.sft_config import SFTRunConfig
from repro.trainers.sft_loop import SFTTrainer


def build_trainer(cfg: SFTRunConfig, **parts: Any) -> SFTTrainer:
    return SFTTrainer(cfg, **parts)
