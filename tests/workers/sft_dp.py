"""An SFT run of a few steps, launched once as one process and once under `accelerate launch` (2 processes):
`python tests/workers/sft_dp.py <model_dir> <out_dir> <per_device_batch> <steps> <loss_type>`.

Completions of different lengths, so the ranks' shards hold different token counts and the window normaliser N
must be the global one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from common import launch_note, short_run

from repro.data.sft_data import SFTExample, TrainingStream
from repro.distributed import DataParallel
from repro.models.loading import load_policy
from repro.sft_config import resolve_sft
from repro.trainers.sft_loop import SFTTrainer


def main(model_dir: str, out_dir: str, per_device: int, steps: int, loss_type: str, strategy: str = "ddp") -> None:
    dp = DataParallel.from_environment(strategy)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model, tok = load_policy(model_dir)
    examples = [SFTExample(f"{a}+{b}=", str(a + b) * (1 + a % 3)) for a, b in zip(range(3, 99, 6), range(5, 80, 5))]
    raw = short_run("sft", model_dir, {"dataset": "local.jsonl"}, steps, per_device, loss_type=loss_type,
                    lr_scheduler_type="constant")  # fmt: skip
    cfg = resolve_sft(raw, "data-parallel worker")
    stream = TrainingStream(seed=0, batch_size=per_device * dp.world, grad_accum=1, examples=examples)
    SFTTrainer(cfg, model, tok, stream, Path(out_dir), held_out=examples[:4], dp=dp).train(progress=False)
    if dp.is_main:
        (Path(out_dir) / "launch.txt").write_text(launch_note(dp, model), encoding="utf-8")


if __name__ == "__main__":
    model_dir, out_dir, per_device, steps, loss_type = sys.argv[1:6]
    main(model_dir, out_dir, int(per_device), int(steps), loss_type, *sys.argv[6:7])  # [strategy: ddp | fsdp]
