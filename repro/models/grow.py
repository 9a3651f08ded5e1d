"""Depth growth of a tiny Llama: a larger model that starts as a prepared smaller one.

The smoke-tier distillation teacher (configs/base/smoke_teacher.yaml) is the prepared student's 4 layers plus
new layers appended on top, then trained further by SFT. Each new layer is a randomly initialised decoder layer
whose two residual-branch output projections (attention o_proj, MLP down_proj) are zero, so the grown model
computes exactly the source model's function at the start (function-preserving growth, as in Net2Net-style
stacking) and the extra SFT steps decide what the new layers add. A 2.4M-parameter teacher trained from scratch
for 1,400 steps reached only 49% sampled accuracy at the smoke recipe's lr (papers/on_policy_distillation/README.md).
"""

from __future__ import annotations

import copy
from typing import Any

import torch


def grow_depth(source: Any, num_hidden_layers: int, seed: int = 0) -> Any:
    """A copy of `source` (a LlamaForCausalLM) with layers appended up to `num_hidden_layers`, same function."""
    from transformers import LlamaForCausalLM

    have = source.config.num_hidden_layers
    if num_hidden_layers < have:
        raise ValueError(f"cannot grow a {have}-layer model to {num_hidden_layers} layers")
    config = copy.deepcopy(source.config)
    config.num_hidden_layers = num_hidden_layers
    if getattr(config, "layer_types", None) is not None:  # transformers 5 keeps one attention type per layer
        config.layer_types = list(config.layer_types[:1]) * num_hidden_layers
    torch.manual_seed(seed)
    grown = LlamaForCausalLM(config)  # new layers: the model's own initialisation
    missing, unexpected = grown.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(not k.startswith("model.layers.") for k in missing):
        raise ValueError(f"source and grown model disagree beyond the new layers: {unexpected or missing}")
    with torch.no_grad():
        for layer in grown.model.layers[have:]:
            layer.self_attn.o_proj.weight.zero_()  # the attention branch adds 0 to the residual stream
            layer.mlp.down_proj.weight.zero_()  # and so does the MLP branch: the layer is the identity
    grown.generation_config = copy.deepcopy(source.generation_config)
    return grown
