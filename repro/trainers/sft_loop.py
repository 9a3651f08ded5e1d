"""The supervised fine-tuning loop (`trainer: sft`): SFT or DFT per-token losses, optionally averaged by BEMA.

One optimizer step:

    GA micro-batches of (prompt, completion) → rows prompt+completion+EOS, labels on the completion (TRL's
    completion_only_loss) → N = label tokens of the whole window → per micro-batch Σ_t ℓ_t / N (nll or dft,
    repro/losses/sft.py), backward → clip → AdamW step → BEMA / EMA update on TRL's schedule (repro/trainers/bema.py)

Every step logs the optimised loss, the NLL of the same tokens, TRL's SFT metrics (mean token accuracy, entropy),
the mean target-token probability, and `loss_formula_gap`: |logged loss − the configured formula recomputed in
float64 from softmax probabilities| (DFT's claim that the loss *is* −sg(p)·log p). Every `eval_every` steps and at
the last step, each iterate (raw θ_t; with BEMA also the EMA and BEMA iterates, at the same steps) is scored on
held-out examples: `eval_loss[_ema|_bema]` (NLL per completion token, whatever the training loss) and, for a
synthetic task, `eval_accuracy[_ema|_bema]` (greedy). Checkpoints (with BEMA's buffers) make a killed run resume.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from repro.data.sft_data import SFTExample, TrainingStream
from repro.distributed import DataParallel
from repro.losses.sft import SFT_LOSSES, sft_loss, target_logps
from repro.schema import ConfigError
from repro.sft_config import SFTRunConfig
from repro.trainers.bema import BemaAverager, load_iterate, trainable_parameters
from repro.trainers.checkpoint import load_checkpoint, load_checkpoint_tensors, save_checkpoint
from repro.trainers.loop import adamw, clipped_update, drive_steps
from repro.trainers.sft import completion_batch


def encode(tokenizer: Any, examples: list[SFTExample], max_length: int | None, completion_only: bool = True) -> Any:
    return completion_batch(
        tokenizer,
        [e.prompt for e in examples],
        [e.completion for e in examples],
        max_length=max_length,
        completion_only=completion_only,
    )


def label_count(batch: dict[str, torch.Tensor]) -> int:
    """Tokens with a label after the causal shift (TRL's num_items_in_batch for one micro-batch)."""
    return int((batch["labels"][:, 1:] != -100).sum())


@torch.no_grad()
def recomputed_loss(logits: torch.Tensor, labels: torch.Tensor, loss_type: str, num_items: int) -> float:
    """The loss formula evaluated independently: float64 softmax probabilities p, then −log p or −p·log p."""
    probs = logits[:, :-1].double().softmax(-1)  # [B, L−1, V]
    shift_labels = labels[:, 1:]  # [B, L−1]
    mask = shift_labels != -100  # [B, L−1]
    p = probs.gather(-1, shift_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # [B, L−1]
    per_token = -torch.log(p) * (p if loss_type == "dft" else 1.0)  # [B, L−1]
    return float(per_token[mask].sum()) / max(num_items, 1)


@torch.no_grad()
def heldout_loss(model: Any, tokenizer: Any, examples: list[SFTExample], max_length: int | None) -> dict[str, float]:
    """NLL per completion token and next-token accuracy of `examples` (batches of 256)."""
    model.eval()
    total, correct, count = 0.0, 0, 0
    for start in range(0, len(examples), 256):
        batch = encode(tokenizer, examples[start : start + 256], max_length)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # [B, L, V]
        logps, mask = target_logps(logits, batch["labels"])  # [B, L−1]
        total += float(-logps.sum())
        correct += int(((logits[:, :-1].argmax(-1) == batch["labels"][:, 1:]) & mask).sum())
        count += int(mask.sum())
    return {"loss": total / max(count, 1), "token_accuracy": correct / max(count, 1)}


@torch.no_grad()
def greedy_accuracy(
    model: Any, tokenizer: Any, problems: list[Any], template: str, answer_style: str, max_new: int
) -> float:
    from repro.data.templates import render
    from repro.eval.synthetic import generate_completions
    from repro.rewards.grader import extract_answer, grade

    model.eval()
    prompts = [render(template, p.prompt, tokenizer) for p in problems]
    texts, _ = generate_completions(model, tokenizer, prompts, sample=False, max_new_tokens=max_new)
    return sum(grade(extract_answer(t, answer_style), p.answer) for t, p in zip(texts, problems)) / len(problems)


class SFTTrainer:
    def __init__(
        self,
        cfg: SFTRunConfig,
        model: torch.nn.Module,
        tokenizer: Any,
        stream: TrainingStream,
        out_dir: Path,
        held_out: list[SFTExample],
        held_out_problems: list[Any] | None = None,  # synthetic: scored for greedy accuracy at the eval steps
        dp: DataParallel | None = None,  # several processes under `accelerate launch`: `stream` draws global batches
    ) -> None:
        from transformers import get_scheduler

        self.cfg, self.t = cfg, cfg.train
        self.model, self.tok, self.stream = model, tokenizer, stream
        self.out_dir = Path(out_dir)
        self.held_out = held_out[: self.t.eval_problems]
        self.problems = (held_out_problems or [])[: self.t.eval_problems]
        self.per_token = SFT_LOSSES.get(self.t.loss_type)
        self.dp = dp or DataParallel.single()
        if self.dp.shards_parameters and cfg.bema is not None:
            raise ConfigError(
                "BEMA averages whole weights on every rank; run it with resources.data_parallel: ddp (or one process)"
            )
        self.forward_model = self.dp.wrap_model(model)  # FSDP shards `model` in place: before the optimizer
        self.optimizer = adamw(model, self.t)
        self.scheduler = get_scheduler(self.t.lr_scheduler_type, self.optimizer, self.t.warmup, self.t.max_steps)
        self.params = trainable_parameters(model)
        # TRL's on_train_begin: θ₀ and the EMA start from the weights before any update
        self.bema = BemaAverager(cfg.bema, self.params) if cfg.bema is not None else None
        self.scratch = copy.deepcopy(model) if self.bema is not None else None  # holds an averaged iterate for eval
        self.step = 0
        self.metrics_rows: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ one step

    def _optimizer_step(self) -> dict[str, Any]:
        start = time.perf_counter()
        batches = [  # this rank's shard of each global micro-batch
            encode(
                self.tok, self.dp.shard(self.stream.micro_batch(self.step + 1, m)), self.t.max_length,
                self.t.completion_only_loss,
            )
            for m in range(self.t.gradient_accumulation_steps)
        ]  # fmt: skip
        n_items = int(self.dp.sum(sum(label_count(b) for b in batches)))  # N over the window, every rank's tokens
        sums = {"loss": 0.0, "recomputed": 0.0, "nll": 0.0, "prob": 0.0, "correct": 0.0, "entropy": 0.0}
        self.model.train()
        for batch in batches:
            logits = self.forward_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logps, mask = target_logps(logits, batch["labels"])  # [B, L−1], [B, L−1]
            loss = sft_loss(self.per_token(logps), mask, n_items)  # Σ ℓ_t / N: the window's micro-losses add up
            (loss * self.dp.world).backward()  # DDP averages over ranks; the global loss is the ranks' sum
            with torch.no_grad():
                detached = logits.detach()[:, :-1].float()  # [B, L−1, V]
                token_entropy = -(detached.softmax(-1) * detached.log_softmax(-1)).sum(-1)  # [B, L−1]
                sums["loss"] += loss.item()
                sums["recomputed"] += recomputed_loss(logits.detach(), batch["labels"], self.t.loss_type, n_items)
                sums["nll"] += float(-logps.detach().sum())
                sums["prob"] += float((logps.detach().exp() * mask).sum())
                sums["correct"] += float(((detached.argmax(-1) == batch["labels"][:, 1:]) & mask).sum())
                sums["entropy"] += float((token_entropy * mask).sum())
        sums = self.dp.sum_each(sums)  # every rank's share of the window
        lr = self.scheduler.get_last_lr()[0]  # the rate this step uses
        grad_norm = clipped_update(
            self.model, self.optimizer, self.scheduler, self.t.max_grad_norm, self.step + 1, self.out_dir / "ckpt"
        )
        self.step += 1
        n = max(n_items, 1)
        row: dict[str, Any] = {
            "step": self.step,
            "epoch": self.stream.epoch(self.step),
            "loss": sums["loss"],
            "loss_formula_gap": abs(sums["loss"] - sums["recomputed"]),
            "nll": sums["nll"] / n,
            "mean_token_prob": sums["prob"] / n,
            "mean_token_accuracy": sums["correct"] / n,
            "entropy": sums["entropy"] / n,
            "num_tokens": n_items,
            "grad_norm": grad_norm,
            "lr": lr,
        }
        if self.bema is not None:
            row["bema_update"] = float(self.bema.on_step_end(self.step, self.params) == "update")
        if self.t.eval_every and (self.step % self.t.eval_every == 0 or self.step == self.t.max_steps):
            row.update(self.evaluate_iterates())
        row["step_time"] = time.perf_counter() - start
        self.metrics_rows.append(row)
        return row

    def evaluate_iterates(self) -> dict[str, float]:
        """Held-out loss (and greedy accuracy) of θ_t and, with BEMA, of the EMA and BEMA iterates."""
        names = ["raw"] + (["ema", "bema"] if self.bema is not None else [])
        out: dict[str, float] = {}
        for name in names:  # one averaged iterate at a time in the scratch copy
            model = self.model if name == "raw" else load_iterate(self.scratch, self.bema.iterate(name))
            suffix = "" if name == "raw" else f"_{name}"
            out[f"eval_loss{suffix}"] = heldout_loss(model, self.tok, self.held_out, self.t.max_length)["loss"]
            if self.problems:
                d = self.cfg.data
                out[f"eval_accuracy{suffix}"] = greedy_accuracy(
                    model, self.tok, self.problems, d.template, d.answer_style, self.cfg.eval.max_new_tokens
                )
        self.model.train()
        return out

    # ------------------------------------------------------------------ driver

    def train(self, progress: bool = True) -> list[dict[str, Any]]:
        ckpt_dir = self.out_dir / "ckpt"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = load_checkpoint(ckpt_dir, self.model, self.optimizer, self.scheduler, dp=self.dp)
        if state is not None:
            self.step, self.metrics_rows = state["step"], state["metrics_rows"]
            if self.bema is not None:
                self.bema.load_state_tensors(load_checkpoint_tensors(ckpt_dir), state["bema_updates"])
        drive_steps(self, "sft", lambda row: {"loss": f"{row['loss']:.3f}", "nll": f"{row['nll']:.3f}"}, progress)
        self.model.eval()
        return self.metrics_rows

    def _save(self, ckpt_dir: Path) -> None:
        state = {"step": self.step, "metrics_rows": self.metrics_rows}
        tensors = None
        if self.bema is not None:
            state["bema_updates"] = self.bema.updates
            tensors = self.bema.state_tensors()
        save_checkpoint(ckpt_dir, self.model, self.optimizer, self.scheduler, state, tensors, dp=self.dp)

    def averaged_models(self) -> dict[str, torch.nn.Module]:
        """{"ema": model, "bema": model}: the final averaged iterates as whole models (empty without BEMA)."""
        if self.bema is None:
            return {}
        return {name: load_iterate(copy.deepcopy(self.model), self.bema.iterate(name)) for name in ("ema", "bema")}
