"""The vLLM rollout backend's place in the registry (TRL's `use_vllm: true` lands here).

vLLM cannot be installed on the CPU machines this project is built and tested on, and the backend
itself (colocated and server modes, weight sync, sampler log-probs) is not written yet. Naming it
lets paper-tier configs say what the paper ran and lets `snakemake -n` plan them anywhere; building
it fails with what to do instead. Smoke tiers use `hf` or `hf_mismatch`.
"""

from __future__ import annotations

from typing import Any

import torch

from repro.rollout.hf import BACKENDS
from repro.schema import ConfigError


@BACKENDS.register("vllm")
class VLLMRollout:
    def __init__(self, model: torch.nn.Module, tokenizer: Any, gpu_memory_utilization: float = 0.3) -> None:
        raise ConfigError(
            "train.rollout_backend: vllm (TRL use_vllm: true) is not implemented in this harness yet; "
            "run this tier with rollout_backend: hf (or hf_mismatch to emulate an inference engine's "
            "numerical mismatch), e.g. in the tier overlay"
        )
