"""Preference data as the preference trainer consumes it: paired (prompt, chosen, rejected) and unpaired rows.

Texts are already rendered: `prompt` is exactly what the model is conditioned on and `chosen` / `rejected` /
`completion` exactly what it scores (the trainer appends EOS, as TRL does for non-conversational data).
Synthetic pairs (repro/data/preference_synthetic.py) also carry the gold rewards their labels came from,
so an evaluation can check the labels and plot the reward/KL frontier.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    id: str = ""
    margin: float | None = None  # Llama 2's rating margin (1, 2/3, 1/3, 0) when the data has ratings
    gold_chosen: float | None = None  # the gold reward of each completion (synthetic data only)
    gold_rejected: float | None = None


@dataclass(frozen=True)
class UnpairedExample:
    """One completion with a thumbs-up (desirable) or thumbs-down label (BCO / KTO data)."""

    prompt: str
    completion: str
    label: bool
    id: str = ""
    gold: float | None = None


def flip_labels(pairs: list[PreferencePair], rate: float, seed: int) -> list[PreferencePair]:
    """Each pair's chosen and rejected swapped with probability `rate` (robust DPO's noisy labels, arXiv
    2403.00409 §2), seeded so every variant sees the same flips."""
    import dataclasses
    import random

    rng = random.Random(seed)
    out = []
    for pair in pairs:
        if rng.random() < rate:
            pair = dataclasses.replace(
                pair, chosen=pair.rejected, rejected=pair.chosen, gold_chosen=pair.gold_rejected,
                gold_rejected=pair.gold_chosen,
            )  # fmt: skip
        out.append(pair)
    return out


def unpaired_from_pairs(pairs: list[PreferencePair]) -> list[UnpairedExample]:
    """Each pair as two rows (chosen → desirable, rejected → undesirable): TRL's paired-to-unpaired conversion."""
    rows: list[UnpairedExample] = []
    for pair in pairs:
        rows.append(UnpairedExample(pair.prompt, pair.chosen, True, f"{pair.id}/c", pair.gold_chosen))
        rows.append(UnpairedExample(pair.prompt, pair.rejected, False, f"{pair.id}/r", pair.gold_rejected))
    return rows
