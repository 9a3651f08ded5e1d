"""The online RL loop, one readable pass per generation:

    sample → reward → group filter (refill) → overlong mask → advantages → old/ref log-probs
    → shuffled micro-batches (steps_per_generation, num_iterations) → loss → optimizer step

Every paper's trainer composes this loop; no paper subclasses it, and no paper's trainer.py passes what a config
key decides (the group filter is `train.dynamic_sampling`'s: group_filter.py config_group_filter).

Data parallel (`accelerate launch`, repro/distributed.py): every rank draws the same global prompts, samples its
share of the groups (`train.rollout_seeding: per_group`, so a group's samples do not depend on the rank that drew
it), and the ranks' rollouts are gathered, so that filtering, refills, advantages (the batch std of Lite PPO) and
the token normaliser of DAPO see the whole generation batch on every rank. Each micro-batch is then split over the
ranks: a rank backpropagates its rows' share of the micro-batch loss, and the logged loss and statistics are those
of the whole micro-batch, recomputed from every rank's log-probs.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from repro.config import RunConfig, TrainConfig, reward_params
from repro.data.templates import render
from repro.distributed import DataParallel, require_sample_seeds
from repro.io import write_text
from repro.losses.advantages import ADVANTAGES, zero_std_groups
from repro.losses.aggregation import AggregationContext
from repro.losses.kl import sequence_kl_penalty
from repro.losses.policy import PolicyLossSpec, RowShare, policy_loss
from repro.losses.rollout_correction import ROLLOUT_CORRECTIONS
from repro.progress import progress_bar
from repro.rewards.functions import REWARDS
from repro.rewards.grader import extract_answer, grade
from repro.rollout.base import RolloutBackend, RolloutBatch, SamplingParams, concat_batches, group_seed
from repro.schema import ConfigError
from repro.trackers import stream
from repro.trainers.checkpoint import load_checkpoint, save_checkpoint
from repro.trainers.grad_variance import split_half_variance
from repro.trainers.group_filter import (
    GROUP_FILTERS,
    RETAIN_SCORES,
    GroupFilterFn,
    config_group_filter,
    group_rows,
    retain_top_k,
)
from repro.trainers.logprobs import completion_logprobs
from repro.trainers.loop import adamw, clipped_update, json_line, mean_rows
from repro.trainers.perception import make_probe
from repro.trainers.samples import SampleLog, decode_rows, pick_rows


@dataclass
class RewardTerm:
    name: str
    weight: float
    params: dict[str, Any]


@dataclass
class GenerationResult:
    batch: RolloutBatch
    rewards: torch.Tensor  # [N] weighted sum
    correct: torch.Tensor  # [N] 1.0 where the answer is right
    answers: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # each reward function's own values [N], unweighted


class OnlineRLTrainer:
    def __init__(
        self,
        cfg: RunConfig,
        model: torch.nn.Module,
        tokenizer: Any,
        prompts: list[Any],  # repro.data Problem records (prompt, answer)
        rollout: RolloutBackend,
        out_dir: Path,
        seed: int,
        ref_model: torch.nn.Module | None = None,
        processor: Any = None,  # a vision-language policy's processor (prompts then carry images)
        dp: DataParallel | None = None,  # several processes under `accelerate launch` (repro/distributed.py)
    ) -> None:
        self.dp = dp or DataParallel.single()
        check_data_parallel(cfg, self.dp.world, images=processor is not None, strategy=self.dp.strategy)
        if self.dp.shards_parameters:  # ranks generate different groups: each decoding step's forward is collective
            rollout.synced_gpus = True
        self.cfg, self.t = cfg, cfg.train
        self.model, self.tok, self.rollout, self.ref_model = model, tokenizer, rollout, ref_model
        self.prompts = prompts
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.processor = processor
        self.perception = make_probe(cfg.train, processor, model, seed)  # PAPO; None for text policies
        self.forward_model = self.dp.wrap_model(model)  # DDP under several processes: the loss's forward/backward
        self.group_filter: GroupFilterFn = config_group_filter(self.t)  # train.dynamic_sampling; no caller picks one
        self.rewards = [
            RewardTerm(n, float(s.get("weight", 1.0)), reward_params(cfg, n)) for n, s in cfg.rewards.items()
        ]
        t = self.t
        self.loss_spec = PolicyLossSpec(
            axes=t.loss_axes,
            epsilon_low=t.epsilon_low,
            epsilon_high=t.epsilon_high_value,
            delta=t.delta,
            beta=0.0 if t.kl_in_reward else t.beta,  # RLOO puts β·KL in the reward instead
            use_bias_correction_kl=t.use_bias_correction_kl,
        )
        self.sampling = SamplingParams(
            t.num_generations, t.max_completion_length, t.temperature, t.top_p, t.top_k, cfg.data.max_prompt_length,
            cfg.data.truncation_mode,
        )  # fmt: skip
        self.optimizer = adamw(model, t)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(t.lr_scheduler_type, self.optimizer, t.warmup_steps, t.max_steps)
        self.step = 0
        self.prompt_order: list[int] = []
        self.prompt_cursor = 0
        self.groups_drawn = 0  # prompt groups drawn so far: a group's sample seed under rollout_seeding per_group
        self.metrics_rows: list[dict[str, Any]] = []
        # The rollout correction ρ = π_old/π_rollout and RLOO's in-reward KL need every row's pre-update log-prob
        # before the first update; otherwise old log-probs are needed once an update can follow another on the same
        # generation.
        old_logp_before_updates = t.rollout_correction != "none" or (t.kl_in_reward and t.beta != 0.0)
        self.needs_old_logp = (
            t.spg // t.gradient_accumulation_steps > 1 or t.num_iterations > 1 or old_logp_before_updates
        )
        # The first optimizer step of a generation updates pre-update weights, so its rows' old log-probs are their
        # own training forward's (detached), as on-policy; only the later rows need the no-grad forward. Off when
        # every row's old log-prob is needed before any update (above, and the gradient-variance probe) or when a
        # window can span generations (GA > spg) or ranks hold shares of the rows.
        self.reuse_first_window_logp = (
            self.needs_old_logp
            and not old_logp_before_updates
            and t.spg >= t.gradient_accumulation_steps
            and self.dp.world == 1
        )
        self._first_window = True  # the first accumulation window of a generation sees pre-update weights
        self._window: list[dict[str, float]] = []  # micro-batch stats of the optimizer step being accumulated
        self._prompts_cut = 0  # prompts longer than data.max_prompt_length drawn since the last optimizer step
        self._samples: SampleLog | None = None  # samples.jsonl, open while train() runs
        self._gen: GenerationResult | None = None  # the generation being trained on, and its steps logged so far
        self._gen_steps = 0

    # ------------------------------------------------------------------ sampling and scoring

    def _next_prompts(self, n: int) -> list[Any]:
        picked = []
        for _ in range(n):
            if self.prompt_cursor >= len(self.prompt_order):
                self.prompt_order = list(range(len(self.prompts)))
                random.Random(self.seed * 1_000_003 + len(self.metrics_rows)).shuffle(self.prompt_order)
                self.prompt_cursor = 0
            picked.append(self.prompts[self.prompt_order[self.prompt_cursor]])
            self.prompt_cursor += 1
        return picked

    def _generate_global(self, problems: list[Any]) -> GenerationResult:
        """The scored rollouts of the global prompt draw `problems`; under data parallelism each rank samples its
        share of the groups and every rank receives them all, in draw order."""
        if self.t.rollout_seeding == "batch":  # one process (check_data_parallel)
            return self._generate_scored(problems)
        first, self.groups_drawn = self.groups_drawn, self.groups_drawn + len(problems)
        mine = self.dp.shard(list(range(len(problems))))
        seeds = [group_seed(self.seed, first + i) for i in mine]
        local = self._generate_scored([problems[i] for i in mine], seeds)
        return concat_results(self.dp.gather_objects(local), self.tok.pad_token_id)

    def _generate_scored(self, problems: list[Any], seeds: list[int] | None = None) -> GenerationResult:
        G = self.t.num_generations
        texts = [render(self.cfg.data.template, p.prompt, self.tok) for p in problems]
        by_seed = {} if seeds is None else {"seeds": seeds}  # a backend without seeds is only used with `batch`
        if self.processor is not None and getattr(problems[0], "image", None) is not None:  # VL: prompts' images
            from repro.models.vision import encode_images

            texts, extra = encode_images(self.processor, texts, [p.image for p in problems])
            batch = self.rollout.generate(texts, self.sampling, extra, **by_seed)
        else:
            batch = self.rollout.generate(texts, self.sampling, **by_seed)
        answers = [p.answer for p in problems for _ in range(G)]
        lengths = batch.completion_lengths.long().tolist()
        total = torch.zeros(len(answers))
        terms = {}
        for term in self.rewards:
            values = REWARDS.get(term.name)(
                batch.completions, lengths, answers, answer_style=self.cfg.data.answer_style, **term.params
            )
            terms[term.name] = torch.tensor(values, dtype=torch.float32)  # [N]
            total += term.weight * terms[term.name]
        # Accuracy is graded on its own: reward values (e.g. DAPO's ±1) are not a 0/1 correctness.
        style = self.cfg.data.answer_style
        correct = torch.tensor(
            [float(grade(extract_answer(c, style), a)) for c, a in zip(batch.completions, answers)]
        )  # [N]
        return GenerationResult(batch, total, correct, answers, terms=terms)

    def _sample_generation(self) -> GenerationResult:
        """One generation batch; with a group filter, resample until it is full or tries run out."""
        t = self.t
        G = t.num_generations
        n_groups = t.prompts_per_generation * self.dp.world  # GFPO: each group sends only its kept rows to the loss
        kept: list[GenerationResult] = []
        kept_groups = 0
        raw_zero_std: list[float] = []
        sampled: list[GenerationResult] = []  # every try, before filtering: comparable across variants
        sampled_groups = 0
        tries = 0
        while kept_groups < n_groups and tries < t.dynamic_sampling_max_tries:
            tries += 1
            result = self._generate_global(self._next_prompts(n_groups))
            sampled_groups += n_groups
            raw_zero_std.append(float(zero_std_groups(result.rewards, G).float().mean()))
            sampled.append(result)
            keep = self.group_filter(result.rewards, G)  # [n_groups]
            groups = keep.nonzero().squeeze(1)[: n_groups - kept_groups]
            if len(groups):
                kept.append(self._select(result, group_rows(groups, G)))
                kept_groups += len(groups)
            if self.group_filter is GROUP_FILTERS.get("none"):
                break
        if not kept:  # every try was filtered out: train on the last batch rather than on nothing
            kept = [result]
            kept_groups = n_groups
        # every draw's G rows carry its prompt's flag: count the prompts, not the rows
        self._prompts_cut += sum(int(r.batch.prompt_truncated.sum()) for r in sampled) // G
        merged = concat_results(kept, self.tok.pad_token_id)
        merged.metrics = {
            "frac_zero_std": sum(raw_zero_std) / len(raw_zero_std),
            "reward_mean": float(torch.cat([r.rewards for r in sampled]).mean()),
            "accuracy": float(torch.cat([r.correct for r in sampled]).mean()),
            "refill_batches": tries - 1,
            "kept_group_frac": kept_groups / sampled_groups,
            "underfilled": float(kept_groups < n_groups),
        }
        lengths = merged.batch.completion_lengths  # [N]
        # The policy's own length (GFPO's claim compares it with GRPO's): before GFPO keeps the short ones.
        merged.metrics["response_length_sampled"] = float(lengths.float().mean())
        if t.gfpo_retain:  # GFPO: each group keeps its own k best rows by the named score
            score = RETAIN_SCORES.get(t.gfpo_score)(merged.rewards, lengths)  # [N]
            metrics = merged.metrics
            merged = self._select(merged, retain_top_k(score, G, t.gfpo_retain))
            merged.metrics = metrics
        return merged

    @staticmethod
    def _select(result: GenerationResult, rows: torch.Tensor) -> GenerationResult:
        return GenerationResult(
            result.batch.select(rows),
            result.rewards[rows],
            result.correct[rows],
            [result.answers[i] for i in rows.tolist()],
            terms={name: values[rows] for name, values in result.terms.items()},
        )

    # ------------------------------------------------------------------ one generation → updates

    def _generation_metrics(self, gen: GenerationResult) -> dict[str, float]:
        G = self.t.update_group_size
        lengths = gen.batch.completion_lengths  # [N]
        correct = gen.correct.bool()
        return {
            "reward_mean": float(gen.rewards.mean()),
            "accuracy": float(gen.correct.mean()),
            **gen.metrics,  # reward_mean and accuracy over everything sampled, before the group filter
            "reward_mean_update": float(gen.rewards.mean()),
            "accuracy_update": float(gen.correct.mean()),
            "reward_std": float(gen.rewards.std()) if gen.rewards.numel() > 1 else 0.0,
            "response_length": float(lengths.float().mean()),
            "len_correct": float(lengths[correct].float().mean()) if correct.any() else None,
            "len_incorrect": float(lengths[~correct].float().mean()) if (~correct).any() else None,
            "truncation_rate": float(gen.batch.truncated.float().mean()),
            "frac_zero_std_update": float(zero_std_groups(gen.rewards, G).float().mean()),
            "num_groups": gen.rewards.numel() // G,
        }

    def _train_on(self, gen: GenerationResult, gen_metrics: dict[str, float], pbar: tqdm) -> None:
        t = self.t
        b = gen.batch
        mask = loss_mask(b, t.mask_truncated_completions)  # [N, T]
        ctx = AggregationContext(
            grad_accum_steps=t.gradient_accumulation_steps,
            steps_per_generation=t.spg,
            num_items_in_batch=float(mask.sum()),
            max_completion_length=t.max_completion_length,
        )
        old_logp = ref_logp = None
        extra = b.extra_inputs  # row-aligned image inputs of a VL policy; {} for text
        probe_variance = bool(t.grad_variance_every) and self.step % t.grad_variance_every == 0
        reuse_first = self.reuse_first_window_logp and not probe_variance  # old log-probs filled in below
        with torch.no_grad():
            if self.needs_old_logp and not reuse_first:
                old_logp = self._batch_logprobs(self.model, b)  # [N, T]
            if t.beta != 0.0 and self.ref_model is not None:
                ref_logp = self._batch_logprobs(self.ref_model, b)  # [N, T]
        rewards, penalty = kl_shaped_rewards(t, gen.rewards, mask, old_logp, ref_logp)  # [N], [N] or None
        if penalty is not None:
            gen_metrics["kl_penalty"] = float(penalty.mean())
        G = t.update_group_size  # GFPO: advantages over the retained rows of each group
        advantages = ADVANTAGES.get(t.advantage_estimator)(rewards, G, t.scale_rewards)  # [N]
        # Rollout-vs-trainer log-prob gap, before any update on this generation (a silent-divergence signal).
        if old_logp is not None:
            gen_metrics["logprob_gap"] = _masked_mean((old_logp - b.sampler_logprobs).abs(), b.completion_mask)
        rho = None
        if t.rollout_correction != "none":  # needs_old_logp holds in this case
            correct = ROLLOUT_CORRECTIONS.get(t.rollout_correction)
            lo, hi = t.rollout_correction_clip_min, t.rollout_correction_clip_max
            rho = correct(old_logp, b.sampler_logprobs, b.completion_mask, lo, hi)  # [N, T] or [N, 1]
            gen_metrics.update(_ratio_stats(rho, b.completion_mask))
        if probe_variance:  # RLOO's variance claim
            gen_metrics.update(self._grad_variance(b, mask, advantages, old_logp, ref_logp, rho))
            for name in t.grad_variance_estimators:  # other estimators on the same samples, weights and split
                other = ADVANTAGES.get(name)(rewards, G, "none")  # [N]
                stats = self._grad_variance(b, mask, other, old_logp, ref_logp, rho)
                gen_metrics.update({f"{k}_{name}": v for k, v in stats.items()})
        N = advantages.numel()
        # PAPO: every row's image masked once per generation (own RNG: the shuffle below is unchanged)
        masked = self.perception.masked_inputs(extra, self.step) if self.perception and extra else None
        order = torch.randperm(N)  # shuffle rows so micro-batches mix groups (as TRL does)
        chunks = [c for c in torch.tensor_split(order, t.spg) if len(c)]
        if reuse_first:
            old_logp = self._later_rows_logprobs(b, chunks[t.gradient_accumulation_steps :])  # [N, T]
        self.model.train()
        self._first_window = True
        for _ in range(t.num_iterations):
            for i, rows in enumerate(chunks):
                start, mine = self._share(rows)  # this rank's part of the micro-batch (all of it in one process)
                run = mine if len(mine) else rows[:1]  # a rank without rows still joins the gradient all-reduce
                logp, entropy = completion_logprobs(
                    self.forward_model,
                    b.prompt_ids[run],
                    b.prompt_mask[run],
                    b.completion_ids[run],
                    b.completion_mask[run],
                    t.temperature,
                    with_entropy=True,
                    extra_inputs={k: v[run] for k, v in extra.items()},
                )  # [n, T]
                m = mask[run]
                if reuse_first and self._first_window:  # pre-update weights: ℓ_old = sg(ℓ) for these rows
                    old_logp[run] = logp.detach()
                pick = lambda x, r=run: None if x is None else x[r]  # noqa: E731
                share = None if self.dp.world == 1 else RowShare(start, mask[rows])
                out = policy_loss(
                    self.loss_spec, logp, m, advantages[run], ctx, old_logp=pick(old_logp), ref_logp=pick(ref_logp),
                    rollout_weight=pick(rho), share=share,
                )  # fmt: skip
                loss, stats = out.loss, dict(out.metrics)
                if masked is not None:  # PAPO's perception and double-entropy terms (measured only under GRPO)
                    ids = (b.prompt_ids[rows], b.prompt_mask[rows], b.completion_ids[rows], b.completion_mask[rows])
                    rows_masked = {k: v[rows] for k, v in masked.items()}
                    extra_loss, papo_stats = self.perception.loss(
                        self.model, ids, rows_masked, logp, m, ctx, t.aggregation, t.temperature
                    )
                    loss = loss if extra_loss is None else loss + extra_loss
                    stats.update(papo_stats)
                logp, entropy = logp.detach(), entropy.detach()
                if self.dp.world == 1:
                    loss.backward()
                else:  # DDP averages gradients over ranks; each rank's loss is its additive part of the whole
                    (loss * (self.dp.world if len(mine) else 0.0)).backward()
                    loss, stats, logp, entropy = self._whole_micro_batch(
                        rows, logp[: len(mine)], entropy[: len(mine)], mask, advantages, ctx, old_logp, ref_logp, rho
                    )
                full = b.completion_mask[rows]
                stats["loss"] = loss.item() * t.gradient_accumulation_steps
                stats["entropy"] = float((entropy * full).sum() / full.sum().clamp(min=1))
                if old_logp is None and self._first_window:  # on-policy: this window's log-probs are pre-update
                    gen_metrics["logprob_gap"] = _masked_mean((logp - b.sampler_logprobs[rows]).abs(), full)
                self._window.append(stats)
                # GA ≤ spg: steps inside the generation (a short last window is flushed at its end);
                # GA > spg (Lite PPO's seed: spg 8, GA 32): one step accumulates GA/spg whole generations.
                end_of_generation = i == len(chunks) - 1 and t.spg >= t.gradient_accumulation_steps
                if len(self._window) == t.gradient_accumulation_steps or end_of_generation:
                    if reuse_first and self._first_window:  # every row's old log-prob is known now
                        gen_metrics["logprob_gap"] = _masked_mean(
                            (old_logp - b.sampler_logprobs).abs(), b.completion_mask
                        )
                    self._first_window = False
                    self._optimizer_step(self._window, gen_metrics, pbar)
                    self._window = []
                    if self.step >= t.max_steps:
                        return

    def _share(self, rows: torch.Tensor) -> tuple[int, torch.Tensor]:
        """This rank's contiguous part of a micro-batch's rows, and where it starts in them."""
        parts = torch.tensor_split(rows, self.dp.world)
        return sum(len(p) for p in parts[: self.dp.rank]), parts[self.dp.rank]

    def _batch_logprobs(self, model: torch.nn.Module, b: RolloutBatch) -> torch.Tensor:
        """Log-probs [N, T] of the sampled tokens (no grad) for the whole batch; under data parallelism each rank
        scores its share of the rows and the shares are gathered."""
        _, mine = self._share(torch.arange(b.completion_ids.size(0)))
        return self.dp.gather_rows(self._rows_logprobs(model, b, mine))

    @torch.no_grad()
    def _rows_logprobs(self, model: torch.nn.Module, b: RolloutBatch, rows: torch.Tensor) -> torch.Tensor:
        """Log-probs [n, T] of the sampled tokens of `rows` (no grad)."""
        logp, _ = completion_logprobs(
            model, b.prompt_ids[rows], b.prompt_mask[rows], b.completion_ids[rows], b.completion_mask[rows],
            self.t.temperature, extra_inputs={k: v[rows] for k, v in b.extra_inputs.items()},
        )  # fmt: skip
        return logp

    def _later_rows_logprobs(self, b: RolloutBatch, later_chunks: list[torch.Tensor]) -> torch.Tensor:
        """Old log-probs [N, T] with the rows of `later_chunks` scored now (no grad, one process); the other rows
        are zeros until the first window's training forward fills them in."""
        old_logp = torch.zeros(b.completion_ids.shape, dtype=torch.float32)  # [N, T]
        if not later_chunks:  # the first window is the whole generation (spg = GA, num_iterations > 1)
            return old_logp
        rows = torch.cat(later_chunks).sort().values  # [n]
        old_logp[rows] = self._rows_logprobs(self.model, b, rows).to(old_logp.dtype)
        return old_logp

    @torch.no_grad()
    def _whole_micro_batch(
        self,
        rows: torch.Tensor,  # [M] the micro-batch's rows in the generation batch
        logp: torch.Tensor,  # [m, T] this rank's rows' log-probs
        entropy: torch.Tensor,  # [m, T]
        mask: torch.Tensor,  # [N, T]
        advantages: torch.Tensor,  # [N]
        ctx: AggregationContext,
        old_logp: torch.Tensor | None,
        ref_logp: torch.Tensor | None,
        rho: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
        """The loss and statistics of the whole micro-batch, as one process logs them, from every rank's log-probs."""
        logp_all, entropy_all = self.dp.gather_rows(logp), self.dp.gather_rows(entropy)  # [M, T]
        pick = lambda x: None if x is None else x[rows]  # noqa: E731
        out = policy_loss(
            self.loss_spec, logp_all, mask[rows], advantages[rows], ctx, old_logp=pick(old_logp),
            ref_logp=pick(ref_logp), rollout_weight=pick(rho),
        )  # fmt: skip
        return out.loss, dict(out.metrics), logp_all, entropy_all

    def _grad_variance(
        self,
        b: RolloutBatch,
        mask: torch.Tensor,  # [N, T]
        advantages: torch.Tensor,  # [N]
        old_logp: torch.Tensor | None,
        ref_logp: torch.Tensor | None,
        rho: torch.Tensor | None,
    ) -> dict[str, float]:
        """Split-half gradient variance at the pre-update weights; each half is normalised as its own batch."""
        t = self.t

        def half_loss(rows: torch.Tensor) -> torch.Tensor:
            logp, _ = completion_logprobs(
                self.model, b.prompt_ids[rows], b.prompt_mask[rows], b.completion_ids[rows], b.completion_mask[rows],
                t.temperature, extra_inputs={k: v[rows] for k, v in b.extra_inputs.items()},
            )  # fmt: skip
            m = mask[rows]
            ctx = AggregationContext(1, 1, float(m.sum()), t.max_completion_length)
            pick = lambda x: None if x is None else x[rows]  # noqa: E731
            return policy_loss(
                self.loss_spec, logp, m, advantages[rows], ctx, old_logp=pick(old_logp), ref_logp=pick(ref_logp),
                rollout_weight=pick(rho),
            ).loss  # fmt: skip

        G = t.update_group_size
        split = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)  # own RNG: training is unchanged
        return split_half_variance(self.model, advantages.numel() // G, G, half_loss, split)

    def _optimizer_step(self, window: list[dict[str, float]], gen_metrics: dict[str, float], pbar: tqdm) -> None:
        grad_norm = clipped_update(
            self.model, self.optimizer, self.scheduler, self.t.max_grad_norm, self.step + 1, self.out_dir / "ckpt"
        )
        self.rollout.sync_weights(self.model)
        self.step += 1
        row = {"step": self.step, **gen_metrics, **mean_rows(window)}
        row["grad_norm"] = grad_norm
        row["lr"] = self.scheduler.get_last_lr()[0]
        row["prompts_truncated"] = self._prompts_cut  # longer than data.max_prompt_length, cut; drawn for this step
        self._prompts_cut = 0
        self.metrics_rows.append(row)
        self._metrics_file.write(json_line(row))
        self._metrics_file.flush()
        self._log_samples()
        pbar.update(1)
        pbar.set_postfix(reward=f"{row['reward_mean']:.2f}", acc=f"{row['accuracy']:.2f}", ent=f"{row['entropy']:.2f}")

    def _log_samples(self) -> None:
        """train.log_completions_per_step rows of the generation just trained on to samples.jsonl (main rank): the
        first row of each group, then the second, …; a later step on the same generation shows the next ones."""
        k, gen = self.t.log_completions_per_step, self._gen
        if not k or gen is None or self._samples is None or not self.dp.is_main:
            return
        b = gen.batch
        rows = pick_rows(len(gen.answers), self.t.update_group_size, k, offset=self._gen_steps * k)
        self._gen_steps += 1
        texts = decode_rows(self.tok, b.prompt_ids, b.prompt_mask, b.completion_ids, b.completion_mask, rows)
        self._samples.write(
            [
                {
                    "step": self.step,
                    **text,
                    "reward": float(gen.rewards[i]),
                    "rewards": {name: float(values[i]) for name, values in gen.terms.items()},
                    "correct": bool(gen.correct[i]),
                    "answer": gen.answers[i],
                    "truncated": bool(b.truncated[i]),
                }
                for i, text in zip(rows, texts)
            ]
        )

    # ------------------------------------------------------------------ driver

    def train(self, progress: bool = True) -> list[dict[str, Any]]:
        ckpt_dir = self.out_dir / "ckpt"
        state = load_checkpoint(ckpt_dir, self.model, self.optimizer, self.scheduler, dp=self.dp)
        if state is not None:
            self.step = state["step"]
            self.metrics_rows = state["metrics_rows"]
            self.prompt_order, self.prompt_cursor = state["prompt_order"], state["prompt_cursor"]
            self.groups_drawn = state.get("groups_drawn", 0)
        metrics_path = self.out_dir / "metrics.jsonl"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        main = self.dp.is_main  # every rank trains; the main rank alone writes metrics and checkpoints
        if main:
            write_text(metrics_path, "".join(json_line(r) for r in self.metrics_rows))  # atomic, like the final one
        self._metrics_file = open(metrics_path if main else os.devnull, "a", encoding="utf-8")
        # samples.jsonl keeps the rows of the steps resumed from, as metrics.jsonl does
        self._samples = SampleLog(self.out_dir, self.step, main and self.t.log_completions_per_step > 0)
        pbar = progress_bar(total=self.t.max_steps, initial=self.step, desc="train", disable=not (progress and main))
        try:
            while self.step < self.t.max_steps:
                start = time.perf_counter()
                step_before = self.step
                gen = self._sample_generation()
                self._gen, self._gen_steps = gen, 0
                gen_metrics = self._generation_metrics(gen)
                self._train_on(gen, gen_metrics, pbar)
                elapsed = time.perf_counter() - start
                tokens = float(gen.batch.completion_mask.sum())
                for row in self.metrics_rows[step_before:]:
                    row["step_time"] = elapsed / max(self.step - step_before, 1)
                    row["tokens_per_s"] = tokens / elapsed
                    if main:  # report_to's trackers get the rows with their timing, as metrics.jsonl ends up
                        stream(row)
                due = self.t.save_steps and (self.step // self.t.save_steps) > (step_before // self.t.save_steps)
                if due:  # every rank: FSDP gathers the weights; the main rank writes
                    self._save(ckpt_dir)
        finally:
            self._metrics_file.close()
            self._samples.close()
            pbar.close()
        if main:  # rewrite with the timing fields filled in (atomic)
            write_text(metrics_path, "".join(json_line(r) for r in self.metrics_rows))
        return self.metrics_rows

    def _save(self, ckpt_dir: Path) -> None:
        save_checkpoint(
            ckpt_dir,
            self.model,
            self.optimizer,
            self.scheduler,
            {
                "step": self.step,
                "metrics_rows": self.metrics_rows,
                "prompt_order": self.prompt_order,
                "prompt_cursor": self.prompt_cursor,
                "groups_drawn": self.groups_drawn,
            },
            dp=self.dp,
        )


def concat_results(results: list[GenerationResult], pad_id: int) -> GenerationResult:
    """Scored rollouts concatenated row-wise, in order (metrics are not carried)."""
    return GenerationResult(
        concat_batches([r.batch for r in results], pad_id),
        torch.cat([r.rewards for r in results]),
        torch.cat([r.correct for r in results]),
        [a for r in results for a in r.answers],
        terms={name: torch.cat([r.terms[name] for r in results]) for name in results[0].terms},
    )


def check_data_parallel(cfg: RunConfig, world: int, images: bool, strategy: str = "ddp") -> None:
    """Refuse, before models load, an online-RL run on several processes that could not match one process."""
    if world <= 1:
        return
    if strategy == "fsdp" and cfg.train.rollout_backend != "hf":
        raise ConfigError(
            f"train.rollout_backend: {cfg.train.rollout_backend} keeps its own whole copy of the weights, which FSDP's "
            "shards do not fill here; use rollout_backend: hf with resources.data_parallel: fsdp, or data_parallel: ddp"
        )
    require_sample_seeds("online-RL", cfg.train.rollout_seeding, world)
    if images:
        raise ConfigError(
            f"this run was launched on {world} processes, but data-parallel online RL covers text policies only "
            "(a vision-language policy's image inputs and PAPO's masked views are not sharded); run it as one process"
        )


def loss_mask(b: RolloutBatch, mask_truncated: bool) -> torch.Tensor:
    """M [N, T] of the loss, its token normaliser and RLOO's in-reward KL: the completion mask, with every truncated
    row zeroed under train.mask_truncated_completions (DAPO §3.4 overlong filtering: truncated samples carry no loss)."""
    if not mask_truncated:
        return b.completion_mask.clone()  # [N, T]
    return b.completion_mask * (~b.truncated).float().unsqueeze(1)  # [N, T]


def kl_shaped_rewards(
    t: TrainConfig,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rewards the advantage estimator sees [N], and RLOO's sequence KL penalty KL_i [N] (None when unused).

    train.kl_in_reward: r_i ← r_i − β·Σ_t M_t(ℓ^old_t − ℓ^ref_t) before the leave-one-out baseline, with M [N, T]
    the loss mask (`loss_mask`), so a completion masked out as truncated carries no KL penalty either.
    """
    if not (t.kl_in_reward and t.beta != 0.0):
        return rewards, None
    if ref_logp is None:
        raise ValueError("kl_in_reward with beta ≠ 0 needs a reference model (ref_model)")
    if old_logp is None:  # the trainer computes them whenever kl_in_reward is on (needs_old_logp)
        raise ValueError("kl_in_reward needs the pre-update log-probs ℓ^old of every row before the first update")
    penalty = sequence_kl_penalty(old_logp, ref_logp, mask)  # [N]
    return rewards - t.beta * penalty, penalty


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp(min=1))


def _ratio_stats(rho: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Mean / min / max of the rollout correction ρ and the share it zeroes, over tokens or sequences."""
    values = rho.reshape(-1) if rho.size(1) == 1 else rho[mask.bool()]  # [N] or [valid tokens]
    if values.numel() == 0:
        return {}
    return {
        "is_ratio_mean": float(values.mean()),
        "is_ratio_min": float(values.min()),
        "is_ratio_max": float(values.max()),
        "is_ratio_zeroed": float((values == 0).float().mean()),
    }
