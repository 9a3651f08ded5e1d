"""The reward-model loop (TRL 1.16 RewardTrainer's data path and loss), one pass per optimizer step:

    next pairs → one forward over [chosen; rejected] → r_c, r_r (the last non-pad token's score)
    → −mean log σ(r_c − r_r − m) + η·mean (r_c + r_r)² (repro/losses/reward_model.py) → step

The model is `AutoModelForSequenceClassification` with one output (`num_labels=1`) on the starting checkpoint: a
causal LM's body with a new linear `score` head (no bias), initialised from the run seed. As in TRL, a pair is
`prompt + completion + EOS` as one text tokenised with the tokenizer's own special tokens, batches are
right-padded, and pairs longer than `max_length` are dropped, not truncated. The model pools the rightmost token
that is not the pad id; a tokenizer whose pad is its EOS (Llama 2, Qwen2.5 base) therefore scores the last text
token, not the appended EOS: TRL does the same, and so does the reward-model judge (repro/eval/judge.py).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from repro.data.reward_pairs import RewardPair
from repro.distributed import DataParallel
from repro.losses.reward_model import reward_model_loss
from repro.reward_model_config import RewardRunConfig
from repro.trainers.checkpoint import load_checkpoint, save_checkpoint
from repro.trainers.loop import adamw, clipped_update, drive_steps, mean_rows


@dataclass(frozen=True)
class EncodedPair:
    chosen: list[int]  # token ids of prompt + chosen + EOS
    rejected: list[int]
    margin: float | None  # m; None: no margin
    level: int | None = None  # the pair's Llama 2 rating level (per-level evaluation)


def load_reward_model(path: str, dtype: str = "float32", seed: int = 0, trust_remote_code: bool = False) -> tuple:
    """(model, tokenizer): the checkpoint as a one-output sequence classifier. A checkpoint without a head gets a
    new one drawn from `seed` (TRL seeds before loading for the same reason), so a run's untrained head can be
    rebuilt exactly for its evaluation's `base` numbers. Pad = EOS when the tokenizer has none (TRL's rule)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from repro.models.loading import DTYPES

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized: score.weight" is the point here, not a warning
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = tokenizer.pad_token_id  # the pooling finds the last non-pad token by this id
    return model, tokenizer


def encode_text(tokenizer: Any, prompt: str, completion: str) -> list[int]:
    """TRL's RewardTrainer tokenisation of one side of a pair: prompt + completion, EOS appended unless present."""
    text = prompt + completion
    if not text.endswith(tokenizer.eos_token):
        text += tokenizer.eos_token
    return tokenizer(text)["input_ids"]


def encode_pairs(tokenizer: Any, pairs: list[RewardPair], max_length: int | None) -> tuple[list[EncodedPair], int]:
    """(encoded pairs, how many were dropped): a pair with either side longer than max_length is dropped (TRL)."""
    kept, dropped = [], 0
    for pair in pairs:
        chosen = encode_text(tokenizer, pair.prompt, pair.chosen)
        rejected = encode_text(tokenizer, pair.prompt, pair.rejected)
        if max_length is not None and max(len(chosen), len(rejected)) > max_length:
            dropped += 1
            continue
        kept.append(EncodedPair(chosen, rejected, pair.margin, pair.level))
    return kept, dropped


