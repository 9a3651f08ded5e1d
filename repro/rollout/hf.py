"""Rollouts with Hugging Face `generate`: on the policy itself (colocated; batched, KV cache), or on a
perturbed copy of it that stands in for an inference engine whose numbers differ from the trainer's.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch

from repro.models.stops import stop_token_ids
from repro.registry import Registry
from repro.rollout import decode
from repro.rollout.base import RolloutBackend, RolloutBatch, SamplingParams, concat_batches, cut_prompt, left_pad

BACKENDS: Registry[type] = Registry("rollout backend")


@BACKENDS.register("hf")
class HFRollout:
    """`decode`: `auto` samples text policies of the Llama family with repro/rollout/decode.py (the same samples as
    `generate` for the same seed, without the work on finished rows); `generate` always uses HF `generate`."""

    DECODES = ("auto", "generate")

    def __init__(self, model: torch.nn.Module, tokenizer, decode: str = "auto") -> None:
        if decode not in self.DECODES:
            raise ValueError(f"rollout option decode={decode!r} is not one of {', '.join(self.DECODES)}")
        self.model = model
        self.tokenizer = tokenizer
        self.decode = decode
        # every token that ends a completion: tokenizer eos, generation_config eos ids, the template's end of turn
        self.stop_ids = stop_token_ids(tokenizer, model)
        # FSDP: every rank runs each decoding step until all ranks are done (HF's synced_gpus), as a step's forward
        # gathers the sharded weights from every rank.
        self.synced_gpus = False

    def sync_weights(self, model: torch.nn.Module) -> None:
        self.model = model  # same object: nothing to copy

    def generate(
        self,
        prompts: list[str],
        params: SamplingParams,
        extra_inputs: dict[str, torch.Tensor] | None = None,
        seeds: list[int] | None = None,
    ) -> RolloutBatch:
        if seeds is None:  # one batch, one RNG stream: a row's samples depend on the rest of the batch
            return self._generate(prompts, params, extra_inputs)
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts; pass one per prompt")
        # One group at a time under its own seed (no padding inside a group), without touching the global RNG.
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        groups = []
        for i, (prompt, seed) in enumerate(zip(prompts, seeds)):
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                extra = {k: v[i : i + 1] for k, v in (extra_inputs or {}).items()}
                groups.append(self._generate([prompt], params, extra))
        return concat_batches(groups, self.tokenizer.pad_token_id)

    @torch.no_grad()
    def _generate(
        self, prompts: list[str], params: SamplingParams, extra_inputs: dict[str, torch.Tensor] | None = None
    ) -> RolloutBatch:
        tok = self.tokenizer
        tok.padding_side = "left"
        encoded = tok(prompts, add_special_tokens=False)["input_ids"]
        limit, mode = params.max_prompt_length, params.truncation_mode
        kept = [cut_prompt(ids, limit, mode) for ids in encoded]  # longer prompts cut on the configured side
        prompt_ids, prompt_mask = left_pad(kept, tok.pad_token_id)  # [n, P]
        G = params.num_generations
        cut = torch.tensor([limit is not None and len(ids) > limit for ids in encoded]).repeat_interleave(G)  # [N]
        distinct_ids, distinct_mask = prompt_ids, prompt_mask  # [n, P]
        prompt_ids = prompt_ids.repeat_interleave(G, dim=0)  # [N, P], prompt-major groups
        prompt_mask = prompt_mask.repeat_interleave(G, dim=0)
        extra = {k: v.repeat_interleave(G, dim=0) for k, v in (extra_inputs or {}).items()}  # [N, ...]
        was_training = self.model.training
        self.model.eval()
        if self._lean(extra, prompt_ids.size(1) + params.max_new_tokens):
            completion_ids, sampler_logprobs = decode.sample(
                self.model, distinct_ids, distinct_mask, G, params.max_new_tokens, self.stop_ids, tok.pad_token_id,
                params.temperature, params.top_k, params.top_p,
            )  # fmt: skip
            self.model.train(was_training)
            return self._batch(prompt_ids, prompt_mask, completion_ids, sampler_logprobs, extra, cut)
        out = self.model.generate(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            do_sample=True,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,  # 0 = off; None would let transformers fill in its default of 50
            repetition_penalty=1.0,  # never inherit a checkpoint's generation_config penalties
            max_new_tokens=params.max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=tok.pad_token_id,
            output_scores=True,
            return_dict_in_generate=True,
            synced_gpus=self.synced_gpus,
            **extra,
        )
        self.model.train(was_training)
        completion_ids = out.sequences[:, prompt_ids.size(1) :]  # [N, T]
        scores = torch.stack(out.scores, dim=1).float()  # [N, T, V] processed (temperature, top-k/p) logits
        sampler_logprobs = torch.log_softmax(scores, dim=-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
        return self._batch(prompt_ids, prompt_mask, completion_ids, sampler_logprobs, extra, cut)

    def _lean(self, extra: dict[str, torch.Tensor], total_length: int) -> bool:
        """Whether repro/rollout/decode.py samples this call (text only, one process's own weights)."""
        if self.decode == "generate" or self.synced_gpus:
            return False
        return decode.unsupported_reason(self.model, total_length, extra) is None

    def _batch(
        self,
        prompt_ids: torch.Tensor,  # [N, P]
        prompt_mask: torch.Tensor,  # [N, P]
        completion_ids: torch.Tensor,  # [N, T]
        sampler_logprobs: torch.Tensor,  # [N, T]
        extra: dict[str, torch.Tensor],
        prompt_truncated: torch.Tensor,  # [N] bool
    ) -> RolloutBatch:
        tok = self.tokenizer
        completion_mask, truncated = eos_mask(completion_ids, self.stop_ids)
        sampler_logprobs = torch.where(completion_mask.bool(), sampler_logprobs, torch.zeros_like(sampler_logprobs))
        texts = tok.batch_decode(
            completion_ids * completion_mask + tok.pad_token_id * (1 - completion_mask), skip_special_tokens=True
        )
        return RolloutBatch(
            prompt_ids, prompt_mask, completion_ids, completion_mask.float(), sampler_logprobs, truncated, texts, extra,
            prompt_truncated,
        )  # fmt: skip


def eos_mask(completion_ids: torch.Tensor, stop_ids: int | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of tokens up to and including the first stop token (EOS or any of `stop_ids`), and whether a row never
    reached one (truncated)."""
    stops = torch.tensor([stop_ids] if isinstance(stop_ids, int) else list(stop_ids), device=completion_ids.device)
    is_eos = torch.isin(completion_ids, stops)  # [N, T]
    has_eos = is_eos.any(dim=1)  # [N]
    T = completion_ids.size(1)
    first = torch.where(has_eos, is_eos.float().argmax(dim=1), torch.full_like(has_eos, T, dtype=torch.long))  # [N]
    positions = torch.arange(T).unsqueeze(0)  # [1, T]
    mask = (positions <= first.unsqueeze(1)).long()  # [N, T]
    return mask, ~has_eos


@BACKENDS.register("hf_mismatch")
class MismatchedHFRollout:
    """Samples from a copy of the policy whose weights went through the inference precision (`dtype`) and,
    optionally, relative Gaussian noise: w' = w̃ + σ·|w̃|·ε with w̃ = cast(w, dtype). The sampler's
    log-probs then differ from the trainer's as an inference engine's do (TIS, arXiv blog Yao et al. 2025),
    which the rollout correction (train.rollout_correction) is meant to fix. Re-derived after every step.
    """

    DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

    def __init__(
        self, model: torch.nn.Module, tokenizer: Any, dtype: str = "bfloat16", noise_std: float = 0.0, seed: int = 0
    ) -> None:
        if dtype not in self.DTYPES or noise_std < 0:
            raise ValueError(f"hf_mismatch needs dtype in {', '.join(self.DTYPES)} and noise_std >= 0")
        self.dtype, self.noise_std, self.seed, self.syncs = self.DTYPES[dtype], noise_std, seed, 0
        self.copy = copy.deepcopy(model).eval().requires_grad_(False)
        self.inner = HFRollout(self.copy, tokenizer)
        self.sync_weights(model)

    @torch.no_grad()
    def sync_weights(self, model: torch.nn.Module) -> None:
        noise = torch.Generator().manual_seed(self.seed * 1_000_003 + self.syncs)
        for mine, theirs in zip(self.copy.parameters(), model.parameters(), strict=True):
            w = theirs.detach().to(self.dtype).to(theirs.dtype)  # round trip through the inference precision
            if self.noise_std:
                w = w + self.noise_std * w.abs() * torch.randn(w.shape, generator=noise, dtype=w.dtype)
            mine.copy_(w)
        self.syncs += 1

    def generate(
        self,
        prompts: list[str],
        params: SamplingParams,
        extra_inputs: dict[str, torch.Tensor] | None = None,
        seeds: list[int] | None = None,
    ) -> RolloutBatch:
        return self.inner.generate(prompts, params, extra_inputs, seeds)


def backend_options(name: str) -> list[str]:
    """The keyword options a backend accepts (train.rollout_options), for config checks."""
    params = inspect.signature(BACKENDS.get(name).__init__).parameters
    return [p for p in params if p not in ("self", "model", "tokenizer")]


def make_backend(name: str, model: torch.nn.Module, tokenizer, **options: Any) -> RolloutBackend:
    return BACKENDS.get(name)(model, tokenizer, **options)


# Backends that live in their own modules register on import (after BACKENDS exists).
from repro.rollout import vllm as _vllm  # noqa: E402, F401
