"""The rollout interface: what any generation backend (HF generate, vLLM later) must return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass
class SamplingParams:
    num_generations: int  # G completions per prompt, laid out prompt-major
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_prompt_length: int | None = None  # longer prompts are cut to this many tokens (None: never)
    # keep_end: a cut prompt keeps its last tokens (TRL's default for prompts); keep_start: its first (data config)
    truncation_mode: str = "keep_end"


@dataclass
class RolloutBatch:
    prompt_ids: torch.Tensor  # [N, P] left-padded
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, T] right-padded
    completion_mask: torch.Tensor  # [N, T] 1 up to and including the first EOS
    sampler_logprobs: torch.Tensor  # [N, T] log-prob of each sampled token under the sampling distribution
    truncated: torch.Tensor  # [N] bool: no EOS within max_new_tokens
    completions: list[str]  # decoded completion text (without the EOS)
    # Row-aligned model inputs beyond the text (a VL policy's pixel_values [N, C, H, W]); empty for text.
    extra_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    # [N] bool: the row's prompt was longer than max_prompt_length and was cut (None when built: no row was)
    prompt_truncated: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.prompt_truncated is None:
            self.prompt_truncated = torch.zeros(self.truncated.shape, dtype=torch.bool, device=self.truncated.device)

    @property
    def completion_lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1)  # [N]

    def select(self, rows: torch.Tensor) -> RolloutBatch:
        """The batch restricted to the given row indices (in that order)."""
        idx = rows.tolist()
        return RolloutBatch(
            self.prompt_ids[rows],
            self.prompt_mask[rows],
            self.completion_ids[rows],
            self.completion_mask[rows],
            self.sampler_logprobs[rows],
            self.truncated[rows],
            [self.completions[i] for i in idx],
            {k: v[rows] for k, v in self.extra_inputs.items()},
            self.prompt_truncated[rows],
        )


def concat_batches(batches: list[RolloutBatch], pad_id: int) -> RolloutBatch:
    """Concatenate batches whose prompt / completion widths may differ (left / right padding kept)."""
    P = max(b.prompt_ids.size(1) for b in batches)
    T = max(b.completion_ids.size(1) for b in batches)

    def left(x: torch.Tensor, width: int, value: float) -> torch.Tensor:
        return torch.nn.functional.pad(x, (width - x.size(1), 0), value=value)

    def right(x: torch.Tensor, width: int, value: float) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, width - x.size(1)), value=value)

    return RolloutBatch(
        torch.cat([left(b.prompt_ids, P, pad_id) for b in batches]),
        torch.cat([left(b.prompt_mask, P, 0) for b in batches]),
        torch.cat([right(b.completion_ids, T, pad_id) for b in batches]),
        torch.cat([right(b.completion_mask, T, 0) for b in batches]),
        torch.cat([right(b.sampler_logprobs, T, 0.0) for b in batches]),
        torch.cat([b.truncated for b in batches]),
        [c for b in batches for c in b.completions],
        _concat_extra([b.extra_inputs for b in batches]),
        torch.cat([b.prompt_truncated for b in batches]),
    )


def cut_prompt(ids: list[int], max_prompt_length: int | None, truncation_mode: str = "keep_end") -> list[int]:
    """A prompt's token ids, cut to `max_prompt_length` when longer: keep_end keeps the last tokens (a left cut,
    TRL's default for prompts), keep_start the first. None: never cut."""
    if max_prompt_length is None or len(ids) <= max_prompt_length:
        return ids
    if truncation_mode == "keep_end":
        return ids[-max_prompt_length:]
    if truncation_mode == "keep_start":
        return ids[:max_prompt_length]
    raise ValueError(f"truncation_mode {truncation_mode!r} is not one of keep_end, keep_start")


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows left-padded to the longest: (ids [n, P], attention mask [n, P])."""
    P = max(len(r) for r in rows)
    ids = torch.full((len(rows), P), pad_id, dtype=torch.long)  # [n, P]
    mask = torch.zeros((len(rows), P), dtype=torch.long)  # [n, P]
    for i, r in enumerate(rows):
        if r:
            ids[i, P - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, P - len(r) :] = 1
    return ids, mask


def _concat_extra(extras: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Row-wise concatenation of every batch's extra inputs (same keys and per-row shapes required)."""
    keys = set(extras[0])
    if any(set(e) != keys for e in extras):
        raise ValueError("batches with different extra inputs cannot be concatenated")
    return {k: torch.cat([e[k] for e in extras]) for k in sorted(keys)}


def group_seed(run_seed: int, draw: int) -> int:
    """The sampling seed of a run's `draw`-th prompt (group) under rollout_seeding per_group."""
    return (run_seed * 1_000_003 + draw) % 2**63


class RolloutBackend(Protocol):
    """Generates G completions per prompt. A vLLM backend implements the same two methods."""

    def generate(
        self,
        prompts: list[str],
        params: SamplingParams,
        extra_inputs: dict[str, torch.Tensor] | None = None,
        seeds: list[int] | None = None,
    ) -> RolloutBatch:
        """`extra_inputs`: row-aligned with `prompts` (e.g. pixel_values), repeated G times like the prompts.
        `seeds`: one per prompt; its G samples are then a function of the seed alone (not of the batch it came in
        or of the process that drew it), what `train.rollout_seeding: per_group` and data parallelism need."""
        ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Called after every optimizer step; a backend with its own weights copies them here."""
        ...