def collate_pairs(pairs: list[EncodedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """TRL's DataCollatorForPreference: [chosen…; rejected…] right-padded, and the margins when pairs have them."""
    rows = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # [2B, L]
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # [2B, L]
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    margins = [p.margin for p in pairs]
    if any(m is not None for m in margins):
        if any(m is None for m in margins):
            raise ValueError("some pairs have a margin and some do not; give every pair one, or none")
        batch["margin"] = torch.tensor(margins, dtype=torch.float)  # [B]
    return batch


def pair_rewards(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_c [B], r_r [B]) from one forward over the collated [chosen; rejected] batch."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    rewards = logits.squeeze(-1).float()  # [2B]
    return torch.chunk(rewards, 2)


@torch.no_grad()
def score_pairs(
    model: torch.nn.Module, pairs: list[EncodedPair], pad_id: int, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_c [N], r_r [N]) of many pairs without gradient, in eval mode."""
    was_training = model.training
    model.eval()
    chosen, rejected = [], []
    for start in range(0, len(pairs), batch_size):
        r_c, r_r = pair_rewards(model, collate_pairs(pairs[start : start + batch_size], pad_id))
        chosen.append(r_c)
        rejected.append(r_r)
    model.train(was_training)
    empty = torch.zeros(0)
    return (torch.cat(chosen) if chosen else empty), (torch.cat(rejected) if rejected else empty)


class RewardModelTrainer:
    def __init__(
        self,
        cfg: RewardRunConfig,
        model: torch.nn.Module,
        tokenizer: Any,
        pairs: list[RewardPair],
        out_dir: Path,
        seed: int,
        monitor_pairs: list[RewardPair] | None = None,  # held-out pairs scored every train.eval_every steps
        dp: DataParallel | None = None,  # several processes under `accelerate launch` (repro/distributed.py)
    ) -> None:
        self.cfg, self.t = cfg, cfg.train
        self.model, self.tok = model, tokenizer
        self.out_dir, self.seed = Path(out_dir), seed
        self.pad_id = int(tokenizer.pad_token_id)
        self.pairs, self.n_dropped = encode_pairs(tokenizer, pairs, self.t.max_length)
        if not self.pairs:
            raise ValueError(
                f"no training pairs left: all {len(pairs)} are longer than train.max_length={self.t.max_length}"
            )
        self.monitor = encode_pairs(tokenizer, monitor_pairs or [], self.t.max_length)[0]
        # Data parallel: every rank draws the global batch (per-device size × ranks) and trains on its shard.
        self.dp = dp or DataParallel.single()
        self.forward_model = self.dp.wrap_model(model)  # FSDP shards `model` in place: before the optimizer
        self.optimizer = adamw(model, self.t)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(self.t.lr_scheduler_type, self.optimizer, self.t.warmup_steps, self.t.max_steps)
        self.step, self.epoch, self.cursor = 0, 0, 0
        self.order: list[int] = []
        self.metrics_rows: list[dict[str, Any]] = []

    def _next_indices(self, n: int) -> list[int]:
        """The next n pairs of a seeded shuffle per epoch (the same for every variant at a seed)."""
        picked = []
        for _ in range(n):
            if self.cursor >= len(self.order):
                self.order = list(range(len(self.pairs)))
                random.Random(self.seed * 1_000_003 + self.epoch).shuffle(self.order)
                self.cursor = 0
                self.epoch += 1
            picked.append(self.order[self.cursor])
            self.cursor += 1
        return picked

    def micro_batch(self, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        batch = collate_pairs([self.pairs[i] for i in idx], self.pad_id)
        r_c, r_r = pair_rewards(self.forward_model, batch)  # [B], [B]
        out = reward_model_loss(r_c, r_r, batch.get("margin"), self.t.center_rewards_coefficient)
        r_c, r_r = r_c.detach(), r_r.detach()
        rewards = torch.cat([r_c, r_r])  # [2B]
        return out.loss, {
            "loss": out.loss.item(),
            "ranking_loss": out.ranking.item(),
            "centering_term": out.centering.item(),  # mean (r_c + r_r)², before η
            "accuracy": float((r_c > r_r).float().mean()),
            "reward_gap": float((r_c - r_r).mean()),  # TRL's `margin` metric
            "mean_reward": float(rewards.mean()),
            "min_reward": float(rewards.min()),
            "max_reward": float(rewards.max()),
        }

    def train(self, progress: bool = True) -> list[dict[str, Any]]:
        ckpt_dir = self.out_dir / "ckpt"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = load_checkpoint(ckpt_dir, self.model, self.optimizer, self.scheduler, dp=self.dp)
        if state is not None:
            self.step, self.metrics_rows = state["step"], state["metrics_rows"]
            self.order, self.cursor, self.epoch = state["order"], state["cursor"], state["epoch"]
        self.model.train()
        drive_steps(
            self, "train RM", lambda row: {"loss": f"{row['loss']:.3f}", "acc": f"{row['accuracy']:.2f}"}, progress
        )
        return self.metrics_rows

    def _optimizer_step(self) -> dict[str, Any]:
        start = time.perf_counter()
        window = []
        for _ in range(self.t.gradient_accumulation_steps):
            drawn = self._next_indices(self.t.per_device_train_batch_size * self.dp.world)  # the global batch
            loss, stats = self.micro_batch(self.dp.shard(drawn))
            (loss / self.t.gradient_accumulation_steps).backward()  # HF divides the reward loss by GA (TRL)
            window.append(stats)
        grad_norm = clipped_update(
            self.model, self.optimizer, self.scheduler, self.t.max_grad_norm, self.step + 1, self.out_dir / "ckpt"
        )
        self.step += 1
        row: dict[str, Any] = {"step": self.step, "epoch": self.epoch, **self.dp.mean(mean_rows(window))}
        row["min_reward"] = float(self.dp.gather(torch.tensor([min(w["min_reward"] for w in window)])).min())
        row["max_reward"] = float(self.dp.gather(torch.tensor([max(w["max_reward"] for w in window)])).max())
        row.update(grad_norm=grad_norm, lr=self.scheduler.get_last_lr()[0])
        if self.monitor and self.t.eval_every and self.step % self.t.eval_every == 0:
            r_c, r_r = score_pairs(self.model, self.monitor, self.pad_id, self.cfg.eval.batch_size)
            rewards = torch.cat([r_c, r_r])  # [2N]
            row.update(
                heldout_accuracy=float((r_c > r_r).float().mean()),
                heldout_mean_reward=float(rewards.mean()),
                heldout_reward_gap=float((r_c - r_r).mean()),
            )
        row["step_time"] = time.perf_counter() - start
        self.metrics_rows.append(row)
        return row

    def _save(self, ckpt_dir: Path) -> None:
        state = {
            "step": self.step, "metrics_rows": self.metrics_rows, "order": self.order, "cursor": self.cursor,
            "epoch": self.epoch,
        }  # fmt: skip
        save_checkpoint(ckpt_dir, self.model, self.optimizer, self.scheduler, state, dp=self.dp)
