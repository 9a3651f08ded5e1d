"""An online-RL run of a few steps, launched once as one process and once under `accelerate launch` (2 processes):
`python tests/workers/online_rl_dp.py <model_dir> <out_dir> <per_device_batch> <steps> <variant>[,<variant>...]`.

The random tiny policy gets a bias towards EOS in its head, so completions end at different lengths (the ranks'
shares hold different token counts), and the reward is 1 for a completion holding a digit: groups where every
completion agrees exist, which dynamic sampling drops and refills. Samples come from per-group seeds, so both
launches sample the same completions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from common import launch_note

from repro.config import resolve
from repro.data.prompts import load_prompts
from repro.distributed import DataParallel
from repro.models.loading import load_policy
from repro.rewards.functions import REWARDS
from repro.rollout.hf import make_backend
from repro.trainers.online_rl import OnlineRLTrainer

VARIANTS: dict[str, dict[str, Any]] = {
    # DAPO: the global token normaliser, clip-higher, overlong masking, dynamic sampling with refills; two
    # optimizer steps per generation (old log-probs, computed in shares and gathered)
    "dapo": {"loss_type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True, "dynamic_sampling": True,
             "dynamic_sampling_max_tries": 3, "steps_per_generation": 2},
    # Lite PPO: group mean with the batch-level std, token mean over each micro-batch, two micro-batches per step
    "lite_ppo": {"loss_type": "bnpo", "scale_rewards": "batch", "gradient_accumulation_steps": 2},
    # GSPO with a KL term: a sequence-level ratio ([B, 1] per-sequence terms), reference log-probs, sequence mean
    "gspo_kl": {"loss_type": "gspo", "beta": 0.04, "steps_per_generation": 2, "epsilon": 3e-4, "epsilon_high": 4e-4},
}  # fmt: skip


def has_digit(completions: list[str], completion_lengths: list[int], answers: list[str], **_: Any) -> list[float]:
    return [float(any(ch.isdigit() for ch in c)) for c in completions]


def main(model_dir: str, out_dir: str, per_device: int, steps: int, variants: str, strategy: str = "ddp") -> None:
    """Each comma-separated variant in turn (one launch: the process group starts once), into out_dir/<variant>."""
    dp = DataParallel.from_environment(strategy)
    for variant in variants.split(","):
        policy = run(dp, model_dir, Path(out_dir) / variant, per_device, steps, variant)
    if dp.is_main:
        (Path(out_dir) / "launch.txt").write_text(launch_note(dp, policy), encoding="utf-8")


def run(dp: DataParallel, model_dir: str, out_dir: Path, per_device: int, steps: int, variant: str) -> torch.nn.Module:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if "has_digit" not in REWARDS:
        REWARDS.add("has_digit", has_digit)
    policy, tok = load_policy(model_dir)
    head = policy.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[tok.eos_token_id] = 2.5  # roughly one completion in three ends within 8 tokens
    policy.set_output_embeddings(biased)
    raw = {
        "model": {"name_or_path": model_dir},
        "data": {"prompts": "synthetic:addition", "limit": 64},
        "train": {"max_steps": steps, "learning_rate": 3e-3, "num_generations": 4, "max_completion_length": 8,
                  "per_device_train_batch_size": per_device, "save_steps": 0, "rollout_seeding": "per_group",
                  **VARIANTS[variant]},
        "rewards": {"has_digit": {"weight": 1.0}},
        "eval": {"task": "addition"},
    }  # fmt: skip
    cfg = resolve(raw, "data-parallel worker")
    prompts = load_prompts("synthetic:addition", limit=64, seed=0)
    reference = None
    if cfg.train.beta:
        import copy

        reference = copy.deepcopy(policy).eval().requires_grad_(False)
    trainer = OnlineRLTrainer(
        cfg, policy, tok, prompts, make_backend("hf", policy, tok), out_dir, seed=0, ref_model=reference, dp=dp
    )  # fmt: skip
    trainer.train(progress=False)
    return policy


if __name__ == "__main__":
    model_dir, out_dir, per_device, steps, variant = sys.argv[1:6]
    main(model_dir, out_dir, int(per_device), int(steps), variant, *sys.argv[6:7])  # [strategy: ddp | fsdp]
