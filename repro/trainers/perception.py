"""PAPO in the online RL loop: mask each row's image once per generation, then per micro-batch score the
completions under π_θ(· | q, I_mask) and add the perception / double-entropy terms (repro/losses/perception.py).

With every weight 0 (GRPO) the masked forward runs without gradient and only logs `perception_kl` and the
entropy terms; masks come from their own generator, so training is unchanged by the measurement.
"""

from __future__ import annotations

from typing import Any

import torch

from repro.losses.aggregation import AggregationContext
from repro.losses.perception import IMAGE_MASKS, PerceptionSpec, papo_loss
from repro.models.vision import black_level, vision_patch_size
from repro.schema import ConfigError
from repro.trainers.logprobs import completion_logprobs


class PerceptionProbe:
    def __init__(self, train: Any, processor: Any, model: torch.nn.Module, seed: int) -> None:
        self.spec = PerceptionSpec(
            train.perception_loss_weight, train.der_loss_weight1, train.der_loss_weight2, train.perception_kl_clip
        )
        self.mask_fn = IMAGE_MASKS.get(train.mask_type)
        self.ratio = train.mask_ratio
        self.patch = train.mask_patch_size or vision_patch_size(processor, model)
        self.fill = black_level(processor)  # [C]
        self.seed = seed

    def masked_inputs(self, extra: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """The generation's extra inputs with every row's image masked (own RNG, seeded by run seed and step)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        masked, _ = self.mask_fn(extra["pixel_values"], self.ratio, self.patch, self.fill, generator)
        return {**extra, "pixel_values": masked}  # [N, C, H, W]

    def loss(
        self,
        model: torch.nn.Module,
        ids: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],  # prompt ids/mask, completion ids/mask
        masked_extra: dict[str, torch.Tensor],  # this micro-batch's rows
        logp: torch.Tensor,  # [n, T] ℓ on the original image, with grad
        mask: torch.Tensor,  # [n, T]
        ctx: AggregationContext,
        aggregation: str,
        temperature: float,
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """PAPO's extra loss for one micro-batch (None when every weight is 0) and its metrics."""
        active = self.spec.active
        with torch.set_grad_enabled(active and torch.is_grad_enabled()):
            logp_mask, _ = completion_logprobs(model, *ids, temperature, extra_inputs=masked_extra)  # [n, T]
            loss, metrics = papo_loss(self.spec, logp if active else logp.detach(), logp_mask, mask, ctx, aggregation)
        return (loss if active else None), metrics


def make_probe(train: Any, processor: Any, model: torch.nn.Module, seed: int) -> PerceptionProbe | None:
    """A probe for a vision-language run; None for text. PAPO's weights on a text-only policy are an error."""
    if processor is not None:
        return PerceptionProbe(train, processor, model, seed)
    if any((train.perception_loss_weight, train.der_loss_weight1, train.der_loss_weight2)):
        raise ConfigError(
            "train.perception_loss_weight / der_loss_weight1 / der_loss_weight2 (PAPO) need a vision-language "
            "policy whose prompts carry images (e.g. model prepared:smoke_vl with data synthetic:count_colour)"
        )
    return None
