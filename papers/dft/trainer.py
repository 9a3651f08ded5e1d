"""DFT composed from the core: the SFT loop with the per-token loss −sg(p)·log p (`train.loss_type: dft`).

The loss is `repro/losses/sft.py::dft` (TRL 1.16's SFTTrainer loss_type="dft"); the control variant `sft` is the
same loop with `nll`.
"""

from __future__ import annotations

from typing import Any

from repro.sft_config import SFTRunConfig
from repro.trainers.sft_loop import SFTTrainer


def build_trainer(cfg: SFTRunConfig, **parts: Any) -> SFTTrainer:
    return SFTTrainer(cfg, **parts)
