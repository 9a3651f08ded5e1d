"""The distillation loop (GKD, on-policy distillation, GOLD's same-tokenizer path, SFT on teacher samples).

One optimizer step of GA micro-batches (GKD, arXiv 2306.13649 Alg. 1; TRL 1.16 GKDTrainer.training_step):

    for each micro-batch: draw u ~ U[0, 1) from the run's own seeded RNG
        u < λ        → on-policy: the student samples completions for the batch's prompts (repro/rollout/hf.py)
        else, seq_kd → the teacher samples them
        else         → the dataset's completions (the synthetic task's gold answer + EOS)
    every micro-batch: student logits (grad) and teacher logits (no grad) on the same tokens → loss by name
    (repro/losses/distillation.py), normalised by the completion tokens of the whole step → one AdamW step

The step's token count is known before any backward because every micro-batch is drawn first, so the
accumulated gradient equals one batch of GA × B sequences (TRL normalises by `num_items_in_batch` the same way).
`u < λ` (TRL: `random.random() <= λ`) makes λ = 0 exactly never on-policy.

Logged per step: the loss, the on-policy share, completion length, the training batch's accuracy and per-token
reverse KL to the teacher, the prompts cut to data.max_prompt_length (`prompts_truncated`), the share of sampled
completions that hit max_new_tokens before a stop token (`truncation_rate`, steps that sampled), and cumulative FLOPs
(generation, student forward+backward, teacher forward: 2·N per token for a forward, 6·N for forward+backward).
With `train.eval_every`, a monitor (repro/eval/distillation.py) adds held-out accuracy and KL to the teacher of the
student's own samples; before step 1 it measures the teacher and the starting student on the same prompts and seed
(reference.json), the ends of the student→teacher gap. samples.jsonl holds `train.log_completions_per_step` decoded
rows of each step (repro/trainers/samples.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from repro.data.templates import render
from repro.distillation_config import DistillationRunConfig
from repro.distributed import DataParallel, require_sample_seeds
from repro.io import read_json, write_json
from repro.losses.distillation import DISTILLATION_LOSSES, DistillationParams, token_divergence
from repro.rewards.grader import extract_answer, grade
from repro.rollout.base import SamplingParams, cut_prompt, group_seed
from repro.rollout.hf import HFRollout
from repro.trainers.checkpoint import load_checkpoint, save_checkpoint
from repro.trainers.logprobs import completion_logits
from repro.trainers.loop import adamw, clipped_update, drive_steps
from repro.trainers.samples import SampleLog, decode_rows, pick_rows
from repro.trainers.sequence_logps import EncodedRow, collate

SOURCES = ("student", "teacher", "dataset")


@dataclass
class MicroBatch:
    source: str  # student (on-policy) | teacher (seq_kd) | dataset
    prompt_ids: torch.Tensor  # [B, P] left-padded
    prompt_mask: torch.Tensor  # [B, P]
    completion_ids: torch.Tensor  # [B, T] right-padded
    completion_mask: torch.Tensor  # [B, T] 1 up to and including EOS
    correct: list[bool]  # the completion's answer is right (what the batch teaches)
    truncated: list[bool] = field(default_factory=list)  # no stop token within max_new_tokens
    prompts_cut: int = 0  # prompts longer than data.max_prompt_length, cut

    @property
    def tokens(self) -> int:
        return int(self.completion_mask.sum())

    @property
    def width(self) -> int:
        return self.prompt_ids.size(1) + self.completion_ids.size(1)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class DistillationTrainer:
    def __init__(
        self,
        cfg: DistillationRunConfig,
        model: torch.nn.Module,
        tokenizer: Any,
        teacher: torch.nn.Module,
        problems: list[Any],
        out_dir: Path,
        seed: int,
        monitor: Callable[[torch.nn.Module], dict[str, float]] | None = None,  # held-out measurement
        dp: DataParallel | None = None,  # several processes under `accelerate launch` (repro/distributed.py)
    ) -> None:
        if not problems:
            raise ValueError("no training prompts: the distillation data is empty")
        self.dp = dp or DataParallel.single()
        check_data_parallel(cfg, self.dp.world)
        self.cfg, self.t = cfg, cfg.train
        self.model, self.tok, self.teacher = model, tokenizer, teacher.eval().requires_grad_(False)
        self.problems, self.out_dir, self.seed, self.monitor = problems, Path(out_dir), seed, monitor
        self.loss = DISTILLATION_LOSSES.get(self.t.loss_type)
        self.params = DistillationParams(beta=self.t.beta, temperature=self.t.loss_temperature or 1.0)
        self.sampling = SamplingParams(
            num_generations=1,
            max_new_tokens=self.t.max_new_tokens,
            temperature=self.t.temperature,
            top_p=self.t.top_p,
            top_k=self.t.top_k,
            max_prompt_length=cfg.data.max_prompt_length,
            truncation_mode=cfg.data.truncation_mode,
        )
        self.samplers = {"student": HFRollout(model, tokenizer), "teacher": HFRollout(self.teacher, tokenizer)}
        # FSDP: the ranks sample different prompts from the sharded student, each decoding step a collective
        self.samplers["student"].synced_gpus = self.dp.shards_parameters
        self.forward_model = self.dp.wrap_model(model)  # DDP under several processes: the loss's forward/backward
        self.samples_drawn = 0  # prompts sampled so far: a prompt's sample seed under rollout_seeding per_group
        self.n_student, self.n_teacher = n_params(model), n_params(self.teacher)
        self.optimizer = adamw(model, self.t)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(self.t.lr_scheduler_type, self.optimizer, self.t.warmup_steps, self.t.max_steps)
        self.policy_rng = random.Random(seed * 1_000_003 + 7)  # the on/off-policy draws, checkpointed
        self.step, self.flops = 0, 0.0
        self.order: list[int] = []
        self.cursor, self.epoch = 0, 0
        self.metrics_rows: list[dict[str, Any]] = []
        self._samples: SampleLog | None = None  # samples.jsonl, open while train() runs

    # ------------------------------------------------------------------ batches

    def _next_problems(self, n: int) -> list[Any]:
        picked = []
        for _ in range(n):
            if self.cursor >= len(self.order):
                self.order = list(range(len(self.problems)))
                random.Random(self.seed * 1_000_003 + self.epoch).shuffle(self.order)
                self.cursor, self.epoch = 0, self.epoch + 1
            picked.append(self.problems[self.order[self.cursor]])
            self.cursor += 1
        return picked

    def _draw(self) -> MicroBatch:
        """One micro-batch: prompts, then completions from the source the λ draw picks. Under data parallelism every
        rank draws the global micro-batch and the same λ, and keeps its shard of the prompts."""
        drawn = self._next_problems(self.t.per_device_train_batch_size * self.dp.world)
        first, self.samples_drawn = self.samples_drawn, self.samples_drawn + len(drawn)
        mine = self.dp.shard(list(range(len(drawn))))
        problems = [drawn[i] for i in mine]
        prompts = [render(self.cfg.data.template, p.prompt, self.tok) for p in problems]
        on_policy = self.policy_rng.random() < self.t.lmbda
        source = "student" if on_policy else ("teacher" if self.t.seq_kd else "dataset")
        if source == "dataset":
            batch = self._dataset_batch(prompts, [p.target for p in problems])
            texts = [p.target for p in problems]
        else:
            per_group = self.t.rollout_seeding == "per_group"
            seeds = {"seeds": [group_seed(self.seed, first + i) for i in mine]} if per_group else {}
            rollout = self.samplers[source].generate(prompts, self.sampling, **seeds)
            batch = MicroBatch(
                source, rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids,
                rollout.completion_mask.long(), [], rollout.truncated.tolist(), int(rollout.prompt_truncated.sum()),
            )  # fmt: skip
            texts = rollout.completions
            generator = self.n_student if source == "student" else self.n_teacher
            self.flops += 2.0 * generator * batch.width * len(problems)  # prefill + decode, KV cache
        style = self.cfg.data.answer_style
        batch.correct = [grade(extract_answer(c, style), p.answer) for c, p in zip(texts, problems)]
        return batch

    def _dataset_batch(self, prompts: list[str], targets: list[str]) -> MicroBatch:
        if any(not t for t in targets):
            raise ValueError("dataset completions are empty: off-policy batches need seq_kd: true or lmbda: 1")
        rows, truncated, cut = [], [], 0
        limit = self.cfg.data.max_prompt_length
        for prompt, target in zip(prompts, targets):
            p = self.tok(prompt, add_special_tokens=False)["input_ids"]
            cut += int(limit is not None and len(p) > limit)
            c = self.tok(target, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]
            rows.append(EncodedRow(cut_prompt(p, limit, self.cfg.data.truncation_mode), c[: self.t.max_new_tokens]))
            truncated.append(len(c) > self.t.max_new_tokens)  # the EOS was cut off
        prompt_ids, prompt_mask, completion_ids, completion_mask = collate(rows, self.tok.pad_token_id)
        return MicroBatch("dataset", prompt_ids, prompt_mask, completion_ids, completion_mask, [], truncated, cut)

    # ------------------------------------------------------------------ one optimizer step

    def _optimizer_step(self) -> dict[str, Any]:
        start = time.perf_counter()
        flops_before = self.flops
        window = [self._draw() for _ in range(self.t.gradient_accumulation_steps)]
        num_items = max(self.dp.sum(sum(b.tokens for b in window)), 1)  # completion tokens of the step, all ranks
        loss_total, kl_sum = 0.0, 0.0
        for b in window:
            args = (b.prompt_ids, b.prompt_mask, b.completion_ids, b.completion_mask)
            s_logits = completion_logits(self.forward_model, *args)  # [B, T, V]
            t_logits = None
            if self.loss.needs_teacher_logits:
                with torch.no_grad():
                    t_logits = completion_logits(self.teacher, *args)  # [B, T, V]
                self.flops += 2.0 * self.n_teacher * b.width * b.prompt_ids.size(0)
            loss = self.loss.fn(s_logits, t_logits, b.completion_ids, b.completion_mask, self.params, num_items)
            # Σ over this rank's tokens / the step's global count: DDP's average over ranks is undone by the factor
            (loss if self.dp.world == 1 else loss * self.dp.world).backward()
            self.flops += 6.0 * self.n_student * b.width * b.prompt_ids.size(0)
            loss_total += loss.item()
            if t_logits is not None:  # the training batch's own per-token reverse KL at T = 1 (a diagnostic)
                with torch.no_grad():
                    kl = token_divergence(s_logits.detach(), t_logits, beta=1.0)  # [B, T]
                kl_sum += float((kl * b.completion_mask).sum())
        grad_norm = clipped_update(
            self.model, self.optimizer, self.scheduler, self.t.max_grad_norm, self.step + 1, self.out_dir / "ckpt"
        )
        self.step += 1
        correct = [c for b in window for c in b.correct]
        cut = [t for b in window if b.source != "dataset" for t in b.truncated]  # sampled rows without a stop token
        prompts_cut = sum(b.prompts_cut for b in window)
        if self.dp.world > 1:  # the step's numbers over every rank's share
            correct = [c for rank in self.dp.gather_objects(correct) for c in rank]
            cut = [t for rank in self.dp.gather_objects(cut) for t in rank]
            totals = self.dp.sum_each(
                {"loss": loss_total, "kl": kl_sum, "flops": self.flops - flops_before, "cut": prompts_cut}
            )
            loss_total, kl_sum, self.flops = totals["loss"], totals["kl"], flops_before + totals["flops"]
            prompts_cut = round(totals["cut"])
        row: dict[str, Any] = {
            "step": self.step,
            "loss": loss_total,
            "on_policy_share": sum(b.source == "student" for b in window) / len(window),
            "completion_length": num_items / len(correct),
            "train_accuracy": sum(correct) / len(correct),
            "grad_norm": grad_norm,
            "lr": self.scheduler.get_last_lr()[0],
            "flops": self.flops,
            "prompts_truncated": prompts_cut,  # longer than data.max_prompt_length, cut
        }
        if cut:  # the step sampled (student or teacher): the share that hit max_new_tokens before a stop token
            row["truncation_rate"] = sum(cut) / len(cut)
        if self.loss.needs_teacher_logits:
            row["train_reverse_kl"] = kl_sum / num_items
        row["step_time"] = time.perf_counter() - start
        monitored = self.monitor is not None and self.t.eval_every and self.step % self.t.eval_every == 0
        if monitored and (self.dp.is_main or self.dp.shards_parameters):  # DDP: the main rank measures
            row.update({f"eval_{k}": v for k, v in self.monitor(self.model).items()})
        self.metrics_rows.append(row)
        self._log_samples(window)
        return row

    def _log_samples(self, window: list[MicroBatch]) -> None:
        """train.log_completions_per_step rows of the step's micro-batches to samples.jsonl (main rank, its own
        share): the first row of each micro-batch, then the second, …."""
        k = self.t.log_completions_per_step
        if not k or self._samples is None or not self.dp.is_main:
            return
        flat = [(b, i) for b in window for i in range(b.prompt_ids.size(0))]
        samples = []
        for j in pick_rows(len(flat), self.t.per_device_train_batch_size, k):
            b, i = flat[j]
            (text,) = decode_rows(self.tok, b.prompt_ids, b.prompt_mask, b.completion_ids, b.completion_mask, [i])
            samples.append(
                {"step": self.step, **text, "source": b.source, "correct": bool(b.correct[i]),
                 "truncated": bool(b.truncated[i])}
            )  # fmt: skip
        self._samples.write(samples)

    # ------------------------------------------------------------------ driver

    def train(self, progress: bool = True) -> list[dict[str, Any]]:
        ckpt_dir = self.out_dir / "ckpt"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = load_checkpoint(ckpt_dir, self.model, self.optimizer, self.scheduler, dp=self.dp)
        if state is not None:
            self.step, self.flops, self.metrics_rows = state["step"], state["flops"], state["metrics_rows"]
            self.order, self.cursor, self.epoch = state["order"], state["cursor"], state["epoch"]
            self.samples_drawn = state.get("samples_drawn", 0)
            version, internal, gauss = state["policy_rng"]
            self.policy_rng.setstate((version, tuple(internal), gauss))
        self._write_reference()
        self.model.train()
        # samples.jsonl keeps the rows of the steps resumed from, as metrics.jsonl does
        self._samples = SampleLog(self.out_dir, self.step, self.dp.is_main and self.t.log_completions_per_step > 0)
        try:
            drive_steps(
                self, "distill", lambda r: {"loss": f"{r['loss']:.3f}", "acc": f"{r['train_accuracy']:.2f}"}, progress
            )
        finally:
            self._samples.close()
        return self.metrics_rows

    def _write_reference(self) -> None:
        """The monitor's numbers for the teacher and the starting student (written once, before step 1)."""
        path = self.out_dir / "reference.json"
        if self.monitor is None or path.is_file() or not (self.dp.is_main or self.dp.shards_parameters):
            return
        if self.step > 0:
            raise RuntimeError(f"{path} is missing but the run resumes at step {self.step}; delete the run dir")
        reference = {"teacher": self.monitor(self.teacher), "base": self.monitor(self.model)}  # FSDP: every rank
        if self.dp.is_main:
            write_json(path, reference)

    def _save(self, ckpt_dir: Path) -> None:
        version, internal, gauss = self.policy_rng.getstate()
        save_checkpoint(
            ckpt_dir,
            self.model,
            self.optimizer,
            self.scheduler,
            {
                "step": self.step,
                "flops": self.flops,
                "metrics_rows": self.metrics_rows,
                "order": self.order,
                "cursor": self.cursor,
                "epoch": self.epoch,
                "policy_rng": [version, list(internal), gauss],
                "samples_drawn": self.samples_drawn,
            },
            dp=self.dp,
        )


def check_data_parallel(cfg: DistillationRunConfig, world: int) -> None:
    """Refuse, before models load, a distillation run on several processes that could not match one process."""
    require_sample_seeds("distillation", cfg.train.rollout_seeding, world)


def read_reference(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "reference.json"
    return read_json(path) if path.is_file() else None
