"""Pairs for reward-model training: (prompt, chosen, rejected), a margin m, and a Llama 2 rating level.

Llama 2 (arXiv 2307.09288 §3.2.1–3.2.2) asks annotators how much better the chosen response is, on four levels,
and its margin loss uses m(rating) (App. A.3.3, Table 27):

| level | rating | Margin Small | Margin Large |
|---|---|---|---|
| 3 | significantly better | 1 | 3 |
| 2 | better | 2/3 | 2 |
| 1 | slightly better | 1/3 | 1 |
| 0 | negligibly better / unsure | 0 | 0 |

Synthetic pairs (`prepared:<name>`, repro/data/preference_synthetic.py) are rated from their gold-reward gap by
`rating_margin` (the same four levels); real pairs read a rating column (`data.rating_field`) or a numeric margin
column (`data.margin_field`, TRL's `margin`). Training pairs of synthetic data are `make_pairs`' (one per prompt,
labels drawn with the data seed); held-out pairs are every pair of a held-out prompt's samples with different
gold rewards and texts, labelled by the gold reward, so each level has as many held-out pairs as the split gives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from repro.data.preference import PreferencePair
from repro.schema import ConfigError

LEVEL_NAMES = ("negligibly_better", "slightly_better", "better", "significantly_better")  # level 0..3
LLAMA2_MARGINS: dict[str, tuple[float, ...]] = {  # m by level 0..3, Table 27 of arXiv 2307.09288
    "llama2_small": (0.0, 1 / 3, 2 / 3, 1.0),
    "llama2_large": (0.0, 1.0, 2.0, 3.0),
}
_RATING_ALIASES = {"unsure": 0, "negligibly_better_or_unsure": 0, "negligibly_better/unsure": 0}


@dataclass(frozen=True)
class RewardPair:
    prompt: str
    chosen: str
    rejected: str
    id: str = ""
    margin: float | None = None  # m of the loss; None: no margin
    level: int | None = None  # Llama 2 rating level 0..3 (3 = significantly better); None: not rated
    gold_chosen: float | None = None  # synthetic data: the gold reward of each completion
    gold_rejected: float | None = None


def rating_level(value: Any, where: str = "rating") -> int:
    """A Llama 2 rating as its level 0..3: a name ("significantly better", "better", ...) or the level itself."""
    if (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and float(value).is_integer()
        and 0 <= value <= 3
    ):
        return int(value)
    if isinstance(value, str):
        key = value.strip().lower().replace(" ", "_").replace("-", "_")
        if key in LEVEL_NAMES:
            return LEVEL_NAMES.index(key)
        if key in _RATING_ALIASES:
            return _RATING_ALIASES[key]
    raise ConfigError(
        f"{where}: {value!r} is not a Llama 2 rating; use one of {', '.join(LEVEL_NAMES)} (or 'unsure'), or the "
        "level 0–3 (3 = significantly better)"
    )


def gold_gap_level(gap: float) -> int:
    """The rating level of a gold-reward gap |r*_c − r*_r| (preference_synthetic.rating_margin's thresholds)."""
    from repro.data.preference_synthetic import rating_margin

    return round(3 * rating_margin(abs(gap)))


def margin_of(level: int | None, mode: str, column_value: float | None = None) -> float | None:
    """m for a pair under `data.margin` (none, llama2_small, llama2_large, column)."""
    if mode == "none":
        return None
    if mode == "column":
        return column_value
    if level is None:
        raise ConfigError(f"margin {mode!r} needs each pair's rating level; this pair has none")
    return LLAMA2_MARGINS[mode][level]


def from_synthetic(pair: PreferencePair, mode: str) -> RewardPair:
    """A make_pairs pair, rated from its gold gap (whatever the label: a flipped pair keeps its gap's rating)."""
    level = gold_gap_level(pair.gold_chosen - pair.gold_rejected)
    return RewardPair(
        pair.prompt, pair.chosen, pair.rejected, pair.id, margin_of(level, mode), level, pair.gold_chosen,
        pair.gold_rejected,
    )  # fmt: skip


def rescored(samples: list[dict[str, Any]], gold_reward: str | None) -> list[dict[str, Any]]:
    """Prepared samples with `gold_rewards` recomputed by another gold reward (None: unchanged)."""
    if gold_reward is None:
        return samples
    from repro.data.preference_synthetic import GOLD_REWARDS

    gold = GOLD_REWARDS.get(gold_reward)
    return [{**row, "gold_rewards": [gold(c, row["answer"]) for c in row["completions"]]} for row in samples]


def all_held_out_pairs(samples: list[dict[str, Any]], mode: str) -> list[RewardPair]:
    """Every pair of a prompt's samples with different gold rewards and texts, the gold-better one chosen."""
    pairs = []
    for row in samples:
        texts, rewards = row["completions"], row["gold_rewards"]
        seen: set[tuple[str, str]] = set()
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                if rewards[i] == rewards[j] or texts[i] == texts[j]:
                    continue
                c, r = (i, j) if rewards[i] > rewards[j] else (j, i)
                if (texts[c], texts[r]) in seen:  # the same two texts sampled twice: one pair
                    continue
                seen.add((texts[c], texts[r]))
                level = gold_gap_level(rewards[c] - rewards[r])
                pairs.append(
                    RewardPair(
                        row["prompt"],
                        texts[c],
                        texts[r],
                        f"{row['id']}/{c}-{r}",
                        margin_of(level, mode),
                        level,
                        rewards[c],
                        rewards[r],
                    )  # fmt: skip
                )
    return pairs


def load_real_pairs(
    source: str,
    split: str,
    *,
    mode: str,
    margin_field: str,
    rating_field: str | None,
    prompt_field: str = "prompt",
    chosen_field: str = "chosen",
    rejected_field: str = "rejected",
) -> list[RewardPair]:
    """Real pairs (repro/data/preference_loader.py's formats) with their margin and rating columns."""
    from repro.data.preference_loader import pairs_from_rows, read_rows

    rows = read_rows(source, split)
    needed = {"data.margin_field": margin_field} if mode == "column" else {}
    if rating_field:
        needed["data.rating_field"] = rating_field
    for option, column in needed.items():
        if rows and column not in rows[0]:
            raise ConfigError(
                f"{source}: no column {column!r} (columns found: {', '.join(sorted(rows[0]))}); set {option}"
            )
    # The loader drops some implicit-prompt rows; a row's index in its id lets us find its other columns again.
    indexed = [{**row, "id": str(i)} for i, row in enumerate(rows)]
    fields = {"prompt_field": prompt_field, "chosen_field": chosen_field, "rejected_field": rejected_field}
    out = []
    for pair in pairs_from_rows(indexed, source, **fields):
        row = rows[int(pair.id)]
        where = f"{source} row {pair.id}"
        level = rating_level(row[rating_field], f"{where} {rating_field}") if rating_field else None
        column = _number(row[margin_field], f"{where} {margin_field}") if mode == "column" else None
        pair_id = str(row["id"]) if "id" in row else f"{source}:{pair.id}"
        out.append(RewardPair(pair.prompt, pair.chosen, pair.rejected, pair_id, margin_of(level, mode, column), level))
    return out


def hold_out_prompts(pairs: list[RewardPair], n_prompts: int, seed: int) -> tuple[list[RewardPair], list[RewardPair]]:
    """(training, held-out) from one set: `n_prompts` pairs drawn with the seed are held out, and every other pair
    with one of their prompts is dropped from training (as repro/runs_preference.py real_pairs does)."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = [pairs[i] for i in sorted(order[:n_prompts])]
    prompts = {p.prompt for p in held}
    train = [pairs[i] for i in order[n_prompts:] if pairs[i].prompt not in prompts]
    if not train:
        raise ConfigError(f"nothing left to train on after holding out {n_prompts} prompts; lower eval.n_prompts")
    return train, held


def subset(pairs: list[RewardPair], limit: int | None, seed: int) -> list[RewardPair]:
    """A seeded random `limit` of the pairs, in their order (all of them when limit is None or ≥ n)."""
    if limit is None or limit >= len(pairs):
        return pairs
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    return [pairs[i] for i in sorted(order[:limit])]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: margin {value!r} is not a number; the margin column must hold numbers")
    return float(value)
