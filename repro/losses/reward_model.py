"""The pairwise reward-model loss of TRL 1.16's `RewardTrainer.compute_loss`, as a pure function of rewards.

For a batch of B pairs (x, y_c, y_r), r_c = r(x, y_c) and r_r = r(x, y_r) are the reward model's scalar outputs,
m the pair's margin (Llama 2, arXiv 2307.09288 §3.2.2 Eq. 2: a function of the annotators' preference rating)
and η the centring coefficient (Eisenstein et al., arXiv 2312.09244 Eq. 2; TRL's `center_rewards_coefficient`):

    L = −mean_B log σ(r_c − r_r − m) + η · mean_B (r_c + r_r)²

m = 0 (no margin column) is the Bradley–Terry ranking loss of InstructGPT; η = None (TRL's default) or 0 leaves
the rewards' common offset free, which the Bradley–Terry likelihood cannot see (it depends on r_c − r_r only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class RewardLossOutput:
    loss: Tensor  # [] the scalar TRL minimises
    ranking: Tensor  # [] −mean log σ(r_c − r_r − m)
    centering: Tensor  # [] mean (r_c + r_r)², before η (logged even when η is off)


def reward_model_loss(
    rewards_chosen: Tensor,  # [B] r_c
    rewards_rejected: Tensor,  # [B] r_r
    margin: Tensor | None = None,  # [B] m per pair; None: no margin (TRL: no `margin` column)
    center_rewards_coefficient: float | None = None,  # η; None: off
) -> RewardLossOutput:
    if rewards_chosen.shape != rewards_rejected.shape or rewards_chosen.dim() != 1:
        raise ValueError(
            f"rewards must be two [B] vectors; got {tuple(rewards_chosen.shape)} and {tuple(rewards_rejected.shape)}"
        )
    if margin is not None and margin.shape != rewards_chosen.shape:
        raise ValueError(f"margin must have shape [B] = {tuple(rewards_chosen.shape)}; got {tuple(margin.shape)}")
    gap = rewards_chosen - rewards_rejected  # [B] r_c − r_r
    if margin is not None:
        gap = gap - margin.to(gap.dtype)  # [B] the chosen must win by at least m
    ranking = -F.logsigmoid(gap).mean()  # []
    centering = torch.mean((rewards_chosen + rewards_rejected) ** 2)  # [] pulls the pair's mean reward to 0
    loss = ranking if center_rewards_coefficient is None else ranking + center_rewards_coefficient * centering
    return RewardLossOutput(loss=loss, ranking=ranking, centering=centering)
