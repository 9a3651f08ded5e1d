"""Sampling loop for Llama-style decoders that skips the work `generate` spends on finished rows.

HF `generate` runs every row through every decoding step until the last row ends, and prefills each prompt once
per sample. On the smoke tier most completions end after ~5 tokens while one rambling row sets the length, so
that is most of the work. This loop runs the model's own modules (embedding, rotary embedding, norms,
projections, MLP, LM head) with a preallocated key/value cache of its own, and

- prefills each distinct prompt once and copies its cache to its G samples;
- drops finished rows from the batch (compacting the cache when enough have ended);
- samples with the exponential race argmax_v p_v / E_v, E_v ~ Exp(1), drawn for every row of the batch at every
  step: an exact categorical sampler, and the draw `torch.multinomial(p, 1)` makes from the same RNG stream, so
  its samples are those of `generate` with the same seed (tests/test_decode.py), up to float rounding in the
  logits (attention is computed eagerly here).

Logits are processed by transformers' own temperature / top-k / top-p warpers, in `generate`'s order. Models
outside `SUPPORTED_TYPES`, or with sliding windows, image inputs or a generation_config that adds logits
processors (`GENERATION_DEFAULTS`: suppressed tokens, minimum lengths, n-gram bans, ...), use `generate`.
"""

from __future__ import annotations

from typing import Any

import torch

SUPPORTED_TYPES = ("llama", "qwen2", "mistral")
COMPACT_SHARE = 0.125  # compact the batch once this share of its rows has finished
# Checkpoint generation settings that would make `generate` process logits beyond the temperature / top-k / top-p
# the rollout passes explicitly (HFRollout also pins repetition_penalty to 1), with their neutral values.
GENERATION_DEFAULTS: dict[str, object] = {
    "suppress_tokens": None, "begin_suppress_tokens": None, "bad_words_ids": None, "sequence_bias": None,
    "min_length": 0, "min_new_tokens": None, "no_repeat_ngram_size": 0, "forced_bos_token_id": None,
    "forced_eos_token_id": None, "min_p": None, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
    "exponential_decay_length_penalty": None, "encoder_repetition_penalty": 1.0, "guidance_scale": None,
}  # fmt: skip


