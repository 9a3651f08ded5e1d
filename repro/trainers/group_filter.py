"""Group filters: which sampled groups enter the update (DAPO dynamic sampling; GFPO later)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from repro.losses.advantages import zero_std_groups
from repro.registry import Registry

# (rewards [N], G) -> bool per group [N/G]: keep the group
GroupFilterFn = Callable[[torch.Tensor, int], torch.Tensor]

GROUP_FILTERS: Registry[GroupFilterFn] = Registry("group filter")


@GROUP_FILTERS.register("none")
def keep_all(rewards: torch.Tensor, G: int) -> torch.Tensor:
    return torch.ones(rewards.numel() // G, dtype=torch.bool)  # [N/G]


@GROUP_FILTERS.register("dynamic_sampling")
def drop_zero_std(rewards: torch.Tensor, G: int) -> torch.Tensor:
    """DAPO §3.2 (Eq. 11 constraint 0 < |{o_i correct}| < G): keep groups whose rewards are not all equal."""
    return ~zero_std_groups(rewards, G)  # [N/G]


def config_group_filter(train: Any) -> GroupFilterFn:
    """The group filter a run's config selects: DAPO's dynamic sampling where `train.dynamic_sampling` is true, else
    none. OnlineRLTrainer takes it from here and from nowhere else, so that no paper's trainer.py can run another
    filter than the one its config.resolved.yaml records."""
    return GROUP_FILTERS.get("dynamic_sampling" if train.dynamic_sampling else "none")


def group_rows(groups: torch.Tensor, G: int) -> torch.Tensor:
    """Row indices of the given group indices (prompt-major layout)."""
    return (groups.unsqueeze(1) * G + torch.arange(G).unsqueeze(0)).reshape(-1)  # [len(groups)*G]


# --- GFPO (Shrivastava et al. 2025, arXiv 2508.09726): sample more, keep the best k of each group --------

# (rewards [N], lengths [N]) -> score [N]: higher is kept first
RetainScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RETAIN_SCORES: Registry[RetainScoreFn] = Registry("GFPO retain score")


@RETAIN_SCORES.register("length")
def shortest(rewards: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Shorter responses first (GFPO's length filter)."""
    return -lengths.float()  # [N]


@RETAIN_SCORES.register("reward_per_token")
def token_efficiency(rewards: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reward per generated token (GFPO's token-efficiency filter)."""
    return rewards.float() / lengths.float().clamp(min=1.0)  # [N]


def retain_top_k(scores: torch.Tensor, G: int, k: int) -> torch.Tensor:
    """Row indices keeping, in every group of G consecutive rows, that group's k best-scored rows.

    Ties go to the earlier row; the kept rows of a group stay in their original order, and groups stay
    prompt-major, so the result is again a batch of groups (of size k). TRL's removed GFPO code took the
    top k of the first group's indices for every group; each group here ranks only its own rows.
    """
    if not 1 <= k <= G or scores.numel() % G:
        raise ValueError(f"need 1 <= k <= G and a whole number of groups (k={k}, G={G}, N={scores.numel()})")
    grouped = scores.view(-1, G)  # [N/G, G]
    order = torch.argsort(-grouped, dim=1, stable=True)[:, :k]  # [N/G, k], best first, ties: earlier row
    kept = torch.sort(order, dim=1).values  # [N/G, k] original order within the group
    offsets = torch.arange(grouped.size(0)).unsqueeze(1) * G  # [N/G, 1]
    return (kept + offsets).reshape(-1)  # [N/G * k]
