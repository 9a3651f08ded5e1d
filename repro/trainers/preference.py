"""The offline preference loop (DPO family, CPO-style AlphaPO, unpaired BCO), one pass per optimizer step:

    next pairs → policy log-probs of chosen and rejected (one forward over [chosen; rejected])
    → reference log-probs (precomputed once, or a frozen reference forward) → loss (by name) → step

Every paper's trainer composes this loop. Metrics follow TRL's DPO names where they exist: implicit rewards
of chosen and rejected, accuracy, margin, summed log-probs (likelihood displacement), plus the log-ratios
ρ = log π − log π_ref themselves. With `train.eval_every`, the policy's samples on held-out prompts are
scored for gold reward and KL to the reference (points on the reward/KL frontier, repro/eval/alignment.py).
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import torch

from repro.data.preference import PreferencePair, UnpairedExample
from repro.distributed import DataParallel
from repro.io import read_json, write_json
from repro.losses.preference import (
    PreferenceLogps,
    PreferenceParams,
    RunningMoments,
    bco_unpaired_loss,
    combined_loss,
)
from repro.preference_config import PreferenceRunConfig
from repro.trainers.checkpoint import load_checkpoint, save_checkpoint
from repro.trainers.loop import adamw, clipped_update, drive_steps, mean_rows
from repro.trainers.sequence_logps import EncodedRow, encode_rows, sequence_logps, sequence_logps_batched


class PreferenceTrainer:
    def __init__(
        self,
        cfg: PreferenceRunConfig,
        model: torch.nn.Module,
        tokenizer: Any,
        examples: list[PreferencePair] | list[UnpairedExample],
        out_dir: Path,
        seed: int,
        ref_model: torch.nn.Module | None = None,  # a frozen reference (None: precomputed reference log-probs)
        monitor: Any = None,  # repro/eval/alignment.py FrontierMonitor, called every eval_every steps
        dp: DataParallel | None = None,  # several processes under `accelerate launch` (repro/distributed.py)
    ) -> None:
        self.cfg, self.t = cfg, cfg.train
        self.model, self.tok, self.ref_model = model, tokenizer, ref_model
        self.out_dir, self.seed, self.monitor = Path(out_dir), seed, monitor
        self.unpaired = cfg.data.format == "unpaired"
        self.examples = examples
        if not examples:
            raise ValueError("no training examples: the preference data is empty after filtering")
        self.loss = None if self.unpaired else combined_loss(self.t.loss_terms)
        self.needs_reference = self.unpaired or self.loss.needs_reference
        # A reference-free loss (AlphaPO) still logs ρ = log π − log π_ref when the reference is precomputed
        # (one cheap pass): likelihood displacement is what its paper measures.
        self.uses_reference = self.needs_reference or self.t.precompute_ref_log_probs
        self.params = PreferenceParams(
            beta=self.t.beta,
            label_smoothing=self.t.label_smoothing or 0.0,
            discopop_tau=self.t.discopop_tau,
            alpha=self.t.alpha,
            simpo_gamma=self.t.simpo_gamma,
        )
        self.running = RunningMoments()  # unpaired BCO's reward shift δ
        limits = {
            "max_prompt_length": cfg.data.max_prompt_length,
            "max_completion_length": self.t.max_completion_length,
            "max_length": self.t.max_length,
        }
        self.rows = self._encode(examples, limits)  # paired: (chosen, rejected); unpaired: (row,)
        # Data parallel: every rank draws the global batch (per-device size × ranks) and trains on its shard.
        self.dp = dp or DataParallel.single()
        self.forward_model = self.dp.wrap_model(model)  # FSDP shards `model` in place: before the optimizer
        self.optimizer = adamw(model, self.t)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(self.t.lr_scheduler_type, self.optimizer, self.t.warmup_steps, self.t.max_steps)
        self.step = 0
        self.order: list[int] = []
        self.cursor = 0
        self.epoch = 0
        self.metrics_rows: list[dict[str, Any]] = []
        self.ref_logps: torch.Tensor | None = None  # [n_examples, 2] (paired) or [n_examples, 1]

    def _encode(self, examples: list[Any], limits: dict[str, int | None]) -> list[tuple[EncodedRow, ...]]:
        if self.unpaired:
            return [(row,) for row in encode_rows(self.tok, [(e.prompt, e.completion) for e in examples], **limits)]
        n = len(examples)
        rows = encode_rows(
            self.tok, [(e.prompt, e.chosen) for e in examples] + [(e.prompt, e.rejected) for e in examples], **limits
        )  # one call: each prompt is tokenized once for both of its rows
        return list(zip(rows[:n], rows[n:], strict=True))

    # ------------------------------------------------------------------ reference log-probs

    def _precompute_reference(self) -> torch.Tensor:
        """One no-grad pass of the initial policy (TRL's precompute_ref_log_probs), cached in the run dir so a
        resumed run scores against the same reference.

        Only the examples the run will draw are scored (a shortened run visits few of them); when it visits
        every example the pass is the full one, batch for batch, so full runs keep their exact numbers.
        """
        cache = self.out_dir / "ref_logps.json"
        if cache.is_file():
            stored = read_json(cache)
            values = torch.tensor(stored["ref_logps"], dtype=torch.float32)
            if stored.get("n_examples", len(values)) != len(self.rows):
                raise RuntimeError(
                    f"{cache} holds reference log-probs of {stored.get('n_examples', len(values))} examples but this "
                    f"run has {len(self.rows)} (the data changed under the run dir); delete it and rerun"
                )
            if "indices" not in stored:
                return values
            full = torch.full((stored["n_examples"], values.size(1)), float("nan"))  # [n, 1|2]
            full[stored["indices"]] = values
            return full
        source = self.ref_model if self.ref_model is not None else self.model
        needed = self._visited_indices()
        if len(needed) == len(self.rows):
            flat = [r for rows in self.rows for r in rows]
            logps = sequence_logps_batched(source, flat, self.tok.pad_token_id).view(len(self.rows), -1)  # [n, 1|2]
            if self.dp.is_main:
                write_json(cache, {"ref_logps": logps.tolist()})
            return logps
        flat = [r for i in needed for r in self.rows[i]]
        values = sequence_logps_batched(source, flat, self.tok.pad_token_id).view(len(needed), -1)  # [m, 1|2]
        if self.dp.is_main:
            write_json(cache, {"n_examples": len(self.rows), "indices": needed, "ref_logps": values.tolist()})
        full = torch.full((len(self.rows), values.size(1)), float("nan"))  # [n, 1|2], NaN where never drawn
        full[needed] = values
        return full

    def _visited_indices(self) -> list[int]:
        """Every example index the run's max_steps optimizer steps draw (a replay of `_next_indices`), sorted."""
        saved = (self.order, self.cursor, self.epoch)
        self.order, self.cursor, self.epoch = [], 0, 0
        picks = (
            self.t.max_steps * self.t.gradient_accumulation_steps * self.t.per_device_train_batch_size * self.dp.world
        )
        visited = sorted(set(self._next_indices(picks)))
        self.order, self.cursor, self.epoch = saved
        return visited

    # ------------------------------------------------------------------ batches

    def _next_indices(self, n: int) -> list[int]:
        picked = []
        for _ in range(n):
            if self.cursor >= len(self.order):
                self.order = list(range(len(self.rows)))
                random.Random(self.seed * 1_000_003 + self.epoch).shuffle(self.order)
                self.cursor = 0
                self.epoch += 1
            picked.append(self.order[self.cursor])
            self.cursor += 1
        return picked

    def _reference(self, idx: list[int], rows: list[EncodedRow]) -> torch.Tensor | None:
        if not self.uses_reference:
            return None
        if self.ref_logps is not None:
            ref = self.ref_logps[idx].T.reshape(-1)  # [k·B] laid out like `rows` (chosen block, rejected block)
            if torch.isnan(ref).any():
                raise RuntimeError(
                    f"{self.out_dir / 'ref_logps.json'} lacks reference log-probs for examples this run draws (was it "
                    "made by a shorter run?); delete it and rerun"
                )
            return ref
        with torch.no_grad():
            return sequence_logps(self.ref_model, rows, self.tok.pad_token_id)[0]

    def _micro_batch(self, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        if self.unpaired:
            return self._unpaired_micro_batch(idx)
        rows = [self.rows[i][0] for i in idx] + [self.rows[i][1] for i in idx]  # [chosen…; rejected…]
        logps, lengths = sequence_logps(self.forward_model, rows, self.tok.pad_token_id)  # [2B], [2B]
        ref = self._reference(idx, rows)  # [2B] or None
        B = len(idx)
        inputs = PreferenceLogps.from_stacked(logps, ref if self.needs_reference else None, lengths)
        out = self.loss.fn(inputs, self.params)
        loss = out.losses.mean()
        stats = {
            "loss": loss.item(),
            "rewards_chosen": float(out.chosen_rewards.mean()),
            "rewards_rejected": float(out.rejected_rewards.mean()),
            "accuracy": float((out.chosen_rewards > out.rejected_rewards).float().mean()),
            "margin": float((out.chosen_rewards - out.rejected_rewards).mean()),
            "logps_chosen": float(inputs.chosen.detach().mean()),
            "logps_rejected": float(inputs.rejected.detach().mean()),
            "completion_length": float(lengths.mean()),
            "frac_zero_loss": float((out.losses.detach() == 0).float().mean()),  # pairs that no longer pull (hinge)
        }
        if ref is not None:
            rho = logps.detach() - ref  # [2B] ρ = log π − log π_ref
            rho_c, rho_r = rho[:B], rho[B:]
            stats["logratio_chosen"] = float(rho_c.mean())
            stats["logratio_rejected"] = float(rho_r.mean())
            stats["logratio_margin"] = float((rho_c - rho_r).mean())  # DPO's unscaled margin
            # IPO's quantity under TRL's length normalisation: ρ_c/|y_c| − ρ_r/|y_r| (its target is 1/(2β))
            stats["logratio_margin_per_token"] = float((rho_c / lengths[:B] - rho_r / lengths[B:]).mean())
        return loss, stats

    def _unpaired_micro_batch(self, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        rows = [self.rows[i][0] for i in idx]
        logps, lengths = sequence_logps(self.forward_model, rows, self.tok.pad_token_id)  # [N], [N]
        ref = self._reference(idx, rows)  # [N]
        labels = torch.tensor([self.examples[i].label for i in idx])  # [N] bool: desirable
        rewards = self.t.beta * (logps.detach() - ref)  # [N] r = β(log π − log π_ref)
        delta, _ = self.running.update(self.dp.gather(rewards))  # BCO: δ updated with the global batch before use
        losses, rewards = bco_unpaired_loss(logps, ref, labels, self.t.beta, delta)  # [N], [N]
        loss = losses.mean()
        up, down = rewards[labels], rewards[~labels]
        return loss, {
            "loss": loss.item(),
            "rewards_desirable": float(up.mean()) if len(up) else math.nan,
            "rewards_undesirable": float(down.mean()) if len(down) else math.nan,
            "delta": float(delta),
            "logratio_desirable": float((logps.detach() - ref)[labels].mean()) if len(up) else math.nan,
            "logratio_undesirable": float((logps.detach() - ref)[~labels].mean()) if len(down) else math.nan,
            "completion_length": float(lengths.mean()),
        }

    # ------------------------------------------------------------------ driver

    def train(self, progress: bool = True) -> list[dict[str, Any]]:
        ckpt_dir = self.out_dir / "ckpt"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.uses_reference and self.t.precompute_ref_log_probs:  # before any update: the initial policy's
            if self.dp.is_main or self.dp.shards_parameters:  # FSDP: the policy's forward is a collective
                self.ref_logps = self._precompute_reference()  # computed once, cached in the run dir
            self.dp.barrier()
            if self.ref_logps is None:
                self.ref_logps = self._precompute_reference()  # reads the main rank's cache
        state = load_checkpoint(ckpt_dir, self.model, self.optimizer, self.scheduler, dp=self.dp)
        if state is not None:
            self.step, self.metrics_rows = state["step"], state["metrics_rows"]
            self.order, self.cursor, self.epoch = state["order"], state["cursor"], state["epoch"]
            self.running.mean, self.running.var, self.running.count = state["running"]
        self.model.train()
        drive_steps(
            self,
            "train",
            lambda row: {"loss": f"{row['loss']:.3f}", "acc": f"{row.get('accuracy', math.nan):.2f}"},
            progress,
        )
        return self.metrics_rows

    def _optimizer_step(self) -> dict[str, Any]:
        start = time.perf_counter()
        window = []
        for _ in range(self.t.gradient_accumulation_steps):
            drawn = self._next_indices(self.t.per_device_train_batch_size * self.dp.world)  # the global batch
            loss, stats = self._micro_batch(self.dp.shard(drawn))
            (loss / self.t.gradient_accumulation_steps).backward()  # HF divides DPO's loss by GA
            window.append(stats)
        grad_norm = clipped_update(
            self.model, self.optimizer, self.scheduler, self.t.max_grad_norm, self.step + 1, self.out_dir / "ckpt"
        )
        self.step += 1
        row: dict[str, Any] = {"step": self.step, "epoch": self.epoch, **self.dp.mean(mean_rows(window))}
        row.update(grad_norm=grad_norm, lr=self.scheduler.get_last_lr()[0])
        row["step_time"] = time.perf_counter() - start
        if self.monitor is not None and self.t.eval_every and self.step % self.t.eval_every == 0:
            row.update(self.monitor(self.model))
            self.model.train()
        self.metrics_rows.append(row)
        return row

    def _save(self, ckpt_dir: Path) -> None:
        save_checkpoint(
            ckpt_dir,
            self.model,
            self.optimizer,
            self.scheduler,
            {
                "step": self.step,
                "metrics_rows": self.metrics_rows,
                "order": self.order,
                "cursor": self.cursor,
                "epoch": self.epoch,
                "running": [self.running.mean, self.running.var, self.running.count],
            },
            dp=self.dp,
        )