def unsupported_reason(
    model: torch.nn.Module, total_length: int, extra_inputs: dict[str, torch.Tensor] | None = None
) -> str | None:
    """Why this loop cannot decode `model` (None when it can); `extra_inputs`: the call's image inputs, if any."""
    if extra_inputs:
        return f"extra model inputs ({', '.join(extra_inputs)}): the loop feeds token ids only"
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_TYPES:
        return f"model type {model_type!r} is not one of {', '.join(SUPPORTED_TYPES)}"
    window = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", False) or (window is not None and window < total_length):
        return "sliding-window attention"
    if any(t != "full_attention" for t in getattr(config, "layer_types", None) or []):
        return "layers other than full attention"
    generation = getattr(model, "generation_config", None)
    if generation is not None:  # what the checkpoint's generation_config would add to `generate`'s processors
        for name, neutral in GENERATION_DEFAULTS.items():
            if getattr(generation, name, neutral) not in (neutral, None):
                return f"generation_config.{name} = {getattr(generation, name)!r}"
    base = getattr(model, "model", None)
    if not all(hasattr(base, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return "not a decoder-only model with the Llama module layout"
    return None


def logits_warpers(temperature: float, top_k: int, top_p: float) -> list[Any]:
    """transformers' sampling warpers in the order `generate` applies them (only those that change anything)."""
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers: list[Any] = []
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return warpers


class _Cache:
    """Keys and values [n, KV, L, D] per layer and which positions hold a valid token [n, L]; `keep` selects rows
    (copies a prompt's cache to its samples, drops finished rows).

    The length L grows with the completions (doubling, up to `limit` = prompt + max_new_tokens) instead of being
    allocated whole: with a 2048-token budget and 25-token answers, a whole-budget cache is ~80x the memory that is
    used, and each `keep` would copy all of it."""

    def __init__(
        self, layers: int, n: int, kv_heads: int, length: int, head_dim: int, like: torch.Tensor, limit: int
    ) -> None:
        self.limit = limit
        self.keys = [like.new_zeros((n, kv_heads, length, head_dim)) for _ in range(layers)]
        self.values = [like.new_zeros((n, kv_heads, length, head_dim)) for _ in range(layers)]
        self.valid = torch.zeros(n, length, dtype=torch.bool, device=like.device)  # [n, L]

    def reserve(self, end: int) -> None:
        """Room for positions [0, end)."""
        length = self.valid.size(1)
        if end <= length:
            return
        grown = min(max(end, 2 * length), max(self.limit, end))

        def pad(x: torch.Tensor) -> torch.Tensor:  # [n, KV, L, D] -> [n, KV, grown, D]
            return torch.nn.functional.pad(x, (0, 0, 0, grown - length))

        self.keys = [pad(k) for k in self.keys]
        self.values = [pad(v) for v in self.values]
        self.valid = torch.nn.functional.pad(self.valid, (0, grown - length), value=False)

    def keep(self, rows: torch.Tensor) -> None:
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]
        self.valid = self.valid[rows]


def _forward(
    model: torch.nn.Module, cache: _Cache | _Rows, ids: torch.Tensor, positions: torch.Tensor, start: int
) -> torch.Tensor:
    """Logits [n, V] of the last input position; writes the inputs' keys and values at [start, start + T)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb  # the rotation every supported type uses

    base = model.model
    n, T = ids.shape  # [n, T]
    end = start + T
    h = base.embed_tokens(ids)  # [n, T, hidden]
    cos, sin = base.rotary_emb(h, positions)  # [n, T, D]
    causal = torch.ones(T, end, dtype=torch.bool, device=ids.device).tril(diagonal=start)  # [T, end]
    allowed = cache.valid[:, None, None, :end] & causal  # [n, 1, T, end]
    bias = torch.zeros(allowed.shape, dtype=h.dtype, device=h.device).masked_fill_(~allowed, torch.finfo(h.dtype).min)
    for i, layer in enumerate(base.layers):
        attn = layer.self_attn
        x = layer.input_layernorm(h)
        q = attn.q_proj(x).view(n, T, -1, attn.head_dim).transpose(1, 2)  # [n, H, T, D]
        k = attn.k_proj(x).view(n, T, -1, attn.head_dim).transpose(1, 2)  # [n, KV, T, D]
        v = attn.v_proj(x).view(n, T, -1, attn.head_dim).transpose(1, 2)  # [n, KV, T, D]
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        cache.keys[i][:, :, start:end] = k
        cache.values[i][:, :, start:end] = v
        keys, values = cache.keys[i][:, :, :end], cache.values[i][:, :, :end]  # [n, KV, end, D]
        groups = q.size(1) // keys.size(1)
        if groups > 1:  # grouped-query attention: each KV head serves `groups` consecutive query heads
            keys, values = keys.repeat_interleave(groups, dim=1), values.repeat_interleave(groups, dim=1)
        scores = torch.matmul(q, keys.transpose(2, 3)) * attn.scaling + bias  # [n, H, T, end]
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(weights, values).transpose(1, 2).reshape(n, T, -1)  # [n, T, H·D]
        h = h + attn.o_proj(out)
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    return model.lm_head(base.norm(h[:, -1:]))[:, -1].float()  # [n, V]


PREFILL_BYTES = 256 << 20  # attention scores one prefill chunk may hold (they are [rows, heads, P, P])


class _Rows:
    """Rows [a, b) of a cache, as views: a prefill chunk writes its keys and values into the whole cache."""

    def __init__(self, cache: _Cache, a: int, b: int) -> None:
        self.keys = [k[a:b] for k in cache.keys]
        self.values = [v[a:b] for v in cache.values]
        self.valid = cache.valid[a:b]


def _prefill(model: torch.nn.Module, cache: _Cache, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Last-position logits [n, V] of the prompts, run a chunk of rows at a time: eager attention holds [rows, H, P,
    P] scores, which for 200 prompts of 1,000 tokens is ~10 GB at once (per row the same arithmetic)."""
    n, P = ids.shape
    heads = model.config.num_attention_heads
    rows = max(1, PREFILL_BYTES // (3 * 4 * heads * P * P))  # scores, their float32 softmax and the bias
    if rows >= n:
        return _forward(model, cache, ids, positions, 0)
    return torch.cat(
        [_forward(model, _Rows(cache, a, a + rows), ids[a : a + rows], positions[a : a + rows], 0)
         for a in range(0, n, rows)]
    )  # fmt: skip


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,  # [n, P] distinct prompts, left-padded
    prompt_mask: torch.Tensor,  # [n, P]
    num_generations: int,
    max_new_tokens: int,
    stop_ids: int | list[int],
    pad_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """G samples per prompt, prompt-major: (completion ids [N, T] padded after EOS, log-prob of each sampled token
    under the processed distribution [N, T], 0 after EOS); T is the longest completion, ≤ max_new_tokens.
    `stop_ids`: the tokens that end a completion (repro/models/stops.py), kept as its last token.
    `greedy`: the most likely token at each step, as `generate(do_sample=False)` (no warpers, no random draws)."""
    G = num_generations
    n, P = prompt_ids.shape
    N = n * G
    attn0 = model.model.layers[0].self_attn
    kv_heads = attn0.k_proj.out_features // attn0.head_dim
    warpers = [] if greedy else logits_warpers(temperature, top_k, top_p)
    stops = torch.tensor([stop_ids] if isinstance(stop_ids, int) else list(stop_ids), device=prompt_ids.device)
    first = P + min(max_new_tokens, 64)  # grown as completions lengthen (_Cache.reserve)
    cache = _Cache(
        len(model.model.layers), n, kv_heads, first, attn0.head_dim, model.lm_head.weight, P + max_new_tokens
    )
    cache.valid[:, :P] = prompt_mask.bool()
    positions = (prompt_mask.long().cumsum(dim=1) - 1).clamp(min=0)  # [n, P], as `generate` sets them
    logits = _prefill(model, cache, prompt_ids, positions).repeat_interleave(G, dim=0)  # [N, V]
    rows = torch.arange(n, device=prompt_ids.device).repeat_interleave(G)  # [N] each sample's prompt
    cache.keep(rows)  # [N, ...] each sample's copy of its prompt's cache
    next_position = positions[rows, -1:] + 1  # [N, 1]
    tokens = torch.full((N, max_new_tokens), pad_id, dtype=torch.long, device=prompt_ids.device)  # [N, T]
    logprobs = torch.zeros(N, max_new_tokens, device=prompt_ids.device)  # [N, T]
    alive = torch.arange(N, device=prompt_ids.device)  # [a] batch rows still in the cache (some may have ended)
    running = torch.ones(N, dtype=torch.bool, device=prompt_ids.device)  # [a] not yet ended
    steps = 0
    for t in range(max_new_tokens):
        scores = logits  # [a, V]
        for warp in warpers:
            scores = warp(None, scores)
        if greedy:
            picked = scores.argmax(dim=1)  # [a]
        else:
            probs = torch.softmax(scores, dim=-1)  # [a, V]
            race = torch.empty(N, probs.size(1), device=probs.device).exponential_(1)  # [N, V]: every row and step
            picked = (probs / race[alive]).argmax(dim=1)  # [a] ~ Categorical(probs)
        picked = torch.where(running, picked, pad_id)
        tokens[alive, t] = picked
        logprobs[alive, t] = torch.where(running, torch.log_softmax(scores, -1).gather(1, picked[:, None])[:, 0], 0.0)
        steps = t + 1
        running = running & ~torch.isin(picked, stops)
        if not running.any() or t == max_new_tokens - 1:
            break
        if (~running).sum() >= max(1, COMPACT_SHARE * len(alive)):  # drop finished rows from the batch
            keep = running.nonzero().squeeze(1)
            alive, running, picked, next_position = alive[keep], running[keep], picked[keep], next_position[keep]
            cache.keep(keep)
        cache.reserve(P + t + 1)
        cache.valid[:, P + t] = True
        logits = _forward(model, cache, picked[:, None], next_position, P + t)  # [a, V]
        next_position = next_position + 1
    return tokens[:, :steps], logprobs[:, :steps]
