"""SFT examples: synthetic prompts and targets made in code, or prompt/completion rows from a local file or the hub.

`SFTExample(prompt, completion)` holds the rendered prompt and the completion text (the trainer appends EOS).

- synthetic (`data.dataset: synthetic:<task>`): prompts rendered with `data.template`, completions the task's SFT
  targets. Training never sees a held-out problem of the evaluation task or of the shifted task
  (`training_exclusions`). `data.n_train: null` draws fresh problems for every micro-batch (seeded by run seed,
  step and micro-batch, so a resumed run draws the same ones); an integer fixes a training set (seeded by
  `data.data_seed`, the same for every run) that is read in epochs, each shuffled with the run seed.
- real rows (TRL's dataset formats): standard `prompt` / `completion` strings; conversational `prompt` /
  `completion` message lists (the completion one assistant message); or a `messages` conversation whose last
  assistant turn is the completion and everything before it the prompt. Conversations are rendered with the
  tokenizer's chat template (or repro/data/preference_loader.py's plain fallback). With `data.eval_split` equal to
  `data.split`, `eval.n_problems` rows drawn with the data seed are held out and every training row sharing one of
  their prompts is dropped.

Batches are stateless functions of (step, micro-batch): resuming needs no data state.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Hashable
from dataclasses import dataclass
from typing import Any

from repro.data.preference_loader import read_rows, render_prompt
from repro.schema import ConfigError
from repro.sft_config import SFTRunConfig


@dataclass(frozen=True)
class SFTExample:
    prompt: str
    completion: str
    id: str = ""


# ----------------------------------------------------------------------------- synthetic


def training_exclusions(cfg: SFTRunConfig) -> frozenset[Hashable]:
    """Problem keys training must never draw: the held-out sets of the evaluation and shifted tasks."""
    from repro.data.synthetic import held_out

    keys: set[Hashable] = set()
    for task in {cfg.eval_task, cfg.eval.shifted_task} - {None}:
        keys |= {p.key for p in held_out(str(task))}
    return frozenset(keys)


def synthetic_examples(problems: list[Any], template: str, tokenizer: Any) -> list[SFTExample]:
    from repro.data.templates import render

    return [SFTExample(render(template, p.prompt, tokenizer), p.target, p.id) for p in problems]


# ----------------------------------------------------------------------------- real rows


def examples_from_rows(rows: list[dict[str, Any]], cfg: SFTRunConfig, tokenizer: Any, source: str) -> list[SFTExample]:
    d = cfg.data
    out = []
    for i, row in enumerate(rows):
        where = f"{source} row {i}"
        if d.prompt_field in row and d.completion_field in row:
            prompt, completion = row[d.prompt_field], row[d.completion_field]
            if isinstance(prompt, list):  # conversational prompt / completion
                prompt = render_prompt(prompt, tokenizer)
                completion = _assistant_text(completion, where)
        elif d.messages_field in row:
            prompt, completion = _split_conversation(row[d.messages_field], tokenizer, where)
        else:
            raise ConfigError(
                f"{where}: no {d.prompt_field!r}/{d.completion_field!r} or {d.messages_field!r} field "
                f"(it has {', '.join(map(str, row))}); set data.prompt_field / completion_field / messages_field"
            )
        if not isinstance(prompt, str) or not isinstance(completion, str) or not completion:
            raise ConfigError(f"{where}: prompt and completion must be text, and the completion non-empty")
        out.append(SFTExample(prompt, completion, str(row.get("id", f"{source}-{i}"))))
    return out


def _assistant_text(messages: Any, where: str) -> str:
    if isinstance(messages, str):
        return messages
    if not (isinstance(messages, list) and len(messages) == 1 and messages[0].get("role") == "assistant"):
        raise ConfigError(f"{where}: a conversational completion must be one assistant message")
    return str(messages[0]["content"])


def _split_conversation(messages: Any, tokenizer: Any, where: str) -> tuple[str, str]:
    if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
        raise ConfigError(f"{where}: a `messages` conversation must end with an assistant turn (the completion)")
    return render_prompt(messages[:-1], tokenizer), str(messages[-1]["content"])


def real_examples(cfg: SFTRunConfig, tokenizer: Any) -> tuple[list[SFTExample], list[SFTExample]]:
    """(training examples, held-out examples) of a local file or hub dataset, prompt-disjoint."""
    d, n = cfg.data, cfg.eval.n_problems
    if d.eval_split != d.split:
        train = examples_from_rows(read_rows(d.dataset, d.split), cfg, tokenizer, d.dataset)
        held = examples_from_rows(read_rows(d.dataset, d.eval_split), cfg, tokenizer, d.dataset)[:n]
        return _subset(train, d.limit, d.data_seed), held
    everything = examples_from_rows(read_rows(d.dataset, d.split), cfg, tokenizer, d.dataset)
    order = list(range(len(everything)))
    random.Random(d.data_seed).shuffle(order)
    held = [everything[i] for i in sorted(order[:n])]
    held_prompts = {e.prompt for e in held}
    train = [everything[i] for i in sorted(order[n:]) if everything[i].prompt not in held_prompts]
    if not train:
        raise ConfigError(f"{d.dataset}: nothing left to train on after holding out {n} rows; lower eval.n_problems")
    return _subset(train, d.limit, d.data_seed), held


def _subset(items: list[SFTExample], limit: int | None, seed: int) -> list[SFTExample]:
    if limit is None or limit >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


# ----------------------------------------------------------------------------- batches


class TrainingStream:
    """Micro-batches of training examples as a pure function of (step, micro-batch index)."""

    def __init__(
        self,
        *,
        seed: int,
        batch_size: int,
        grad_accum: int,
        examples: list[SFTExample] | None = None,
        task: str | None = None,
        exclude: Collection[Hashable] = frozenset(),
        template: str = "raw",
        tokenizer: Any = None,
    ) -> None:
        if examples is None and task is None:
            raise ValueError("a training stream needs a fixed example list or a synthetic task")
        if examples is not None and not examples:
            raise ConfigError("no training examples: the dataset is empty after holding out the evaluation rows")
        self.seed, self.bs, self.ga = seed, batch_size, grad_accum
        self.examples, self.task, self.exclude = examples, task, exclude
        self.template, self.tokenizer = template, tokenizer
        self._orders: dict[int, list[int]] = {}

    def micro_batch(self, step: int, micro: int) -> list[SFTExample]:
        """The examples of micro-batch `micro` (0-based) of optimizer step `step` (1-based)."""
        if self.examples is None:  # fresh synthetic problems, seeded by (run seed, step, micro-batch)
            from repro.data.synthetic import TASKS

            stream_seed = (self.seed * 1_000_003 + step) * 997 + micro
            problems = TASKS.get(str(self.task)).make(self.bs, stream_seed, self.exclude)
            return synthetic_examples(problems, self.template, self.tokenizer)
        n = len(self.examples)
        first = ((step - 1) * self.ga + micro) * self.bs  # global index of this micro-batch's first example
        return [self.examples[self._position(g, n)] for g in range(first, first + self.bs)]

    def epoch(self, step: int) -> int:
        return 0 if self.examples is None else (step * self.ga * self.bs - 1) // len(self.examples)

    def _position(self, g: int, n: int) -> int:
        epoch, i = divmod(g, n)
        if epoch not in self._orders:
            order = list(range(n))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)  # each epoch its own shuffle
            self._orders = {epoch: order}  # the current epoch's only: a batch spans at most two
        return self._orders[epoch][i]
