"""Synthetic verifiable tasks, generated in code from a seed (the smoke tier's data).

A `Problem` holds the prompt, the gold answer the grader checks, and the SFT target (the completion
a warm start learns, without EOS). Training problems never include the held-out evaluation prompts:
`held_out(task)` is the first HELD_OUT_N distinct prompts of the HELD_OUT_SEED stream, and
`make_train` skips them (an evaluation on held_out(task, n ≤ HELD_OUT_N) is therefore disjoint).
A visual task's problems also carry an image (repro/data/visual.py); their identity is (prompt, image).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any

from repro.data.visual import count_colour
from repro.registry import Registry


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: str
    answer: str
    target: str = ""  # SFT completion (no EOS); empty for loaded datasets
    image: Any = None  # visual tasks: a repro.data.visual.Image the prompt's <image> placeholder stands for

    @property
    def key(self) -> Hashable:
        """What makes two problems the same: the prompt, and the image when there is one."""
        return self.prompt if self.image is None else (self.prompt, self.image)


@dataclass(frozen=True)
class Task:
    name: str
    sample: Callable[[random.Random], tuple[Any, ...]]  # rng -> (prompt, answer, target[, image])
    answer_style: str

    def make(
        self, n: int, seed: int, exclude: Collection[str] = frozenset(), *, distinct: bool = False
    ) -> list[Problem]:
        """n problems from the seed's stream, skipping `exclude`d keys (and repeats when `distinct`)."""
        rng = random.Random(seed)
        skip = set(exclude)
        problems: list[Problem] = []
        for _ in range(1000 * n + 1000):  # a small task space with a big exclude set must not hang
            if len(problems) == n:
                return problems
            prompt, answer, target, *image = self.sample(rng)
            problem = Problem(f"{self.name}-{seed}-{len(problems)}", prompt, answer, target, *image)
            if problem.key in skip:
                continue
            if distinct:
                skip.add(problem.key)
            problems.append(problem)
        raise ValueError(f"task {self.name!r} could not produce {n} problems outside the excluded set")


TASKS: Registry[Task] = Registry("synthetic task")
HELD_OUT_SEED = 1234
HELD_OUT_N = 200  # training excludes this many held-out prompts; evaluate on at most this many


def _addition(rng: random.Random) -> tuple[str, str, str]:
    """'123+456=' -> '579': a, b uniform in [0, 999] (cpu_feasibility.md §3)."""
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    return f"{a}+{b}=", str(a + b), str(a + b)


def _addition_working(rng: random.Random) -> tuple[str, str, str]:
    """'47+385+9=' -> '432,441#441': 2–4 operands of 1–3 digits, each running sum, then '#' and the answer.

    The completion length varies with the number of operands, so length-dependent methods (DAPO's
    overlong shaping, token-level loss) see different lengths.
    """
    operands = [rng.randint(0, 10 ** rng.randint(1, 3) - 1) for _ in range(rng.randint(2, 4))]
    running, sums = operands[0], []
    for x in operands[1:]:
        running += x
        sums.append(str(running))
    return "+".join(map(str, operands)) + "=", str(running), ",".join(sums) + "#" + str(running)


def _addition_padded(rng: random.Random) -> tuple[str, str, str]:
    """'042+357=' -> '399': `addition`'s operands written with three digits, at least one of them below 100.

    A shifted distribution for `addition` (DFT's generalisation claim): `addition` never writes a leading zero,
    so no prompt here is in its training support; the answer is the plain sum.
    """
    while True:
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        if min(a, b) < 100:
            return f"{a:03d}+{b:03d}=", str(a + b), str(a + b)


TASKS.add("addition", Task("addition", _addition, answer_style="plain"))
TASKS.add("addition_padded", Task("addition_padded", _addition_padded, answer_style="plain"))
TASKS.add("addition_working", Task("addition_working", _addition_working, answer_style="hash"))
TASKS.add("count_colour", Task("count_colour", count_colour, answer_style="plain"))  # visual (PAPO smoke tier)


def held_out(task: str, n: int = HELD_OUT_N, seed: int = HELD_OUT_SEED) -> list[Problem]:
    """The fixed evaluation set: n distinct problems from the held-out seed."""
    return TASKS.get(task).make(n, seed, distinct=True)


def make_train(task: str, n: int, seed: int, exclude: Collection[str] | None = None) -> list[Problem]:
    """Training problems without the `exclude`d keys (default: the held-out set's `Problem.key`s)."""
    if exclude is None:
        exclude = {p.key for p in held_out(task)}
    # Disjointness comes from `exclude`; the seed + 1 offset only keeps existing runs' data unchanged.
    return TASKS.get(task).make(n, seed + 1, exclude)
