"""Vision-language plumbing shared by training, SFT and evaluation: the processor and its image inputs.

A vision-language checkpoint is a directory with a processor (image processor + tokenizer) beside the
weights. Text stays text: the processor expands each `<image>` placeholder into one token per image
feature, and the image becomes row-aligned model inputs (`pixel_values` [n, C, H, W]) that travel with
the prompt (RolloutBatch.extra_inputs) into `generate` and every log-prob forward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def is_vision_language(config: Any) -> bool:
    """True for a model config with a vision tower (LLaVA, Qwen2-VL, ...)."""
    return getattr(config, "vision_config", None) is not None


def load_processor(name_or_path: str) -> Any | None:
    """The checkpoint's processor (AutoProcessor) when it has one, else None (a text-only model)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir() and not any((path / f).is_file() for f in PROCESSOR_FILES):
        return None
    from transformers import AutoConfig, AutoProcessor

    if not path.is_dir() and not is_vision_language(AutoConfig.from_pretrained(name_or_path)):
        return None
    return AutoProcessor.from_pretrained(str(path) if path.is_dir() else name_or_path)


def encode_images(processor: Any, texts: list[str], images: list[Any]) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Texts with each image placeholder expanded as the processor does, and the row-aligned image inputs.

    `images` holds one repro.data.visual.Image (or an array / PIL image) per text, each text one placeholder.
    """
    if len(texts) != len(images):
        raise ValueError(f"one image per prompt: got {len(texts)} prompts and {len(images)} images")
    arrays = [im.to_array() if hasattr(im, "to_array") else im for im in images]
    inputs = processor.image_processor(arrays, return_tensors="pt")
    token = processor.image_token
    expanded = []
    for i, text in enumerate(texts):
        if text.count(token) != 1:
            raise ValueError(f"a visual prompt needs exactly one {token!r} placeholder: {text!r}")
        expanded.append(text.replace(token, processor.replace_image_token(inputs, i)))
    return expanded, {"pixel_values": inputs["pixel_values"]}  # [n, C, H, W]


def black_level(processor: Any) -> torch.Tensor:
    """Per-channel value of a black pixel after normalisation, (0 − mean) / std: what masking writes."""
    ip = processor.image_processor
    mean = torch.tensor(ip.image_mean, dtype=torch.float32)  # [C]
    std = torch.tensor(ip.image_std, dtype=torch.float32)  # [C]
    return -mean / std  # [C]


def vision_patch_size(processor: Any, model: Any = None) -> int:
    """The vision tower's patch size (the unit PAPO's masking blackens)."""
    size = getattr(processor, "patch_size", None)
    if size is None and model is not None:
        size = getattr(model.config.vision_config, "patch_size", None)
    if size is None:
        raise ValueError("cannot tell the vision patch size; set train.mask_patch_size")
    return int(size)
