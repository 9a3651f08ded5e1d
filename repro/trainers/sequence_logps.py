"""Tokenised (prompt, completion) rows and their summed completion log-probs, as TRL's DPOTrainer scores them.

A completion is its text followed by EOS (TRL appends EOS to non-conversational chosen/rejected, §2.1 of
../shared/reference/trl_losses.md); log π(y|x) is the sum over completion tokens, EOS included, at T = 1.
Prompts are left-padded and completions right-padded, so `completion_logprobs` (the RL trainer's own
log-prob code, position ids from the attention mask) scores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from repro.trainers.logprobs import completion_logprobs


@dataclass(frozen=True)
class EncodedRow:
    prompt: list[int]
    completion: list[int]  # ends with EOS unless cut by a length limit


def encode_row(
    tokenizer: Any,
    prompt: str,
    completion: str,
    *,
    max_prompt_length: int | None = None,
    max_completion_length: int | None = None,
    max_length: int | None = None,
) -> EncodedRow:
    """Prompt keeps its last `max_prompt_length` tokens; the completion (+ EOS) its first
    `max_completion_length`; then prompt + completion is cut to `max_length` from the end (TRL's keep_start)."""
    limits = (max_prompt_length, max_completion_length, max_length)
    return encode_rows(tokenizer, [(prompt, completion)], *limits)[0]


def encode_rows(
    tokenizer: Any,
    pairs: list[tuple[str, str]],
    max_prompt_length: int | None = None,
    max_completion_length: int | None = None,
    max_length: int | None = None,
) -> list[EncodedRow]:
    """`encode_row` for many (prompt, completion) pairs: two batched tokenizer calls instead of two per row, and each
    distinct prompt tokenized once (a preference pair's chosen and rejected rows share theirs; rows with the same
    prompt share its token list, which nothing mutates)."""
    if not pairs:
        return []
    distinct = list(dict.fromkeys(p for p, _ in pairs))
    ids = dict(zip(distinct, tokenizer(distinct, add_special_tokens=False)["input_ids"], strict=True))
    prompts = [ids[p] for p, _ in pairs]
    completions = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    rows = []
    for p, c in zip(prompts, completions, strict=True):
        c = c + [tokenizer.eos_token_id]
        if max_prompt_length is not None:
            p = p[-max_prompt_length:]
        if max_completion_length is not None:
            c = c[:max_completion_length]
        if max_length is not None and len(p) + len(c) > max_length:
            if len(p) >= max_length:
                raise ValueError(
                    f"a prompt of {len(p)} tokens leaves no room for its completion under max_length={max_length}; "
                    "raise max_length or set data.max_prompt_length"
                )
            c = c[: max_length - len(p)]
        rows.append(EncodedRow(p, c))
    return rows


def collate(rows: list[EncodedRow], pad_id: int) -> tuple[torch.Tensor, ...]:
    """(prompt_ids [N, P] left-padded, prompt_mask [N, P], completion_ids [N, T] right-padded, completion_mask [N, T])."""
    P = max(len(r.prompt) for r in rows)
    T = max(len(r.completion) for r in rows)
    # padded as Python lists, then one tensor each: per-row tensor writes cost more than the forward on small batches
    prompt_ids = torch.tensor([[pad_id] * (P - len(r.prompt)) + r.prompt for r in rows], dtype=torch.long)  # [N, P]
    prompt_mask = torch.tensor([[0] * (P - len(r.prompt)) + [1] * len(r.prompt) for r in rows], dtype=torch.long)
    completion_ids = torch.tensor([r.completion + [pad_id] * (T - len(r.completion)) for r in rows])  # [N, T]
    completion_mask = torch.tensor([[1] * len(r.completion) + [0] * (T - len(r.completion)) for r in rows])
    return prompt_ids, prompt_mask, completion_ids, completion_mask


def sequence_logps(model: torch.nn.Module, rows: list[EncodedRow], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_t log π(y_t | x, y_<t) over completion tokens [N], completion lengths [N]); differentiable."""
    prompt_ids, prompt_mask, completion_ids, completion_mask = collate(rows, pad_id)
    logp, _ = completion_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask)  # [N, T]
    mask = completion_mask.to(logp.dtype)  # [N, T]
    return (logp * mask).sum(dim=1), mask.sum(dim=1)  # [N], [N]


@torch.no_grad()
def sequence_logps_batched(
    model: torch.nn.Module, rows: list[EncodedRow], pad_id: int, batch_size: int = 256
) -> torch.Tensor:
    """Summed completion log-probs [N] of many rows without gradient (reference scoring, evaluation)."""
    was_training = model.training
    model.eval()
    out = [sequence_logps(model, rows[i : i + batch_size], pad_id)[0] for i in range(0, len(rows), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)
