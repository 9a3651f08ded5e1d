"""PAPO's loss terms (Wang et al., arXiv 2507.06448): the implicit perception loss and the double entropy loss.

PAPO-G minimises, per micro-batch (the method section: the implicit perception loss added to GRPO's objective with
weight γ; the double entropy loss of the loss-hacking analysis with weights η1, η2):

    L = L_GRPO − γ · agg(min(KL_prcp,t, c)) + η1 · agg(H_t) + η2 · agg(H^mask_t)

    KL_prcp,t = e^d − d − 1,  d = ℓ^mask_t − ℓ_t      (k3 estimate of D_KL[π_θ(·|q, I) ‖ π_θ(·|q, I_mask)]
                                                       at the sampled token; ≥ 0)
    H_t = −ℓ_t,  H^mask_t = −ℓ^mask_t                 (entropy "computed as the log probability of the
                                                       generated sequence", PAPO project page)

with ℓ_t = log π_θ(o_t | q, I, o_<t) on the original image and ℓ^mask_t on the masked image I_mask. The
KL is maximised (its sign), bounded above by c (`perception_kl_clip`; PAPO's code bounds its low-variance
KL at 10, and clips at 0.2 with `use_kl_prcp_clipping`) so a collapsing policy gains nothing beyond c.
`agg` is the run's own aggregator (PAPO's `average_loss` uses the policy loss's mode), so every term is
normalised like the policy loss, gradient accumulation included.

I_mask: PAPO blackens each vision patch independently with probability `mask_ratio` (0.6; its
`random_patch_blackening`, patch 14 = Qwen2.5-VL's ViT patch) — the `random` mask here. `pixel` is the
per-pixel variant of TRL's experimental PAPOTrainer (`mask_type="random"` there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from repro.losses.aggregation import AGGREGATORS, AggregationContext
from repro.registry import Registry

LOG_RATIO_BOUND = 20.0  # PAPO's low_var_kl clamps d to [−20, 20] before exponentiating (numerical guard)

# (pixel_values [B, C, H, W], ratio, patch, fill [C], generator) -> (masked [B, C, H, W], hidden units [B, ...] bool)
MaskFn = Callable[[torch.Tensor, float, int, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
IMAGE_MASKS: Registry[MaskFn] = Registry("image mask")


@IMAGE_MASKS.register("random")
def random_patches(
    pixel_values: torch.Tensor, ratio: float, patch: int, fill: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each patch × patch square (the last row/column may be cut) is set to `fill` with probability `ratio`."""
    B, C, H, W = pixel_values.shape
    rows, cols = -(-H // patch), -(-W // patch)
    hidden = torch.rand(B, rows, cols, generator=generator) < ratio  # [B, rows, cols]
    per_pixel = hidden.repeat_interleave(patch, 1).repeat_interleave(patch, 2)[:, :H, :W]  # [B, H, W]
    masked = torch.where(per_pixel.unsqueeze(1), fill.view(1, C, 1, 1).to(pixel_values), pixel_values)
    return masked, hidden  # [B, C, H, W], [B, rows, cols]


@IMAGE_MASKS.register("pixel")
def random_pixels(
    pixel_values: torch.Tensor, ratio: float, patch: int, fill: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel (all channels) is set to `fill` with probability `ratio` (TRL experimental's pixel mask)."""
    B, C, H, W = pixel_values.shape
    hidden = torch.rand(B, H, W, generator=generator) < ratio  # [B, H, W]
    masked = torch.where(hidden.unsqueeze(1), fill.view(1, C, 1, 1).to(pixel_values), pixel_values)
    return masked, hidden


def perception_kl(logp: torch.Tensor, logp_mask: torch.Tensor) -> torch.Tensor:
    """KL_prcp,t = e^d − d − 1 with d = ℓ^mask − ℓ (bounded to ±20): D_KL[π(·|I) ‖ π(·|I_mask)] per token."""
    d = (logp_mask - logp).clamp(-LOG_RATIO_BOUND, LOG_RATIO_BOUND)  # [B, T]
    return torch.exp(d) - d - 1  # [B, T]


@dataclass(frozen=True)
class PerceptionInputs:
    logp: torch.Tensor  # [B, T] ℓ_t on the original image
    logp_mask: torch.Tensor  # [B, T] ℓ^mask_t on the masked image
    kl_clip: float  # c


# Per-token terms to minimise, each weighted by its config coefficient (γ, η1, η2).
AuxTermFn = Callable[[PerceptionInputs], torch.Tensor]
AUXILIARY_TERMS: Registry[AuxTermFn] = Registry("auxiliary loss term")


@AUXILIARY_TERMS.register("implicit_perception")
def implicit_perception(x: PerceptionInputs) -> torch.Tensor:
    """−min(KL_prcp,t, c): minimising it maximises the clipped perception KL (the implicit perception loss)."""
    return -perception_kl(x.logp, x.logp_mask).clamp(max=x.kl_clip)  # [B, T]


@AUXILIARY_TERMS.register("entropy")
def entropy(x: PerceptionInputs) -> torch.Tensor:
    """H_t = −ℓ_t: the double entropy loss's term on the original image (kept low)."""
    return -x.logp  # [B, T]


@AUXILIARY_TERMS.register("masked_entropy")
def masked_entropy(x: PerceptionInputs) -> torch.Tensor:
    """H^mask_t = −ℓ^mask_t: the double entropy loss's term on the masked image (kept low)."""
    return -x.logp_mask  # [B, T]


@dataclass(frozen=True)
class PerceptionSpec:
    perception_loss_weight: float  # γ
    der_loss_weight1: float  # η1
    der_loss_weight2: float  # η2
    kl_clip: float = 10.0  # c

    @property
    def weights(self) -> dict[str, float]:
        return {
            "implicit_perception": self.perception_loss_weight,
            "entropy": self.der_loss_weight1,
            "masked_entropy": self.der_loss_weight2,
        }

    @property
    def active(self) -> bool:
        """False for GRPO (every weight 0): the terms are then only measured, never differentiated."""
        return any(w != 0.0 for w in self.weights.values())


def papo_loss(
    spec: PerceptionSpec,
    logp: torch.Tensor,  # [B, T]
    logp_mask: torch.Tensor,  # [B, T]
    mask: torch.Tensor,  # [B, T] completion tokens that count
    ctx: AggregationContext,
    aggregation: str,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Σ_k w_k · agg(term_k) over the terms with non-zero weight, and the per-token means for the log."""
    x = PerceptionInputs(logp, logp_mask, spec.kl_clip)
    aggregate = AGGREGATORS.get(aggregation)
    loss = logp.new_zeros(())
    for name, weight in spec.weights.items():
        if weight != 0.0:
            loss = loss + weight * aggregate(AUXILIARY_TERMS.get(name)(x), mask, ctx)
    with torch.no_grad():
        kl = perception_kl(logp, logp_mask)  # [B, T]
        n = mask.sum().clamp(min=1.0)
        metrics = {
            "perception_kl": float((kl * mask).sum() / n),
            "perception_kl_clipped_frac": float(((kl > spec.kl_clip).float() * mask).sum() / n),
            "entropy_loss": float((-logp * mask).sum() / n),
            "entropy_loss_masked": float((-logp_mask * mask).sum() / n),
        }
    return loss, metrics
