"""Per-token log-probs and entropies of completions under a causal LM."""

from __future__ import annotations

import torch

SUPPRESSED_LOGIT = -1e9  # finite, so p·log p stays 0 in the entropy (−inf would give NaN)


def completion_logits(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,  # [B, P] left-padded
    prompt_mask: torch.Tensor,  # [B, P]
    completion_ids: torch.Tensor,  # [B, T]
    completion_mask: torch.Tensor,  # [B, T]
    extra_inputs: dict[str, torch.Tensor] | None = None,  # row-aligned, e.g. pixel_values [B, C, H, W]
) -> torch.Tensor:
    """The raw logits that predict each completion token: [B, T, V] (position t scores o_t given q, o_<t).

    Position ids follow the attention mask, as `generate` does with left padding, so they match the sampler's.
    """
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # [B, P+T]
    attention_mask = torch.cat([prompt_mask, completion_mask.to(prompt_mask.dtype)], dim=1)  # [B, P+T]
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # [B, P+T]
    T = completion_ids.size(1)
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=T + 1,
        **(extra_inputs or {}),
    ).logits  # [B, T+1, V]
    return logits[:, :-1, :]  # [B, T, V]


def completion_logprobs(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,  # [B, P] left-padded
    prompt_mask: torch.Tensor,  # [B, P]
    completion_ids: torch.Tensor,  # [B, T]
    completion_mask: torch.Tensor,  # [B, T]
    temperature: float = 1.0,
    with_entropy: bool = False,
    extra_inputs: dict[str, torch.Tensor] | None = None,  # row-aligned, e.g. pixel_values [B, C, H, W]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(o_t | q, o_<t) with logits / temperature (as the sampler saw them), and the entropy per token.

    Position ids follow the attention mask, as `generate` does with left padding, so the trainer's
    log-probs match the sampler's. A vision-language policy also gets its image inputs (`extra_inputs`).
    """
    logits = completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask, extra_inputs)
    logits = logits.float() / temperature  # [B, T, V] predicts completion tokens
    suppressed = getattr(getattr(model, "generation_config", None), "suppress_tokens", None)
    if suppressed:  # tokens `generate` never samples (a VL model's <image>): the distribution it sampled from
        logits = logits.index_fill(-1, torch.tensor(suppressed, device=logits.device), SUPPRESSED_LOGIT)
    logp_all = torch.log_softmax(logits, dim=-1)  # [B, T, V]
    logp = logp_all.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)  # [B, T]
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(dim=-1)  # [B, T]
    return logp, entropy
