"""The one set of tokens that ends a sampled completion, used by training rollouts, evaluation and benchmarks alike.

A checkpoint says where a reply ends in three places that need not agree: the tokenizer's eos, the model's
`generation_config.eos_token_id` (an int or a list), and the chat template, which closes an assistant turn with
its own token. Qwen2.5 base models ship eos `<|endoftext|>`, a ChatML template that ends turns with `<|im_end|>`,
and `generation_config.eos_token_id = [<|im_end|>, <|endoftext|>]`; a sampler that stops only at the tokenizer's
eos runs every chat completion to the length limit. The stop set is the union of the three, the tokenizer's eos
first (it stays the padding fallback and what training appends to completions, as in TRL).
"""

from __future__ import annotations

from typing import Any

from repro.schema import ConfigError

# A text no template rewrites and no tokenizer merges with what follows: where the assistant's reply ends.
_REPLY_MARK = "\u2060repro-reply\u2060"


def template_end_of_turn(tokenizer: Any) -> str | None:
    """The special token the chat template puts right after an assistant reply (`<|im_end|>` for ChatML,
    `<|eot_id|>` for Llama 3, `<end_of_turn>` for Gemma), or None without a template or such a token."""
    cached = getattr(tokenizer, "_repro_end_of_turn", False)
    if cached is not False:
        return cached
    found = None
    if getattr(tokenizer, "chat_template", None):
        try:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": _REPLY_MARK}],
                tokenize=False,
            )
        except Exception:  # templates that refuse this conversation (roles, missing system) have no answer here
            text = ""
        after = text.split(_REPLY_MARK, 1)[1] if _REPLY_MARK in text else ""
        specials = set(getattr(tokenizer, "all_special_tokens", []) or []) | {
            t.content for t in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).values() if t.special
        }
        specials -= {tokenizer.unk_token, tokenizer.pad_token} - {
            tokenizer.eos_token
        }  # an unknown character ends nothing
        for token in tokenizer.tokenize(after.lstrip(" ")) if after else []:
            if token in specials:
                found = token
                break
            if token.strip() and token not in ("\n", "Ċ"):  # text before any special: no end-of-turn token
                break
    try:
        tokenizer._repro_end_of_turn = found
    except AttributeError:
        pass
    return found


def generation_eos_ids(source: Any) -> list[int]:
    """`eos_token_id` of a model's generation_config (or of a GenerationConfig) as a list (absent: empty)."""
    config = getattr(source, "generation_config", source)
    value = getattr(config, "eos_token_id", None) if config is not None else None
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list | tuple) else [int(value)]


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """Token ids that end a completion: the tokenizer's eos, the generation_config eos ids of `model` (a model, or
    a GenerationConfig read without the weights), the chat template's end-of-turn token; deduplicated, the
    tokenizer's eos first."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    ids += generation_eos_ids(model)
    end = template_end_of_turn(tokenizer)
    if end is not None:
        ids.append(int(tokenizer.convert_tokens_to_ids(end)))
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise ConfigError(
            "the tokenizer has no eos token, the model's generation_config no eos_token_id and the chat template "
            "no end-of-turn token: nothing would end a sampled completion. Set eos_token in tokenizer_config.json."
        )
    vocab = len(tokenizer)
    if bad := [
        i for i in ids if not 0 <= i < max(vocab, getattr(getattr(model, "config", None), "vocab_size", 0) or 0)
    ]:
        raise ConfigError(f"stop token ids {bad} are outside the vocabulary ({vocab} tokens); check the checkpoint")
    return ids


def stop_strings(tokenizer: Any, model: Any = None) -> list[str]:
    """The stop set as token strings (what lm-eval's `until` takes)."""
    return [tokenizer.convert_ids_to_tokens(i) for i in stop_token_ids(tokenizer, model)]


def checkpoint_generation_config(name_or_path: str) -> Any:
    """A checkpoint's GenerationConfig without its weights; None when it ships none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(name_or_path)
    except OSError:  # no generation_config.json
        return None
