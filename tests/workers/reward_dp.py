"""A reward-model run of a few steps, launched once as one process and once under `accelerate launch` (2 processes):
`python tests/workers/reward_dp.py <model_dir> <out_dir> <per_device_batch> <steps> <center_rewards_coefficient>`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from repro.data.reward_pairs import RewardPair
from repro.distributed import DataParallel
from repro.reward_model_config import resolve_reward_model
from repro.trainers.reward_model import RewardModelTrainer, load_reward_model


def main(model_dir: str, out_dir: str, per_device: int, steps: int, eta: float) -> None:
    dp = DataParallel.from_environment()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model, tok = load_reward_model(model_dir, seed=0)
    pairs = [
        RewardPair(f"{a}+{b}=", str(a + b), str(a + b + 1 + a % 3), margin=(a % 4) / 3)
        for a, b in zip(range(10, 42, 2), range(7, 39, 2))
    ]
    cfg = resolve_reward_model(
        {
            "trainer": "reward_model",
            "model": {"name_or_path": model_dir},
            "data": {"pairs": "local.jsonl"},
            "train": {"max_steps": steps, "learning_rate": 1e-2, "per_device_train_batch_size": per_device,
                      "save_steps": 0, "center_rewards_coefficient": eta},
        },
        "data-parallel worker",
    )  # fmt: skip
    RewardModelTrainer(cfg, model, tok, pairs, Path(out_dir), seed=0, dp=dp).train(progress=False)
    if dp.is_main:
        (Path(out_dir) / "launch.txt").write_text(f"world {dp.world}\n", encoding="utf-8")


if __name__ == "__main__":
    model_dir, out_dir, per_device, steps, eta = sys.argv[1:6]
    main(model_dir, out_dir, int(per_device), int(steps), float(eta))
