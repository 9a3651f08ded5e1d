"""A tiny vision-language model built locally: LLaVA = a small CLIP vision tower + projector + the tiny Llama.

LLaVA because its image inputs are row-aligned (`pixel_values` [B, C, H, W]) and its language model takes
ordinary 1-D position ids, so the text loop's log-prob contract (left padding, position ids from the
attention mask) holds unchanged; Qwen2-VL's concatenated patches and 3-D rotary positions would not.
The tokenizer is the character tokenizer of repro/models/tiny.py plus one `<image>` token; the processor
(CLIP image processor + that tokenizer) expands `<image>` into one token per vision patch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

from repro.data.visual import IMAGE_TOKEN
from repro.models.tiny import build_char_tokenizer, llama_config


def build_vl_tokenizer(model_max_length: int = 256) -> Any:
    """The char tokenizer with `<image>` appended as a special token (id 103; the text ids are unchanged)."""
    tok = build_char_tokenizer(model_max_length)
    tok.add_tokens([IMAGE_TOKEN], special_tokens=True)  # one id, never split into characters, skipped on decode
    return tok


def build_vl_processor(tokenizer: Any, image_size: int = 28, patch_size: int = 7) -> LlavaProcessor:
    """CLIP normalisation at `image_size` (no resize for images of that size) + the tokenizer."""
    try:  # transformers 5 without torchvision: the PIL backend, named explicitly to avoid its fallback warning
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # pragma: no cover - older transformers
        from transformers import CLIPImageProcessor as ImageProcessor
    image_processor = ImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",  # drop CLS: one image token per patch
        num_additional_image_tokens=1,  # CLIP's CLS
        image_token=IMAGE_TOKEN,
    )


def build_tiny_vl_model(
    tokenizer: Any,
    *,
    hidden_size: int = 128,
    intermediate_size: int = 512,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 4,
    max_position_embeddings: int = 256,
    seed: int = 0,
    image_size: int = 28,
    patch_size: int = 7,
    vision_hidden_size: int = 64,
    vision_intermediate_size: int = 128,
    vision_layers: int = 2,
    vision_heads: int = 4,
) -> LlavaForConditionalGeneration:
    """Randomly initialised, seeded: 1.17M parameters at the defaults (the Llama of tiny.py + 0.1M of vision)."""
    vision = CLIPVisionConfig(
        hidden_size=vision_hidden_size,
        intermediate_size=vision_intermediate_size,
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_heads,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=vision_hidden_size,
    )
    text = llama_config(
        tokenizer, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, max_position_embeddings
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1,  # the last layer (a 2-layer tower has little below it)
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
        setattr(model.generation_config, key, getattr(tokenizer, key))
    # A sampled <image> would be a placeholder without features; the trainer scores the same suppressed
    # distribution (repro/trainers/logprobs.py), so sampler and trainer log-probs still agree.
    model.generation_config.suppress_tokens = [config.image_token_id]
    return model


def save_tiny_vl(out_dir: str | Path, image_size: int = 28, patch_size: int = 7, **model_kwargs: Any) -> Path:
    """Build the tokenizer, processor and model, and save all three into one directory (from_pretrained-able)."""
    out = Path(out_dir)
    tokenizer = build_vl_tokenizer()
    model = build_tiny_vl_model(tokenizer, image_size=image_size, patch_size=patch_size, **model_kwargs)
    model.save_pretrained(out)
    build_vl_processor(tokenizer, image_size, patch_size).save_pretrained(out)
    return out
