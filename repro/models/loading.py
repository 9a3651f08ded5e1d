"""Load a policy and its tokenizer from a local directory or a hub id, through from_pretrained."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from repro.schema import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TRUTHY = {"1", "true", "yes", "on"}  # what huggingface_hub accepts for HF_HUB_OFFLINE


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUTHY


def load_policy(name_or_path: str, dtype: str = "float32", trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) for a local directory or a hub id; pad = EOS when missing, left padding.

    A path that looks local (starts with '.', '/', '~' or has more than one '/') must exist. A hub id
    passes through to from_pretrained; offline, a model missing from the cache is a ConfigError. A
    vision-language checkpoint loads as AutoModelForImageTextToText (its processor: models/vision.py).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    from repro.models.vision import is_vision_language

    if dtype not in DTYPES:
        raise ConfigError(f"model.dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    source, is_local = _source(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        auto = AutoModelForImageTextToText if is_vision_language(config) else AutoModelForCausalLM
        model = auto.from_pretrained(source, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code)
    except OSError as e:
        if not is_local and hub_offline():
            raise ConfigError(
                f"model {name_or_path!r} is not available offline (HF_HUB_OFFLINE=1) and is not in the local cache. "
                "Point model.name_or_path at a local directory holding the weights and tokenizer, "
                "or run where the hub is reachable."
            ) from e
        raise
    return model, _padded(tokenizer)


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer `load_policy` would return, without the weights (to read data before a large model loads)."""
    from transformers import AutoTokenizer

    source, _ = _source(name_or_path)
    return _padded(AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code))


def _source(name_or_path: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether it is a local path). A path that looks local must exist."""
    expanded = os.path.expanduser(name_or_path)
    is_local = Path(expanded).exists()
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.strip("/").count("/") > 1
    if not is_local and looks_local:
        raise ConfigError(f"model path {name_or_path!r} does not exist")
    return (expanded if is_local else name_or_path), is_local


def _padded(tokenizer: Any) -> Any:
    """Pad = EOS when the tokenizer has none; left padding (generation)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def cast_lm_head_to_fp32(model: torch.nn.Module) -> bool:
    """ScaleRL (arXiv 2510.13786 §3.2, "FP32 precision at the LM head"; TRL's cast_lm_head_to_fp32).

    The output projection's weights become float32 and its input is upcast, so logits and log-probs are
    computed in float32 while the rest of the network runs in model.dtype. Returns whether anything was
    cast (a float32 model already computes its logits in float32). A head tied to the input embeddings
    cannot be cast alone: that is an error, as in TRL.
    """
    head = model.get_output_embeddings()
    if head is None:
        raise ConfigError("train.cast_lm_head_to_fp32: the model has no output embedding (LM head) to cast")
    if head.weight.dtype == torch.float32:
        return False
    if getattr(model.config, "tie_word_embeddings", False):
        raise ConfigError(
            "train.cast_lm_head_to_fp32 needs an LM head not tied to the input embeddings "
            "(config.tie_word_embeddings is true); use a model with an untied head or load it in float32"
        )
    head.float()
    head.register_forward_pre_hook(lambda _module, args: tuple(a.float() if torch.is_tensor(a) else a for a in args))
    return True
