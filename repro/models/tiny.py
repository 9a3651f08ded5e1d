"""Tiny models built locally: a character-level tokenizer and a ~1M-parameter Llama.

Llama, not Qwen2: transformers 5 reloads a tokenizer saved beside a `qwen2` config as
Qwen2Tokenizer, which drops spaces and newlines (cpu_feasibility.md §1). One token per character,
so digits never merge (a BPE makes addition much harder to learn, §1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<|pad|>", "<|unk|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"]
# Every printable ASCII character, so any template or benchmark text round-trips.
CHARS = [chr(c) for c in range(32, 127)] + ["\n", "\t"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_char_tokenizer(model_max_length: int = 256) -> PreTrainedTokenizerFast:
    """Char-level WordLevel tokenizer: 6 specials + printable ASCII + newline/tab (103 ids).

    EOS is <|im_end|> (what the chat template closes a turn with); no BOS/EOS is added automatically;
    padding is on the left for generation. The vocabulary order is fixed: saved checkpoints depend on it.
    """
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        additional_special_tokens=["<|im_start|>", "<|eos|>"],
        padding_side="left",
        model_max_length=model_max_length,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def llama_config(
    tokenizer: Any,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    max_position_embeddings: int,
) -> LlamaConfig:
    """The tiny Llama's config (tied embeddings, the tokenizer's special ids): the text model of both tiny policies."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden_size: int = 128,
    intermediate_size: int = 512,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 4,
    max_position_embeddings: int = 256,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised Llama with tied embeddings (1.06M parameters at the defaults), seeded."""
    config = llama_config(
        tokenizer, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, max_position_embeddings
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def save_tiny(out_dir: str | Path, **model_kwargs: int) -> Path:
    """Build the tokenizer and model (`model_kwargs` go to build_tiny_model) and save both into one directory."""
    out = Path(out_dir)
    tokenizer = build_char_tokenizer()
    build_tiny_model(tokenizer, **model_kwargs).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
