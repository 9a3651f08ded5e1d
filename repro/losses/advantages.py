"""Advantage estimators: the first axis of the policy-gradient losses.

A group is the G completions sampled for one prompt; rows of a generation batch are laid out
prompt-major, so group g holds rows [g*G, (g+1)*G).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from repro.registry import Registry

# (rewards [N], G, std_scope) -> advantages [N]
AdvantageFn = Callable[[torch.Tensor, int, str], torch.Tensor]

ADVANTAGES: Registry[AdvantageFn] = Registry("advantage estimator")

STD_EPS = 1e-4  # added to the std before dividing, as in TRL's GRPO (avoids 0/0 on uniform groups)
STD_SCOPES = ("group", "batch", "none")


def _grouped(rewards: torch.Tensor, G: int) -> torch.Tensor:
    if rewards.ndim != 1 or rewards.numel() % G != 0:
        raise ValueError(f"rewards must be 1-D with a length divisible by G={G}; got {tuple(rewards.shape)}")
    return rewards.view(-1, G)  # [N/G, G]


@ADVANTAGES.register("group")
def group_normalised(rewards: torch.Tensor, G: int, std_scope: str = "group") -> torch.Tensor:
    """GRPO (arXiv 2402.03300 §4.1.2): Â_i = (r_i − mean_group(r)) / (std + 1e-4).

    std_scope: "group" (std within the group; GRPO), "batch" (std over the whole generation batch, mean
    still per group; Lite PPO arXiv 2508.08221), "none" (no scaling; Dr. GRPO arXiv 2503.20783 Eq. 3).
    Stds are unbiased (n−1), as in TRL. A NaN reward marks an unscorable completion: it is left out of
    the means and stds and gets advantage 0 (TRL 1.16's behaviour).
    """
    r = _grouped(rewards, G)  # [N/G, G]
    centred = r - r.nanmean(dim=1, keepdim=True)  # [N/G, G]
    if std_scope == "group":
        centred = centred / (_nanstd(r, dim=1) + STD_EPS)  # [N/G, G] / [N/G, 1]
    elif std_scope == "batch":
        centred = centred / (_nanstd(rewards.unsqueeze(0), dim=1) + STD_EPS)
    elif std_scope != "none":
        raise ValueError(f"unknown std scope {std_scope!r}; valid: {', '.join(STD_SCOPES)}")
    return torch.nan_to_num(centred.reshape(-1), nan=0.0)  # [N]


def _nanstd(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Unbiased std over `dim`, ignoring NaNs (NaN where fewer than 2 values remain)."""
    count = (~x.isnan()).sum(dim=dim, keepdim=True)
    var = ((x - x.nanmean(dim=dim, keepdim=True)) ** 2).nansum(dim=dim, keepdim=True) / (count - 1)
    return var.sqrt()


@ADVANTAGES.register("leave_one_out")
def leave_one_out(rewards: torch.Tensor, G: int, std_scope: str = "none") -> torch.Tensor:
    """RLOO (arXiv 2402.14740 Eq. 7): Â_i = r_i − 1/(G−1) Σ_{j≠i} r_j = G/(G−1)·(r_i − mean_group(r)).

    std_scope "batch" then z-scores the advantages over the batch, (Â − mean Â)/(std Â + 1e-4), as TRL's
    RLOO `normalize_advantages` does; "group" divides by the group's reward std.

    A NaN reward marks an unscorable completion, as in `group_normalised`: it is absent. The baseline of a
    completion is the mean of the other scorable rewards of its group (n_g of them: Σ_{j≠i} r_j / (n_g − 1), as
    TRL 1.16's RLOO), an unscorable completion gets advantage 0 and is left out of the stds. A completion that is
    the only scorable one of its group has no others to form a baseline: advantage 0, as `group_normalised` gives
    it (r_i − its own mean). On NaN-free input n_g = G and this is the formula above.
    """
    if G < 2:
        raise ValueError("leave-one-out needs G ≥ 2 completions per prompt")
    r = _grouped(rewards, G)  # [N/G, G]
    if not r.isnan().any():  # the plain formula, bit for bit what runs before NaN handling existed gave
        adv = (r - (r.sum(dim=1, keepdim=True) - r) / (G - 1)).reshape(-1)  # [N]
        if std_scope == "group":
            return (adv.view(-1, G) / (r.std(dim=1, keepdim=True) + STD_EPS)).reshape(-1)
        if std_scope == "batch":
            return (adv - adv.mean()) / (adv.std() + STD_EPS)
        if std_scope == "none":
            return adv
    n = (~r.isnan()).sum(dim=1, keepdim=True)  # [N/G, 1] scorable completions per group
    others = (r.nansum(dim=1, keepdim=True) - r) / (n - 1).clamp(min=1)  # [N/G, G]; NaN for an unscorable row
    baseline = torch.where(n > 1, others, torch.nan)  # a lone scorable completion has no baseline: Â = NaN → 0 below
    adv = (r - baseline).reshape(-1)  # [N]
    if std_scope == "group":
        adv = (adv.view(-1, G) / (_nanstd(r, dim=1) + STD_EPS)).reshape(-1)
    elif std_scope == "batch":
        adv = (adv - adv.nanmean()) / (_nanstd(adv, dim=0) + STD_EPS)
    elif std_scope != "none":
        raise ValueError(f"unknown std scope {std_scope!r}; valid: {', '.join(STD_SCOPES)}")
    return torch.nan_to_num(adv, nan=0.0)  # [N]


@ADVANTAGES.register("reward")
def raw_reward(rewards: torch.Tensor, G: int, std_scope: str = "none") -> torch.Tensor:
    """Vanilla REINFORCE (Williams 1992; RLOO paper arXiv 2402.14740 §3.1 "Vanilla PG"): Â_i = r_i, no baseline.

    The control for RLOO's variance claim: the same samples, the same loss, no baseline. Only
    std_scope "none" is meaningful here (a z-score would add a baseline).
    """
    if std_scope != "none":
        raise ValueError(f"advantage estimator `reward` takes no std scaling (scale_rewards: none), got {std_scope!r}")
    _grouped(rewards, G)  # shape check only
    return torch.nan_to_num(rewards.clone(), nan=0.0)  # [N]


def zero_std_groups(rewards: torch.Tensor, G: int) -> torch.Tensor:
    """Bool per group: all G rewards equal, so every advantage in it is 0 (no learning signal)."""
    r = _grouped(rewards, G)  # [N/G, G]
    return (r.max(dim=1).values - r.min(dim=1).values).abs() < 1e-12  # [N/G]
