"""A synthetic preference task with a known gold reward, built from the smoke policy's own samples.

As in the DPO paper's controlled-sentiment experiment (arXiv 2305.18290 §6.1: completions of the SFT policy,
labelled by a known reward), `prepare_preference_data` samples K completions per prompt from a prepared base
policy (the SFT / reference policy) and scores each with a gold reward. Pairs and their labels are drawn from
those samples at load time (`make_pairs`), so one prepared sample file serves every labelling a paper needs:

- `bradley_terry`: P(y_i ≻ y_j) = σ((r*_i − r*_j)/τ) (DPO Eq. 1 with a known r*),
- `deterministic`: the higher gold reward always wins (IPO §5.1's deterministic preferences),
- `label_flip`: a share of labels swapped after drawing (robust DPO's noisy labels, arXiv 2403.00409),
- `margin`: Llama 2's 4-level rating (arXiv 2307.09288 §3.2.2) from the size of the gold-reward gap,
- unpaired thumbs up/down (`unpaired_from_samples`): a completion is desirable when r* ≥ a threshold (BCO).

The gold reward of the smoke task (3-digit addition) is `digit_match`: the share of the gold answer's digits
the completion gets right, aligned from the units digit, so near misses are graded (579 vs 578 → 2/3).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from repro.data.preference import PreferencePair, UnpairedExample
from repro.io import read_jsonl, read_yaml, write_json, write_text
from repro.registry import Registry
from repro.schema import ConfigError, from_dict

GoldReward = Callable[[str, str], float]  # (completion, gold answer) -> r* in [0, 1]
GOLD_REWARDS: Registry[GoldReward] = Registry("gold reward")
PREFERENCE_MODELS = ("bradley_terry", "deterministic")


@GOLD_REWARDS.register("digit_match")
def digit_match(completion: str, answer: str) -> float:
    """Share of positions (aligned from the right) where the completion's digits equal the answer's, over the
    longer of the two; 1.0 exactly when the answer is right, 0.0 for an empty or non-numeric completion."""
    text = completion.strip()
    if not text or not text.isdigit():
        return 0.0
    width = max(len(text), len(answer))
    hits = sum(a == b for a, b in zip(reversed(text), reversed(answer), strict=False))
    return hits / width


@GOLD_REWARDS.register("exact_match")
def exact_match(completion: str, answer: str) -> float:
    """1.0 when the completion is the answer, else 0.0 (a binary gold reward)."""
    return float(completion.strip() == answer)


@GOLD_REWARDS.register("log_distance")
def log_distance(completion: str, answer: str) -> float:
    """1 − log10(1 + |c − a|)/2, floored at 0: graded by how far the number is from the answer (1 exact, 0.85 off by
    1, 0.5 off by 9, 0 off by ≥ 99; 0 for an empty or non-numeric completion). Its gaps spread the smoke policy's
    pairs over all four Llama 2 rating levels, where digit_match's put 88% on one (papers/llama2_margin)."""
    text = completion.strip()
    if not text or not text.isdigit() or not answer.isdigit():
        return 0.0
    return max(0.0, 1.0 - math.log10(1 + abs(int(text) - int(answer))) / 2)


@dataclass(frozen=True)
class PreferenceDataSpec:
    """configs/base/<name>.yaml with `kind: preference_data`: how the sample file is made."""

    kind: Literal["preference_data"]
    policy: str  # a prepared base (results/base/<policy>/model): the SFT / reference policy that samples
    task: str = "addition"
    gold_reward: str = "digit_match"
    n_train_prompts: int = 3000
    n_eval_prompts: int = 200  # ≤ the held-out set of the task (repro/data/synthetic.py HELD_OUT_N)
    samples_per_prompt: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 8
    seed: int = 0
    description: str = ""


