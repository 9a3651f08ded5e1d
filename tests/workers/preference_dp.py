"""A preference run of a few steps, launched once as one process and once under `accelerate launch` (2 processes):
`python tests/workers/preference_dp.py <model_dir> <out_dir> <per_device_batch> <steps> <loss_type> [ddp|fsdp [save_steps]]`.

The policy starts as the reference model with seeded noise added, so the log-ratios are non-zero from step 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from common import addition_pairs, launch_note, noisy_copy, short_run

from repro.data.preference import PreferencePair
from repro.distributed import DataParallel
from repro.models.loading import load_policy
from repro.preference_config import resolve_preference
from repro.trainers.preference import PreferenceTrainer


def main(
    model_dir: str,
    out_dir: str,
    per_device: int,
    steps: int,
    loss_type: str,
    strategy: str = "ddp",
    save_steps: str = "0",
) -> None:
    dp = DataParallel.from_environment(strategy)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    reference, tok = load_policy(model_dir)
    policy = noisy_copy(reference, 0.05)
    pairs = [PreferencePair(prompt, right, wrong) for prompt, right, wrong, _ in addition_pairs()]
    raw = short_run("preference", model_dir, {"pairs": "local.jsonl"}, steps, per_device, loss_type=loss_type,
                    precompute_ref_log_probs=True, lr_scheduler_type="constant")  # fmt: skip
    raw["train"]["save_steps"] = int(save_steps)  # a checkpoint every n steps (the resume test)
    cfg = resolve_preference(raw, "data-parallel worker")
    trainer = PreferenceTrainer(cfg, policy, tok, pairs, Path(out_dir), seed=0, ref_model=reference.eval(), dp=dp)
    trainer.train(progress=False)
    if dp.is_main:
        (Path(out_dir) / "launch.txt").write_text(launch_note(dp, policy), encoding="utf-8")


if __name__ == "__main__":
    model_dir, out_dir, per_device, steps, loss_type = sys.argv[1:6]
    main(model_dir, out_dir, int(per_device), int(steps), loss_type, *sys.argv[6:8])  # [strategy [save_steps]]
