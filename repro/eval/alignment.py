"""Alignment evaluation of a preference-trained policy against its reference (the SFT policy it started from).

- held-out preference accuracy: the loss's own implicit reward (β·ρ for DPO-style losses, β·r for AlphaPO)
  ranks the gold-better completion of each held-out pair first (labels deterministic, never flipped);
- likelihood displacement: mean log π and ρ = log π − log π_ref of held-out chosen and rejected completions;
- samples on held-out prompts, from the policy and from the reference with the same seeds: mean gold reward,
  gold win rate of the policy (win 1, tie ½, paired sample by sample; DPO §6.1's reward vs KL setting), and
  KL(π‖π_ref) estimated as the mean of Σ_t log π(y_t|·) − log π_ref(y_t|·) over y ~ π (sampled at T = 1);
- optionally a judge's win rate (repro/eval/judge.py) of policy samples against reference samples.

`FrontierMonitor` runs the sample part on a few prompts during training, giving each run a trajectory on the
reward/KL frontier (DPO Fig. 2 left).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from repro.data.preference import PreferencePair
from repro.rollout.base import SamplingParams
from repro.rollout.hf import HFRollout
from repro.trainers.logprobs import completion_logprobs
from repro.trainers.sequence_logps import encode_rows, sequence_logps_batched


@dataclass(frozen=True)
class EvalPrompt:
    prompt: str
    answer: str  # what the gold reward compares with ("" for real data)
    id: str = ""


@torch.no_grad()
def sample_scores(
    model: torch.nn.Module,
    ref_model: torch.nn.Module,
    tokenizer: Any,
    prompts: list[EvalPrompt],
    *,
    k: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    gold: Callable[[str, str], float] | None,
    chunk: int = 64,
) -> dict[str, Any]:
    """k samples per prompt from `model`: texts, gold rewards, and Σ_t log π − log π_ref per sample."""
    was_training = model.training
    model.eval()
    params = SamplingParams(num_generations=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    texts: list[str] = []
    kls: list[float] = []
    lengths: list[float] = []
    seq_logps: list[float] = []
    torch.manual_seed(seed)
    rollout = HFRollout(model, tokenizer)
    for start in range(0, len(prompts), chunk):
        batch = rollout.generate([p.prompt for p in prompts[start : start + chunk]], params)
        args = (batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask)
        logp, _ = completion_logprobs(model, *args)  # [N, T] at T = 1: the policy's own distribution
        ref_logp, _ = completion_logprobs(ref_model, *args)  # [N, T]
        kls += ((logp - ref_logp) * batch.completion_mask).sum(dim=1).tolist()  # [N] Σ_t log π − log π_ref
        seq_logps += (logp * batch.completion_mask).sum(dim=1).tolist()  # [N] log π(y|x)
        lengths += batch.completion_lengths.tolist()
        texts += batch.completions
    model.train(was_training)
    answers = [p.answer for p in prompts for _ in range(k)]
    rewards = [gold(t, a) for t, a in zip(texts, answers, strict=True)] if gold else []
    return {"texts": texts, "gold": rewards, "kl": kls, "lengths": lengths, "logps": seq_logps}


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


def win_rate(ours: list[float], theirs: list[float]) -> float:
    """Share of paired samples where ours beats theirs, ties counting ½."""
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(ours, theirs, strict=True)]
    return _mean(wins)


def quantile_dominance(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of quantile levels at which the sorted chosen values exceed the sorted rejected ones (1.0: the
    chosen distribution dominates the rejected one in first order on this sample; AOT arXiv 2406.05882 §3)."""
    return float((torch.sort(chosen).values > torch.sort(rejected).values).float().mean())


def pair_scores(
    model: torch.nn.Module,
    ref_model: torch.nn.Module,
    tokenizer: Any,
    pairs: list[PreferencePair],
    loss: Any,
    params: Any,
    limits: dict[str, int | None],
) -> dict[str, float]:
    """Held-out preference accuracy under the loss's implicit reward, and the log-probs / log-ratios of pairs.

    The reference scores every pair (for ρ), and reaches the loss only when the loss uses a reference."""
    from repro.losses.preference import PreferenceLogps

    rows = encode_rows(tokenizer, [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs],
                       **limits)  # fmt: skip
    B = len(pairs)
    pad = tokenizer.pad_token_id
    logps = sequence_logps_batched(model, rows, pad)  # [2B]
    ref = sequence_logps_batched(ref_model, rows, pad)  # [2B]
    lengths = torch.tensor([float(len(r.completion)) for r in rows])  # [2B]
    inputs = PreferenceLogps.from_stacked(logps, ref if loss.needs_reference else None, lengths)
    out = loss.fn(inputs, params)
    rho = logps - ref  # [2B] ρ = log π − log π_ref
    rho_c, rho_r = rho[:B], rho[B:]
    return {
        "preference_accuracy": float((out.chosen_rewards > out.rejected_rewards).float().mean()),
        "implicit_margin": float((out.chosen_rewards - out.rejected_rewards).mean()),
        "logp_chosen": float(logps[:B].mean()),
        "logp_rejected": float(logps[B:].mean()),
        "logratio_chosen": float(rho_c.mean()),
        "logratio_rejected": float(rho_r.mean()),
        "logratio_margin": float((rho_c - rho_r).mean()),
        "logratio_margin_per_token": float((rho_c / lengths[:B] - rho_r / lengths[B:]).mean()),
        "logratio_dominance": quantile_dominance(rho_c, rho_r),
    }


