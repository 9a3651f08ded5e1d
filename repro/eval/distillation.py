"""How close a student is to its teacher on held-out prompts: task accuracy, and per-token KL on its own samples.

`measure_student` samples k completions per problem from the student (and one greedy completion), grades them,
and scores every sampled position under both models at T = 1: the per-token reverse KL(π_s ‖ π_t) (what
on-policy distillation minimises, on the states the student actually visits) and the forward KL(π_t ‖ π_s)
there, each averaged over completion tokens (EOS included). Sampling runs on a forked torch RNG, so a
measurement during training leaves the training trajectory unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from repro.data.templates import render
from repro.eval.metrics import avg_at_k, pass_at_k
from repro.eval.synthetic import generate_completions
from repro.losses.distillation import token_divergence
from repro.rewards.grader import extract_answer, grade
from repro.rollout.base import SamplingParams
from repro.rollout.hf import HFRollout
from repro.trainers.logprobs import completion_logits


@torch.no_grad()
def per_token_kl(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    prompt_ids: torch.Tensor,  # [N, P]
    prompt_mask: torch.Tensor,  # [N, P]
    completion_ids: torch.Tensor,  # [N, T]
    completion_mask: torch.Tensor,  # [N, T]
    batch_size: int = 256,
) -> dict[str, float]:
    """Mean over completion tokens of KL(π_s ‖ π_t) ("reverse_kl") and KL(π_t ‖ π_s) ("forward_kl"), T = 1."""
    sums = {"reverse_kl": 0.0, "forward_kl": 0.0}
    tokens = 0.0
    for start in range(0, prompt_ids.size(0), batch_size):
        rows = slice(start, start + batch_size)
        args = (prompt_ids[rows], prompt_mask[rows], completion_ids[rows], completion_mask[rows])
        s_logits = completion_logits(student, *args)  # [n, T, V]
        t_logits = completion_logits(teacher, *args)  # [n, T, V]
        mask = completion_mask[rows].float()  # [n, T]
        sums["reverse_kl"] += float((token_divergence(s_logits, t_logits, beta=1.0) * mask).sum())
        sums["forward_kl"] += float((token_divergence(s_logits, t_logits, beta=0.0) * mask).sum())
        tokens += float(mask.sum())
    return {k: v / max(tokens, 1.0) for k, v in sums.items()}


def measure_student(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    tokenizer: Any,
    problems: list[Any],
    *,
    template: str,
    answer_style: str,
    k: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 12,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """Greedy accuracy, avg@k and pass@k of the student's samples, their length, and per-token KL to the teacher."""
    if not problems:
        raise ValueError("measure_student needs at least one held-out problem")
    was_training = student.training
    student.eval()
    prompts = [render(template, p.prompt, tokenizer) for p in problems]
    with torch.random.fork_rng():  # the caller's RNG stream (training sampling) is left where it was
        torch.manual_seed(seed)
        batch = HFRollout(student, tokenizer).generate(
            prompts,
            SamplingParams(num_generations=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p),
        )  # prompt-major: problem i owns rows [i*k, (i+1)*k)
        greedy, _ = generate_completions(
            student, tokenizer, prompts, sample=False, max_new_tokens=max_new_tokens, batch_size=batch_size
        )
    flags = [grade(extract_answer(c, answer_style), problems[i // k].answer) for i, c in enumerate(batch.completions)]
    per_problem = [flags[i * k : (i + 1) * k] for i in range(len(problems))]
    kl = per_token_kl(
        student, teacher, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask, batch_size
    )
    student.train(was_training)
    return {
        "sampled_accuracy": avg_at_k(per_problem),
        "pass_at_k": sum(pass_at_k(k, sum(f), k) for f in per_problem) / len(problems),
        "greedy_accuracy": sum(grade(extract_answer(g, answer_style), p.answer) for g, p in zip(greedy, problems))
        / len(problems),
        "mean_response_length": float(batch.completion_lengths.mean()),
        **kl,
    }
