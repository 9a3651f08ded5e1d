"""A distillation run of a few steps, launched once as one process and once under `accelerate launch` (2 processes):
`python tests/workers/distillation_dp.py <model_dir> <out_dir> <per_device_batch> <steps> <lmbda>`.

The teacher is the student with seeded noise added (a different, fixed policy). With lmbda 0.5 and seq_kd, the
micro-batches of a step come from student and teacher samples alike; samples come from per-prompt seeds, so both
launches sample the same completions, and the ranks' shares hold different token counts (the normaliser counts
every rank's).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from common import launch_note, noisy_copy, short_run

from repro.data.prompts import load_prompts
from repro.distillation_config import resolve_distillation
from repro.distributed import DataParallel
from repro.models.loading import load_policy
from repro.trainers.distillation import DistillationTrainer


def main(model_dir: str, out_dir: str, per_device: int, steps: int, lmbda: str, strategy: str = "ddp") -> None:
    dp = DataParallel.from_environment(strategy)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    student, tok = load_policy(model_dir)
    teacher = noisy_copy(student, 0.3)
    raw = short_run("distillation", model_dir, {"prompts": "synthetic:addition", "limit": 64}, steps, per_device,
                    teacher_model_name_or_path="the noisy copy", lmbda=float(lmbda), seq_kd=True, max_new_tokens=8,
                    gradient_accumulation_steps=2, rollout_seeding="per_group")  # fmt: skip
    cfg = resolve_distillation(raw, "data-parallel worker")
    problems = load_prompts("synthetic:addition", limit=64, seed=0)
    DistillationTrainer(cfg, student, tok, teacher, problems, Path(out_dir), seed=0, dp=dp).train(progress=False)
    if dp.is_main:
        (Path(out_dir) / "launch.txt").write_text(launch_note(dp, student), encoding="utf-8")


if __name__ == "__main__":
    model_dir, out_dir, per_device, steps, lmbda = sys.argv[1:6]
    main(model_dir, out_dir, int(per_device), int(steps), lmbda, *sys.argv[6:7])  # [strategy: ddp | fsdp]