class FrontierMonitor:
    """Gold reward, accuracy and KL of the policy's samples on a fixed prompt subset, every eval_every steps."""

    def __init__(
        self,
        ref_model: torch.nn.Module,
        tokenizer: Any,
        prompts: list[EvalPrompt],
        gold: Callable[[str, str], float] | None,
        *,
        max_new_tokens: int,
        seed: int,
    ) -> None:
        self.ref_model, self.tok, self.prompts, self.gold = ref_model, tokenizer, prompts, gold
        self.max_new_tokens, self.seed = max_new_tokens, seed

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        s = sample_scores(
            model, self.ref_model, self.tok, self.prompts, k=1, max_new_tokens=self.max_new_tokens,
            temperature=1.0, top_p=1.0, seed=self.seed, gold=self.gold,
        )  # fmt: skip
        row = {"eval_kl": _mean(s["kl"]), "eval_length": _mean(s["lengths"])}
        if s["gold"]:
            row["eval_gold_reward"] = _mean(s["gold"])
            row["eval_accuracy"] = _mean([float(r == 1.0) for r in s["gold"]])
        return row


def evaluate_alignment(
    model: torch.nn.Module,
    ref_model: torch.nn.Module,
    tokenizer: Any,
    prompts: list[EvalPrompt],
    pairs: list[PreferencePair],
    *,
    loss: Any,
    params: Any,
    limits: dict[str, int | None],
    k: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    gold: Callable[[str, str], float] | None,
    judge: Any = None,
) -> dict[str, Any]:
    """The eval.json of a preference run; `base` holds the reference policy's own numbers on the same samples."""
    common = dict(k=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, gold=gold)
    ours = sample_scores(model, ref_model, tokenizer, prompts, **common)
    theirs = sample_scores(ref_model, ref_model, tokenizer, prompts, **common)  # KL 0 by construction
    result: dict[str, Any] = {
        "kl": _mean(ours["kl"]),
        "mean_response_length": _mean(ours["lengths"]),
        "n_prompts": len(prompts),
        "samples_per_prompt": k,
        "temperature": temperature,
        "max_new_tokens": max_new_tokens,
    }
    base: dict[str, Any] = {"kl": 0.0, "mean_response_length": _mean(theirs["lengths"]), "win_rate": 0.5}
    if gold is not None:
        result["gold_reward"] = _mean(ours["gold"])
        result["sampled_accuracy"] = _mean([float(r == 1.0) for r in ours["gold"]])
        result["win_rate"] = win_rate(ours["gold"], theirs["gold"])
        base["gold_reward"] = _mean(theirs["gold"])
        base["sampled_accuracy"] = _mean([float(r == 1.0) for r in theirs["gold"]])
    # −mean log π(y|x) over the policy's own samples: a Monte-Carlo estimate of its sequence entropy
    result["sequence_entropy"] = -_mean(ours["logps"])
    base["sequence_entropy"] = -_mean(theirs["logps"])
    if pairs:
        result.update(pair_scores(model, ref_model, tokenizer, pairs, loss, params, limits))
        base.update(pair_scores(ref_model, ref_model, tokenizer, pairs, loss, params, limits))
        result["n_pairs"] = len(pairs)
    if judge is not None:
        texts = [p.prompt for p in prompts for _ in range(k)]
        probs = judge.win_probabilities(texts, ours["texts"], theirs["texts"])
        result["judge_win_rate"] = _mean(probs)
        result["judge"] = getattr(judge, "name", type(judge).__name__)
    result["base"] = base
    result["items"] = [
        {
            "id": p.id,
            "prompt": p.prompt,
            "answer": p.answer,
            "samples": ours["texts"][i * k : (i + 1) * k],
            "reference_samples": theirs["texts"][i * k : (i + 1) * k],
            "gold": ours["gold"][i * k : (i + 1) * k] if gold else None,
            "reference_gold": theirs["gold"][i * k : (i + 1) * k] if gold else None,
        }
        for i, p in enumerate(prompts)
    ]
    return result
