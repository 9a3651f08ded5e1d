"""The char tokenizer and tiny Llama: vocabulary, round trips through disk, and load_policy."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from repro.models.loading import load_policy
from repro.models.tiny import SPECIALS, build_char_tokenizer, build_tiny_model, save_tiny
from repro.schema import ConfigError

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
TRICKY = "<|im_start|>user\nHi there  12+3=\t$x$ 50% & #7 @a ^b ~c |d `e` \\frac{1}{2}\n\n<|im_end|>"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny"), **SMALL)


def test_vocabulary_is_specials_then_one_token_per_printable_character() -> None:
    tok = build_char_tokenizer()
    assert len(tok) == 6 + 95 + 2  # specials, printable ASCII 32..126, newline and tab
    assert tok.convert_tokens_to_ids(SPECIALS) == [0, 1, 2, 3, 4, 5]
    assert (tok.pad_token, tok.unk_token, tok.bos_token, tok.eos_token) == (
        "<|pad|>",
        "<|unk|>",
        "<|bos|>",
        "<|im_end|>",
    )
    assert tok.padding_side == "left"
    for ch in string.printable:  # includes $ % & # @ ^ ~ | ` and backslash
        if ch in "\r\x0b\x0c":
            continue
        assert len(tok(ch, add_special_tokens=False)["input_ids"]) == 1, repr(ch)
    assert tok.unk_token_id not in tok(string.printable[:-3], add_special_tokens=False)["input_ids"]
    assert tok("123+456=", add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids(c) for c in "123+456="]
    assert tok("7")["input_ids"] == [tok.convert_tokens_to_ids("7")]  # no BOS/EOS added


def test_special_tokens_are_single_ids_and_chat_template_is_exact() -> None:
    tok = build_char_tokenizer()
    assert tok("<|im_start|>a<|im_end|>", add_special_tokens=False)["input_ids"] == [
        4,
        tok.convert_tokens_to_ids("a"),
        5,
    ]
    text = tok.apply_chat_template([{"role": "user", "content": "12+34="}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\n12+34=<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_round_trips_whitespace_after_save_and_auto_reload(saved: Path) -> None:
    tok = AutoTokenizer.from_pretrained(saved)
    ids = tok(TRICKY, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == TRICKY
    assert ids == build_char_tokenizer()(TRICKY, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == TRICKY.removeprefix("<|im_start|>").removesuffix("<|im_end|>")
    assert tok.padding_side == "left" and tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>"


def test_default_model_is_a_tied_llama_of_hand_counted_size() -> None:
    tok = build_char_tokenizer()
    model = build_tiny_model(tok)
    assert isinstance(model, LlamaForCausalLM) and model.config.model_type == "llama"
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    h, f, layers, v = 128, 512, 4, len(tok)
    per_layer = 4 * h * h + 3 * h * f + 2 * h  # q,k,v,o + gate,up,down + two RMSNorms
    assert sum(p.numel() for p in model.parameters()) == v * h + layers * per_layer + h == 1_062_912
    g = model.generation_config
    assert (g.eos_token_id, g.pad_token_id) == (tok.eos_token_id, tok.pad_token_id) == (5, 0)


def test_model_init_depends_only_on_the_seed() -> None:
    tok = build_char_tokenizer()
    a, b, c = (build_tiny_model(tok, seed=s, **SMALL) for s in (3, 3, 4))
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_model_reloads_from_disk_with_identical_logits(saved: Path) -> None:
    model = build_tiny_model(build_char_tokenizer(), **SMALL)  # save_tiny used seed 0 too
    reloaded, tok = load_policy(str(saved))
    assert isinstance(reloaded, LlamaForCausalLM)
    ids = torch.tensor([tok("12+34=", add_special_tokens=False)["input_ids"]])  # [1, 6]
    expected = model(ids).logits  # [1, 6, V]
    assert expected.shape == (1, 6, len(tok))
    assert torch.equal(expected, reloaded(ids).logits)


def test_load_policy_sets_pad_to_eos_and_left_padding(tmp_path: Path) -> None:
    tok = build_char_tokenizer()
    tok.pad_token = None
    tok.padding_side = "right"
    build_tiny_model(build_char_tokenizer(), **SMALL).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, loaded = load_policy(str(tmp_path), dtype="bfloat16")
    assert loaded.pad_token == "<|im_end|>" and loaded.pad_token_id == loaded.eos_token_id
    assert loaded.padding_side == "left"
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16


def test_load_policy_errors_are_clear(monkeypatch: pytest.MonkeyPatch, saved: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy("./no/such/model")
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy("~/no/such/model")
    with pytest.raises(ConfigError, match="model.dtype 'fp8'"):
        load_policy(str(saved), dtype="fp8")


def test_missing_hub_model_offline_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match=r"not available offline.*local directory"):
        load_policy("repro-test/definitely-not-cached-model")


def test_cast_lm_head_to_fp32_computes_logits_in_float32() -> None:
    from transformers import LlamaConfig

    from repro.models.loading import cast_lm_head_to_fp32

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, tie_word_embeddings=False)  # fmt: skip
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    ids = torch.tensor([[1, 5, 7, 9]])
    hidden = model.model(input_ids=ids).last_hidden_state  # [1, 4, 16] bf16
    assert cast_lm_head_to_fp32(model) is True
    assert model.lm_head.weight.dtype == torch.float32 and model.model.embed_tokens.weight.dtype == torch.bfloat16
    logits = model(input_ids=ids).logits  # [1, 4, 40]
    assert logits.dtype == torch.float32
    expected = hidden.float() @ model.lm_head.weight.T  # the bf16 trunk's output, projected in fp32
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-6)
    bf16_logits = (hidden @ model.lm_head.weight.to(torch.bfloat16).T).float()
    assert not torch.equal(logits, bf16_logits)  # the bf16 head would round differently


def test_cast_lm_head_to_fp32_on_float32_or_tied_models() -> None:
    from repro.models.loading import cast_lm_head_to_fp32

    tied = build_tiny_model(build_char_tokenizer(), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2)  # fmt: skip
    assert cast_lm_head_to_fp32(tied) is False  # float32 already: nothing to cast
    with pytest.raises(ConfigError, match="not tied"):
        cast_lm_head_to_fp32(tied.to(torch.bfloat16))