def load_spec(path: Path) -> PreferenceDataSpec:
    from repro.data.synthetic import HELD_OUT_N, TASKS

    spec = from_dict(PreferenceDataSpec, read_yaml(path) or {}, str(path))
    if spec.task not in TASKS:
        from repro.registry import unknown_name_message

        raise ConfigError(f"{path}: task: " + unknown_name_message("task", spec.task, TASKS.names()))
    if spec.gold_reward not in GOLD_REWARDS:
        from repro.registry import unknown_name_message

        raise ConfigError(
            f"{path}: gold_reward: " + unknown_name_message("gold reward", spec.gold_reward, GOLD_REWARDS.names())
        )
    if spec.samples_per_prompt < 2:
        raise ConfigError(f"{path}: samples_per_prompt is {spec.samples_per_prompt}; a pair needs at least 2")
    if not 1 <= spec.n_eval_prompts <= HELD_OUT_N:
        raise ConfigError(f"{path}: n_eval_prompts must be in [1, {HELD_OUT_N}] (the task's held-out set)")
    return spec


def prepare_preference_data(
    config_path: Path, out: Path, base_root: Path = Path("results/base"), warm_start: int = 0
) -> dict[str, Any]:
    """Sample K completions per prompt from the prepared policy, score them with r*, write samples_{train,eval}.jsonl.
    `warm_start` k ≥ 1: from warm start k of the policy, draws seeded by seed + k (repro/warm_starts.py)."""
    import torch

    from repro.data.synthetic import held_out, make_train
    from repro.eval.synthetic import generate_completions
    from repro.models.loading import load_policy
    from repro.warm_starts import replica_name

    spec = load_spec(config_path)
    spec = dataclasses.replace(spec, policy=replica_name(spec.policy, warm_start), seed=spec.seed + warm_start)
    policy_dir = base_root / spec.policy
    if not (policy_dir / "prepare.json").is_file():
        raise ConfigError(
            f"{config_path}: policy {spec.policy!r} is not prepared; build it first with "
            f"`snakemake results/base/{spec.policy}/prepare.json`"
        )
    started = time.time()
    torch.manual_seed(spec.seed)
    model, tokenizer = load_policy(str(policy_dir / "model"))
    model.eval()
    gold = GOLD_REWARDS.get(spec.gold_reward)
    stats: dict[str, Any] = {"policy": spec.policy, "task": spec.task, "gold_reward": spec.gold_reward}
    splits = {
        "train": make_train(spec.task, spec.n_train_prompts, spec.seed),
        "eval": held_out(spec.task, n=spec.n_eval_prompts),
    }
    K = spec.samples_per_prompt
    for split, problems in splits.items():
        prompts = [p.prompt for p in problems for _ in range(K)]  # prompt-major: problem i owns [i*K, (i+1)*K)
        texts, _ = generate_completions(
            model, tokenizer, prompts, sample=True, temperature=spec.temperature, max_new_tokens=spec.max_new_tokens
        )
        rows = []
        for i, p in enumerate(problems):
            completions = texts[i * K : (i + 1) * K]
            rows.append(
                {
                    "id": p.id,
                    "prompt": p.prompt,
                    "answer": p.answer,
                    "completions": completions,
                    "gold_rewards": [gold(c, p.answer) for c in completions],
                }
            )
        write_text(out / f"samples_{split}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        rewards = [r for row in rows for r in row["gold_rewards"]]
        stats[split] = {
            "prompts": len(rows),
            "samples": len(rewards),
            "mean_gold_reward": sum(rewards) / len(rewards),
            "share_correct": sum(r == 1.0 for r in rewards) / len(rewards),
            "share_prompts_with_a_pair": sum(len(set(row["gold_rewards"])) > 1 for row in rows) / len(rows),
        }
    stats["wall_time_s"] = time.time() - started
    print(
        f"preference samples from {spec.policy}: train {stats['train']['prompts']} prompts × {K}, mean r* "
        f"{stats['train']['mean_gold_reward']:.3f}, {stats['train']['share_prompts_with_a_pair']:.0%} of prompts "
        "have two different rewards"
    )
    write_json(out / "prepare.json", stats)  # last: marks the data as finished
    return stats


# ----------------------------------------------------------------------------- labelling


def load_samples(data_dir: Path, split: str) -> list[dict[str, Any]]:
    path = data_dir / f"samples_{split}.jsonl"
    if not path.is_file():
        raise ConfigError(f"{path} is missing; prepare the preference data (see configs/base/)")
    return read_jsonl(path)


def rating_margin(gap: float) -> float:
    """Llama 2's four levels (§3.2.2: significantly better 1, better 2/3, slightly better 1/3, negligibly
    better / unsure 0), read off the gold-reward gap |r*_c − r*_r| ∈ (0, 1]."""
    if gap >= 0.75:
        return 1.0
    if gap >= 0.5:
        return 2 / 3
    if gap >= 0.25:
        return 1 / 3
    return 0.0


def make_pairs(
    samples: list[dict[str, Any]],
    *,
    preferences: str = "bradley_terry",
    bt_temperature: float = 0.1,
    label_flip: float = 0.0,
    seed: int = 0,
) -> list[PreferencePair]:
    """One pair per prompt: two of its samples with different gold rewards, labelled by the preference model.

    A prompt whose samples all score the same gives no pair (no preference to learn). Labels are drawn with
    the data seed, so every variant of a paper trains on the same pairs and the same labels.
    """
    if preferences not in PREFERENCE_MODELS:
        raise ConfigError(f"preferences {preferences!r} is not one of {', '.join(PREFERENCE_MODELS)}")
    if not 0.0 <= label_flip < 0.5:
        raise ConfigError(
            f"label_flip is {label_flip}; it must be in [0, 0.5) (above 0.5 the labels mean the opposite)"
        )
    rng = random.Random(seed)
    pairs = []
    for row in samples:
        texts, rewards = row["completions"], row["gold_rewards"]
        candidates = [
            (i, j)
            for i in range(len(texts))
            for j in range(i + 1, len(texts))
            if rewards[i] != rewards[j] and texts[i] != texts[j]
        ]
        if not candidates:
            continue
        i, j = rng.choice(candidates)
        if rewards[j] > rewards[i]:
            i, j = j, i  # i is the gold-better completion
        if preferences == "bradley_terry":
            p_i = 1.0 / (1.0 + math.exp(-(rewards[i] - rewards[j]) / bt_temperature))  # σ((r*_i − r*_j)/τ)
            if rng.random() >= p_i:
                i, j = j, i
        if rng.random() < label_flip:
            i, j = j, i
        pairs.append(
            PreferencePair(
                prompt=row["prompt"],
                chosen=texts[i],
                rejected=texts[j],
                id=str(row["id"]),
                margin=rating_margin(abs(rewards[i] - rewards[j])),
                gold_chosen=rewards[i],
                gold_rejected=rewards[j],
            )
        )
    return pairs


def unpaired_from_samples(
    samples: list[dict[str, Any]], *, threshold: float = 1.0, per_prompt: int = 2, seed: int = 0
) -> list[UnpairedExample]:
    """Thumbs up/down rows: `per_prompt` distinct samples of each prompt, desirable when r* ≥ threshold.

    No pairing and no comparison: each label is an absolute judgement of one completion (BCO's setting).
    """
    rng = random.Random(seed)
    rows = []
    for row in samples:
        first_index: dict[str, int] = {}
        for i, text in enumerate(row["completions"]):
            first_index.setdefault(text, i)
        unique = list(first_index.values())  # one row per distinct completion text
        for i in rng.sample(unique, min(per_prompt, len(unique))):
            r = row["gold_rewards"][i]
            rows.append(UnpairedExample(row["prompt"], row["completions"][i], r >= threshold, f"{row['id']}/{i}", r))
    return rows
