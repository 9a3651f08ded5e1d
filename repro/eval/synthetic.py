"""Held-out accuracy of a policy on verifiable problems: greedy, and k samples (avg@k, pass@k, maj@k).

Sampling is pure temperature/top-p sampling: top-k is off unless asked for and repetition penalty is 1,
whatever the checkpoint's generation_config says (transformers fills unset values from it, and top_k
otherwise defaults to 50). Response length counts generated tokens up to and including the first EOS,
the same count the RL rollout uses.
"""

from __future__ import annotations

from typing import Any

import torch

from repro.data.templates import render
from repro.eval.metrics import avg_at_k, maj_at_k, pass_at_k
from repro.models.stops import stop_token_ids
from repro.rewards.grader import extract_answer, grade
from repro.rollout import decode
from repro.rollout.hf import eos_mask


def generate_completions(model: Any, tokenizer: Any, prompts: list[str], **options: Any) -> tuple[list[str], list[int]]:
    """(completion texts, their lengths in tokens incl. the stop token): `sample_completions` without the flags."""
    texts, lengths, _ = sample_completions(model, tokenizer, prompts, **options)
    return texts, lengths


@torch.no_grad()
def sample_completions(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    sample: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int = 8,
    batch_size: int = 256,
    extra_inputs: dict[str, torch.Tensor] | None = None,
    num_samples: int = 1,
) -> tuple[list[str], list[int], list[bool]]:
    """(completion texts cut at the first stop token, their lengths in tokens incl. it, whether each ran out of
    tokens before any stop token), batched, left-padded;
    `num_samples` completions per prompt, prompt-major (prompt i owns rows [i·num_samples, (i+1)·num_samples)).

    `extra_inputs` are row-aligned with `prompts` (a vision-language policy's pixel_values) and sliced alike.
    Text policies of the Llama family are decoded by repro/rollout/decode.py (each prompt run once for its
    samples; the same tokens `generate` draws from the same seed); others by `generate`.
    """
    tokenizer.padding_side = "left"
    texts: list[str] = []
    lengths: list[int] = []
    truncated: list[bool] = []
    mode: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k}
        if sample
        else {"do_sample": False}
    )
    per_call = max(1, batch_size // num_samples)  # prompts per call: ≤ batch_size rows, in whole groups (≥ 1)
    stops = stop_token_ids(tokenizer, model)  # tokenizer eos, generation_config eos ids, the template's turn end
    for start in range(0, len(prompts), per_call):
        enc = tokenizer(prompts[start : start + per_call], return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = enc["input_ids"], enc["attention_mask"]  # [n, P]
        extra = {k: v[start : start + per_call] for k, v in (extra_inputs or {}).items()}
        if decode.unsupported_reason(model, ids.size(1) + max_new_tokens, extra) is None:
            completion_ids, _ = decode.sample(
                model, ids, mask, num_samples, max_new_tokens, stops, tokenizer.pad_token_id,
                temperature, top_k, top_p, greedy=not sample,
            )  # fmt: skip
        else:
            out = model.generate(
                input_ids=ids.repeat_interleave(num_samples, dim=0),
                attention_mask=mask.repeat_interleave(num_samples, dim=0),
                **{k: v.repeat_interleave(num_samples, dim=0) for k, v in extra.items()},
                max_new_tokens=max_new_tokens,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
                repetition_penalty=1.0,
                **mode,
            )
            completion_ids = out[:, ids.size(1) :]  # [N, T]
        eos, no_stop = eos_mask(completion_ids, stops)  # [N, T], 1 up to and including the stop token; [N]
        kept = completion_ids * eos + tokenizer.pad_token_id * (1 - eos)  # [N, T]
        texts += tokenizer.batch_decode(kept, skip_special_tokens=True)
        lengths += eos.sum(dim=1).tolist()
        truncated += no_stop.tolist()
    return texts, lengths, truncated


def evaluate_policy(
    model: Any,
    tokenizer: Any,
    problems: list[Any],
    *,
    template: str,
    answer_style: str,
    k: int = 8,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int = 8,
    batch_size: int = 256,
    seed: int = 0,
    processor: Any = None,
) -> dict[str, Any]:
    """Greedy accuracy, avg@k / pass@k (Chen et al. unbiased, n = k) / maj@k over k samples, and per-item records.

    Temperature 0 is greedy decoding: the one greedy completion per problem stands for the samples (k = 1).
    Problems with images need the vision-language policy's `processor` (repro/models/vision.py).
    """
    if temperature <= 0:
        k = 1
    if not problems or k < 1:
        raise ValueError(f"evaluate_policy needs at least one problem and k >= 1 (got {len(problems)}, k={k})")
    model.eval()
    torch.manual_seed(seed)
    prompts = [render(template, p.prompt, tokenizer) for p in problems]
    extra: dict[str, torch.Tensor] = {}
    if getattr(problems[0], "image", None) is not None:
        if processor is None:
            raise ValueError("these problems carry images; evaluate_policy needs the model's processor")
        from repro.models.vision import encode_images

        prompts, extra = encode_images(processor, prompts, [p.image for p in problems])
    common = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}
    greedy, greedy_lengths, greedy_cut = sample_completions(
        model, tokenizer, prompts, sample=False, extra_inputs=extra, **common
    )
    if temperature <= 0:
        sampled, lengths, cut = greedy, greedy_lengths, greedy_cut
    else:
        sampled, lengths, cut = sample_completions(
            model,
            tokenizer,
            prompts,
            num_samples=k,  # prompt-major: problem i owns samples [i*k, (i+1)*k)
            extra_inputs=extra,
            sample=True,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            **common,
        )
    items, sampled_correct, majority = [], [], []
    for i, p in enumerate(problems):
        completions = sampled[i * k : (i + 1) * k]
        answers = [extract_answer(c, answer_style) for c in completions]
        flags = [grade(a, p.answer) for a in answers]
        sampled_correct.append(flags)
        majority.append(maj_at_k(answers, flags))
        items.append(
            {
                "id": p.id,
                "prompt": p.prompt,
                "answer": p.answer,
                "greedy": greedy[i],
                "greedy_correct": grade(extract_answer(greedy[i], answer_style), p.answer),
                "samples": completions,
                "samples_correct": flags,
            }
        )
    return {
        "greedy_accuracy": sum(it["greedy_correct"] for it in items) / len(items),
        "sampled_accuracy": avg_at_k(sampled_correct),
        "pass_at_k": sum(pass_at_k(k, sum(f), k) for f in sampled_correct) / len(items),
        "maj_at_k": sum(majority) / len(items),
        "k": k,
        "n_problems": len(items),
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "max_new_tokens": max_new_tokens,
        "mean_response_length": sum(lengths) / len(lengths),
        "truncation_rate": sum(cut) / len(cut),  # sampled completions that hit max_new_tokens before a stop token
        "items": items,
    }
