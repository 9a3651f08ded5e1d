"""Shared fixtures: an offline tiny Llama model with a char-level tokenizer, saved to a local directory.

TRL re-loads the reference model from `config._name_or_path` when beta ≠ 0, so the model must live on
disk and be passed by path (reference §0.5). Built inline so these tests depend on nothing in repro.models.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import repro  # noqa: E402, F401  (pins CPU numerics before torch runs a kernel: repro/numerics.py)


def pytest_configure(config: pytest.Config) -> None:
    """The suite runs torch on one thread: on a busy 2-core machine two spinning OpenMP threads made a 0.7 s SFT
    run take 18–51 s. Multi-process tests (tests/workers) set their own."""
    import torch

    torch.set_num_threads(1)


SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>"]
CHARS = list("0123456789+-*/=() abcdefghijklmnopqrstuvwxyz.,?:")
CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


def build_char_tokenizer():
    """A char-level WordLevel tokenizer (one id per character) with pad/unk/bos/eos and a trivial template."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARS)}
    core = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_llama(vocab_size: int, pad_token_id: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        pad_token_id=pad_token_id,
    )
    return LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a saved tiny Llama (2 layers, hidden 16) and its char tokenizer; pass it to TRL as a string."""
    out: Path = tmp_path_factory.mktemp("tiny_llama")
    tok = build_char_tokenizer()
    model = build_tiny_llama(len(tok), tok.pad_token_id)
    model.config.bos_token_id = tok.bos_token_id
    model.config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


SHARED_MATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "math"


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A stand-in for a hub checkpoint (repro/models/standin.py): Qwen2 layout, byte-level BPE trained on the local
    GSM8K prompts, ChatML template ending turns with <|im_end|> while the tokenizer's eos is <|endoftext|>, a
    generation_config listing both, bf16 weights, taught to end its turns. Built once per session (~10 s)."""
    from repro.models.standin import build_standin

    if not (SHARED_MATH / "gsm8k_train.jsonl").is_file():
        pytest.skip("the stand-in's tokenizer trains on ../shared/data/math/gsm8k_train.jsonl, not beside the checkout")
    return str(build_standin(tmp_path_factory.mktemp("standin"), [SHARED_MATH / "gsm8k_train.jsonl"]))
