"""A reward-model run of a few steps, launched once as one process and once under `accelerate launch` (2 processes):
`python tests/workers/reward_dp.py <model_dir> <out_dir> <per_device_batch> <steps> <center_rewards_coefficient>`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from common import addition_pairs, launch_note, short_run

from repro.data.reward_pairs import RewardPair
from repro.distributed import DataParallel
from repro.reward_model_config import resolve_reward_model
from repro.trainers.reward_model import RewardModelTrainer, load_reward_model


def main(model_dir: str, out_dir: str, per_device: int, steps: int, eta: float, strategy: str = "ddp") -> None:
    dp = DataParallel.from_environment(strategy)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model, tok = load_reward_model(model_dir, seed=0)
    pairs = [RewardPair(prompt, right, wrong, margin=(a % 4) / 3) for prompt, right, wrong, a in addition_pairs()]
    raw = short_run("reward_model", model_dir, {"pairs": "local.jsonl"}, steps, per_device,
                    center_rewards_coefficient=eta)  # fmt: skip
    cfg = resolve_reward_model(raw, "data-parallel worker")
    RewardModelTrainer(cfg, model, tok, pairs, Path(out_dir), seed=0, dp=dp).train(progress=False)
    if dp.is_main:
        (Path(out_dir) / "launch.txt").write_text(launch_note(dp, model), encoding="utf-8")


if __name__ == "__main__":
    model_dir, out_dir, per_device, steps, eta = sys.argv[1:6]
    main(model_dir, out_dir, int(per_device), int(steps), float(eta), *sys.argv[6:7])  # [strategy: ddp | fsdp]
