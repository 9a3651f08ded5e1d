"""A stand-in for a hub checkpoint, built locally in seconds: what the small tier runs on without a hub.

Built the way Qwen2.5 checkpoints ship, so that the loading path a researcher's own model takes is what runs:

- a `qwen2` config (transformers then reloads the tokenizer as Qwen2Tokenizer, as it does for real Qwen folders);
- a byte-level BPE tokenizer trained on the given text (the local math prompts), with Qwen2's pre-tokenizer, so
  the Qwen2Tokenizer rebuild reads back the same tokens; the specials `<|endoftext|>`, `<|im_start|>`,
  `<|im_end|>` are added after the learned vocabulary, as Qwen's are;
- a ChatML chat template with a default system message, whose turns end with `<|im_end|>`, while the
  tokenizer's eos is `<|endoftext|>` (Qwen2.5 base models) and `generation_config.json` lists both
  (`eos_token_id: [<|im_end|>, <|endoftext|>]`), so a sampler that stops only at the tokenizer's eos runs every
  completion to the length limit;
- bfloat16 weights.

`sft_steps` > 0 first teaches the random model, on ChatML conversations of the same problems, to answer briefly
and end its turn with `<|im_end|>` (as an instruct model does), so completions have varied lengths and sampling
stops at the template's end token. It is not meant to solve anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# The tokenizer's text when none is given: the GSM8K and MATH-500 copies shipped in the repository (data/SOURCES.md),
# found from the package's checkout so any working directory will do. They are evaluation sets, but the stand-in
# only exercises the plumbing (60 steps teaching a ~100k-parameter model to end its turns); pass training files
# (e.g. <data_dir>/math/gsm8k_train.jsonl) where that matters.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = (PROJECT_ROOT / "data/math/gsm8k.jsonl", PROJECT_ROOT / "data/math/math500.jsonl")
DEFAULT_SYSTEM = "You are a helpful assistant."
# Qwen2.5-Instruct's template, reduced to plain messages: a default system turn when the conversation has none.
CHATML_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class StandinSpec:
    vocab_size: int = 512  # learned BPE tokens (the three specials come on top)
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2  # grouped-query attention, as Qwen2.5
    max_position_embeddings: int = 4096  # the small tier's 512-token prompts + 2048-token completions fit
    sft_steps: int = 60  # enough to end most replies with <|im_end|> (measured: all 16 samples of a held-out prompt)
    sft_batch_size: int = 8
    sft_learning_rate: float = 3e-3
    seed: int = 0


def corpus_rows(paths: Iterable[Path], limit_per_file: int = 4000) -> Iterator[dict[str, Any]]:
    """The first rows of each JSON Lines file that have a `problem` and an `answer`."""
    for path in paths:
        with Path(path).open(encoding="utf-8") as handle:
            kept = 0
            for line in handle:
                row = json.loads(line)
                if isinstance(row, dict) and row.get("problem") and row.get("answer") is not None:
                    kept += 1
                    yield row
                if kept >= limit_per_file:
                    break


def build_bpe_tokenizer(texts: list[str], vocab_size: int = 512) -> Any:
    """A byte-level BPE with Qwen2's normaliser, pre-tokenizer and decoder, the ChatML specials and template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    core = Tokenizer(models.BPE())
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    core.train_from_iterator(texts, trainer=trainer)
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (ENDOFTEXT, IM_START, IM_END)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        unk_token=None,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=32768,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_standin(out_dir: str | Path, corpus: Iterable[Path], spec: StandinSpec = StandinSpec()) -> Path:
    """Build the tokenizer and model, optionally teach it to end its turns, and save both in `out_dir`."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    rows = list(corpus_rows(corpus))
    if not rows:
        raise ValueError("the stand-in checkpoint needs text to train its tokenizer on; no rows with problem/answer")
    tokenizer = build_bpe_tokenizer([r["problem"] for r in rows] + [str(r["answer"]) for r in rows], spec.vocab_size)
    eos, im_end = tokenizer.convert_tokens_to_ids(ENDOFTEXT), tokenizer.convert_tokens_to_ids(IM_END)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config)
    if spec.sft_steps:
        _teach_turn_ends(model, tokenizer, rows, spec)
    # Qwen2.5-Instruct's generation_config: both end tokens, sampling defaults the harness must not inherit
    model.generation_config = GenerationConfig(
        bos_token_id=eos,
        eos_token_id=[im_end, eos],
        pad_token_id=eos,
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        repetition_penalty=1.05,
    )
    out = Path(out_dir)
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    config_file = out / "tokenizer_config.json"  # name the class as Qwen folders do (transformers picks it anyway)
    config_file.write_text(
        json.dumps({**json.loads(config_file.read_text()), "tokenizer_class": "Qwen2Tokenizer"}, indent=2) + "\n"
    )
    return out


def _teach_turn_ends(model: Any, tokenizer: Any, rows: list[dict[str, Any]], spec: StandinSpec) -> None:
    """A few SFT steps on `<chat prompt> The answer is \\boxed{a}. Answer: a<|im_end|>` (loss on the reply)."""
    import torch

    generator = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.sft_learning_rate)
    model.train()
    for _ in range(spec.sft_steps):
        picked = torch.randint(len(rows), (spec.sft_batch_size,), generator=generator).tolist()
        batch_ids, batch_labels = [], []
        for i in picked:
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": rows[i]["problem"][:300]}], tokenize=False, add_generation_prompt=True
            )
            reply = f"The answer is \\boxed{{{rows[i]['answer']}}}.\nAnswer: {rows[i]['answer']}{IM_END}"
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            r_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
            batch_ids.append(p_ids + r_ids)
            batch_labels.append([-100] * len(p_ids) + r_ids)
        width = max(len(x) for x in batch_ids)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([x + [pad] * (width - len(x)) for x in batch_ids])  # [B, L] right-padded
        labels = torch.tensor([y + [-100] * (width - len(y)) for y in batch_labels])  # [B, L]
        mask = (labels != -100) | (torch.arange(width)[None, :] < torch.tensor([len(x) for x in batch_ids])[:, None])
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
