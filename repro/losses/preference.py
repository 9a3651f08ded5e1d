"""Pairwise preference losses (the DPO family of TRL 1.16's `DPOTrainer`, AlphaPO/SimPO of its `CPOTrainer`)
and unpaired BCO, as pure functions of summed completion log-probs.

Symbols (reference trl_losses.md §2.2): for a pair (x, y_c, y_r) of chosen and rejected completions,
logπ(y|x) is the sum of the completion tokens' log-probs (EOS included), |y| the number of completion tokens,
ρ = logπ_θ(y|x) − logπ_ref(y|x) the log-ratio, Δ = ρ_c − ρ_r, β the inverse temperature, ε the label
smoothing. Only TRL's default `f_divergence_type="reverse_kl"` is implemented (the score s is ρ itself).
Every loss returns per-pair values [B]; the trainer takes their mean, as TRL does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from repro.registry import Registry


@dataclass(frozen=True)
class PreferenceLogps:
    """Summed completion log-probs of a batch of B pairs (EOS included), and completion token counts."""

    chosen: Tensor  # [B] log π_θ(y_c|x)
    rejected: Tensor  # [B] log π_θ(y_r|x)
    ref_chosen: Tensor | None  # [B] log π_ref(y_c|x); None for reference-free losses
    ref_rejected: Tensor | None  # [B]
    chosen_lengths: Tensor  # [B] |y_c| completion tokens (float or int)
    rejected_lengths: Tensor  # [B]

    def __post_init__(self) -> None:
        fields = {k: v for k, v in vars(self).items() if v is not None}
        shapes = {k: tuple(v.shape) for k, v in fields.items()}
        if len(set(shapes.values())) != 1 or self.chosen.dim() != 1:
            raise ValueError(f"PreferenceLogps holds one value per pair: every field must have shape [B]; got {shapes}")
        if (self.ref_chosen is None) != (self.ref_rejected is None):
            raise ValueError("PreferenceLogps: give both ref_chosen and ref_rejected, or neither")

    @classmethod
    def from_stacked(cls, logps: Tensor, ref: Tensor | None, lengths: Tensor) -> PreferenceLogps:
        """From [chosen…; rejected…] stacks of 2B values (one forward over both), the reference optional."""
        B = logps.size(0) // 2
        return cls(
            chosen=logps[:B],  # [B]
            rejected=logps[B:],  # [B]
            ref_chosen=None if ref is None else ref[:B],
            ref_rejected=None if ref is None else ref[B:],
            chosen_lengths=lengths[:B],
            rejected_lengths=lengths[B:],
        )


@dataclass(frozen=True)
class PreferenceParams:
    beta: float = 0.1
    label_smoothing: float = 0.0  # ε (robust, aot*, exo_pair, alphapo's sigmoid); ignored by `sigmoid`, as in TRL 1.16
    discopop_tau: float = 0.05
    alpha: float = 0.0  # AlphaPO's reward-shape α (CPOConfig.alpha)
    simpo_gamma: float = 0.5  # AlphaPO/SimPO target margin γ (CPOConfig.simpo_gamma)


@dataclass(frozen=True)
class PreferenceLossOutput:
    losses: Tensor  # [B] per-pair loss (the trainer takes the mean)
    chosen_rewards: Tensor  # [B] implicit reward of y_c, detached (β·ρ_c for DPO-style losses, β·r_c for alphapo)
    rejected_rewards: Tensor  # [B]


PreferenceLossFn = Callable[[PreferenceLogps, PreferenceParams], PreferenceLossOutput]


@dataclass(frozen=True)
class PreferenceLoss:
    fn: PreferenceLossFn
    needs_reference: bool = True  # alphapo is reference-free
    citation: str = ""  # paper + equation


PREFERENCE_LOSSES: Registry[PreferenceLoss] = Registry("preference loss_type")


def _register(name: str, citation: str, needs_reference: bool = True) -> Callable[[PreferenceLossFn], PreferenceLossFn]:
    def add(fn: PreferenceLossFn) -> PreferenceLossFn:
        PREFERENCE_LOSSES.add(name, PreferenceLoss(fn=fn, needs_reference=needs_reference, citation=citation))
        return fn

    return add


# ----------------------------------------------------------------------------------------------------------------
# Shared pieces (each formula once)
# ----------------------------------------------------------------------------------------------------------------


def implicit_reward(logps: Tensor, ref_logps: Tensor, beta: float) -> Tensor:
    """The DPO implicit reward β·(logπ_θ(y|x) − logπ_ref(y|x)) (DPO arXiv 2305.18290 Eq. 5, without log Z)."""
    return beta * (logps - ref_logps)  # [B]


def _log_ratios(x: PreferenceLogps) -> tuple[Tensor, Tensor]:
    """ρ_c, ρ_r; a clear error when the reference log-probs are missing."""
    if x.ref_chosen is None or x.ref_rejected is None:
        free = [n for n in PREFERENCE_LOSSES.names() if not PREFERENCE_LOSSES.get(n).needs_reference]
        raise ValueError(
            "this preference loss needs reference log-probs, but PreferenceLogps.ref_chosen/ref_rejected are None: "
            "score the pairs with the reference model first (TRL: precompute_ref_log_probs or ref_model), "
            f"or use a reference-free loss ({', '.join(free)})"
        )
    return x.chosen - x.ref_chosen, x.rejected - x.ref_rejected  # [B], [B]


def _per_token(value: Tensor, lengths: Tensor) -> Tensor:
    """value / |y| with |y| clamped at 1 (TRL's `completion_mask.sum(1).clamp(min=1.0)`)."""
    return value / lengths.to(value.dtype).clamp(min=1.0)  # [B]


def _smoothed_logistic(z: Tensor, eps: float) -> Tensor:
    """−(1−ε)·logσ(z) − ε·logσ(−z): the logistic loss with labels smoothed by ε (conservative DPO form)."""
    return -(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)  # [B]


def _dpo_style(losses: Tensor, rho_c: Tensor, rho_r: Tensor, beta: float) -> PreferenceLossOutput:
    """Per-pair losses with TRL's DPO metrics: rewards β·ρ on summed log-probs, detached."""
    return PreferenceLossOutput(
        losses=losses,
        chosen_rewards=(beta * rho_c).detach(),  # [B]
        rejected_rewards=(beta * rho_r).detach(),  # [B]
    )


# ----------------------------------------------------------------------------------------------------------------
# DPOTrainer loss types (TRL 1.16 `DPOTrainer._compute_loss`)
# ----------------------------------------------------------------------------------------------------------------


@_register("sigmoid", "DPO, Rafailov et al. 2023, arXiv 2305.18290 Eq. 7")
def sigmoid(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """DPO (arXiv 2305.18290 Eq. 7): ℓ = −logσ(βΔ), Δ = ρ_c − ρ_r.

    ε is ignored, as in TRL 1.16: its DPO refactor (PR #3906, Feb 2026) dropped cDPO's
    −(1−ε)logσ(βΔ) − ε·logσ(−βΔ) from `sigmoid`, and `label_smoothing` now only reaches robust, exo_pair,
    aot and aot_unpaired. Label-smoothed logistic losses here: `robust` (unbiased rDPO) and `aot*`.
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    delta = rho_c - rho_r  # [B]
    return _dpo_style(-F.logsigmoid(p.beta * delta), rho_c, rho_r, p.beta)


@_register(
    "hinge", "SLiC-HF calibration loss (arXiv 2305.10425) on normalised likelihoods, as in RSO (arXiv 2309.06657)"
)
def hinge(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """SLiC hinge on the normalised likelihood (SLiC-HF arXiv 2305.10425; RSO arXiv 2309.06657):
    ℓ = max(0, 1 − βΔ); 1/β is the margin. Exactly 0, with zero gradient, once βΔ ≥ 1.
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    return _dpo_style(torch.relu(1 - p.beta * (rho_c - rho_r)), rho_c, rho_r, p.beta)


@_register("ipo", "IPO, Azar et al. 2023, arXiv 2310.12036 Eq. 17 (TRL length-normalises)")
def ipo(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """IPO (arXiv 2310.12036 Eq. 17, β in the role of τ): ℓ = (ρ_c/|y_c| − ρ_r/|y_r| − 1/(2β))².

    The per-token normalisation is TRL's choice (its comment: confirmed with the IPO authors); the paper's
    Eq. 17 uses the unnormalised sequence log-ratios ρ_c − ρ_r. Minimum 0 at normalised margin 1/(2β).
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    margin = _per_token(rho_c, x.chosen_lengths) - _per_token(rho_r, x.rejected_lengths)  # [B]
    return _dpo_style((margin - 1 / (2 * p.beta)) ** 2, rho_c, rho_r, p.beta)


@_register("exo_pair", "EXO, Ji et al. 2024, arXiv 2402.00856 Eq. 16 (K = 2)")
def exo_pair(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """EXO-pref for K = 2 (arXiv 2402.00856 Eq. 16): KL(q_θ ‖ p_ε) with q_θ = (σ(βΔ), σ(−βΔ)) and the smoothed
    target p_ε = (1−ε, ε): ℓ = σ(z)(logσ(z) − log(1−ε)) + σ(−z)(logσ(−z) − log ε), z = βΔ.
    """
    eps = p.label_smoothing
    if not 0.0 < eps < 1.0:
        raise ValueError(
            f"exo_pair needs 0 < label_smoothing < 1 (EXO's target puts mass ε on the rejected answer and takes "
            f"log ε); got {eps}. Set label_smoothing to 1e-3, the EXO paper's value (TRL raises for 0 too)."
        )
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    z = p.beta * (rho_c - rho_r)  # [B]
    kl = torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-eps)) + torch.sigmoid(-z) * (
        F.logsigmoid(-z) - math.log(eps)
    )  # [B]
    return _dpo_style(kl, rho_c, rho_r, p.beta)


@_register("nca_pair", "NCA, Chen et al. 2024, arXiv 2402.05369 (pairwise NCA, K = 2)")
def nca_pair(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """Pairwise NCA (arXiv 2402.05369; K = 2): ℓ = −logσ(βρ_c) − ½logσ(−βρ_c) − ½logσ(−βρ_r).

    Acts on each response's own likelihood ratio, not only on the margin.
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    r_c, r_r = p.beta * rho_c, p.beta * rho_r  # [B], [B]
    losses = -F.logsigmoid(r_c) - 0.5 * F.logsigmoid(-r_c) - 0.5 * F.logsigmoid(-r_r)  # [B]
    return _dpo_style(losses, rho_c, rho_r, p.beta)


@_register("robust", "rDPO, Chowdhury et al. 2024, arXiv 2403.00409 (the de-biased loss ℓ̂_ε)")
def robust(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """Robust DPO (arXiv 2403.00409, de-biased loss): the unbiased loss under labels flipped with probability ε,
    ℓ = [−(1−ε)logσ(βΔ) + ε·logσ(−βΔ)] / (1 − 2ε).

    Deviation: TRL 1.16 only warns for ε ∉ [0, 0.5); at ε = ½ the loss divides by 0 and above it the sign of the
    loss flips, so we raise.
    """
    eps = p.label_smoothing
    if not 0.0 <= eps < 0.5:
        raise ValueError(
            f"robust (rDPO) needs 0 <= label_smoothing < 0.5 (ε is the label-flip rate; the loss divides by 1 − 2ε); "
            f"got {eps}. The rDPO paper uses 0.1."
        )
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    z = p.beta * (rho_c - rho_r)  # [B]
    losses = (-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)  # [B]
    return _dpo_style(losses, rho_c, rho_r, p.beta)


@_register("bco_pair", "BCO, Jung et al. 2024, arXiv 2404.04656 (paired, without the reward shift δ)")
def bco_pair(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """Paired BCO (arXiv 2404.04656): a binary classifier on the implicit rewards,
    ℓ = −logσ(βρ_c) − logσ(−βρ_r). Unlike `bco_unpaired_loss`, TRL's paired form has no running shift δ.
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    losses = -F.logsigmoid(p.beta * rho_c) - F.logsigmoid(-p.beta * rho_r)  # [B]
    return _dpo_style(losses, rho_c, rho_r, p.beta)


@_register("sppo_hard", "SPPO, Wu et al. 2024, arXiv 2405.00675 Eq. 4.7 (Algorithm 1) with hard P ∈ {0, 1}")
def sppo_hard(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """SPPO with hard win probabilities (arXiv 2405.00675 Eq. 4.7 with P = 1 for y_c, 0 for y_r):
    ℓ = (ρ_c − 1/(2β))² + (ρ_r + 1/(2β))², minimal at ρ_c = 1/(2β), ρ_r = −1/(2β).
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    losses = (rho_c - 1 / (2 * p.beta)) ** 2 + (rho_r + 1 / (2 * p.beta)) ** 2  # [B]
    return _dpo_style(losses, rho_c, rho_r, p.beta)


@_register("aot", "AOT, Melnyk et al. 2024, arXiv 2406.05882 (paired: sorted margins)")
def aot(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """AOT, paired (arXiv 2406.05882): first-order stochastic dominance of the policy's margin over the
    reference's, through the batch's sorted quantiles. With m = logπ_c − logπ_r and m_ref likewise,
    d = sort_B(m) − sort_B(m_ref) and ℓ = −(1−ε)logσ(βd) − ε·logσ(−βd).

    The losses are in sorted order (the i-th quantiles), not aligned with the input pairs; only their mean
    is meaningful. The rewards stay per pair (β·ρ). As TRL: `torch.sort` ascending along the batch.
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    m_sorted, _ = torch.sort(x.chosen - x.rejected, dim=0)  # [B]
    m_ref_sorted, _ = torch.sort(x.ref_chosen - x.ref_rejected, dim=0)  # [B]
    d = m_sorted - m_ref_sorted  # [B]
    return _dpo_style(_smoothed_logistic(p.beta * d, p.label_smoothing), rho_c, rho_r, p.beta)


@_register("aot_unpaired", "AOT, Melnyk et al. 2024, arXiv 2406.05882 (unpaired: sorted log-ratios)")
def aot_unpaired(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """AOT, unpaired (arXiv 2406.05882): dominance of the chosen log-ratio distribution over the rejected one,
    d = sort_B(ρ_c) − sort_B(ρ_r), ℓ = −(1−ε)logσ(βd) − ε·logσ(−βd). Losses in sorted order (see `aot`).
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    d = torch.sort(rho_c, dim=0)[0] - torch.sort(rho_r, dim=0)[0]  # [B]
    return _dpo_style(_smoothed_logistic(p.beta * d, p.label_smoothing), rho_c, rho_r, p.beta)


# TRL called the unpaired AOT loss `aot_pair` until PR #5038 (Feb 2026); TRL 1.16 accepts `aot_pair` in DPOConfig
# but raises "Unknown loss type" at the first step. We keep the old name as an alias of the same entry.
PREFERENCE_LOSSES.add("aot_pair", PREFERENCE_LOSSES.get("aot_unpaired"))


@_register("discopop", "DiscoPOP (log-ratio modulated loss), Lu et al. 2024, arXiv 2406.08414 Eq. 5")
def discopop(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """DiscoPOP (arXiv 2406.08414 Eq. 5), z = βΔ, m = σ(z/τ): ℓ = (1−m)·(−logσ(z)) + m·e^{−z}.

    m·e^{−z} is evaluated as exp(logσ(z/τ) − z): equal in value, and finite where TRL's σ(z/τ)·e^{−z}
    gives 0·∞ = nan (z ≲ −88 in float32).
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    z = p.beta * (rho_c - rho_r)  # [B]
    m = torch.sigmoid(z / p.discopop_tau)  # [B]
    losses = (1 - m) * -F.logsigmoid(z) + torch.exp(F.logsigmoid(z / p.discopop_tau) - z)  # [B]
    return _dpo_style(losses, rho_c, rho_r, p.beta)


@_register("apo_zero", "APO-zero, D'Oosterlinck et al. 2024, arXiv 2408.06266 Eq. 7")
def apo_zero(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """APO-zero (arXiv 2408.06266 Eq. 7): ℓ = (1 − σ(βρ_c)) + σ(βρ_r): raises y_c, lowers y_r, each anchored to
    the reference (use when the chosen answers beat the model's own)."""
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    losses = (1 - torch.sigmoid(p.beta * rho_c)) + torch.sigmoid(p.beta * rho_r)  # [B]
    return _dpo_style(losses, rho_c, rho_r, p.beta)


@_register("apo_down", "APO-down, D'Oosterlinck et al. 2024, arXiv 2408.06266 Eq. 8")
def apo_down(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """APO-down (arXiv 2408.06266 Eq. 8): ℓ = σ(βρ_c) + (1 − σ(β(ρ_c − ρ_r))): lowers y_c, and y_r more (use
    when the model already beats the chosen answers).

    ∂ℓ/∂ρ_r > 0 always; ∂ℓ/∂ρ_c = β[σ'(βρ_c) − σ'(βΔ)] is 0 at ρ_c = ρ_r = 0 (e.g. at step 0, π_θ = π_ref)
    and > 0 (pushes y_c down) once |ρ_c| < |Δ|.
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    losses = torch.sigmoid(p.beta * rho_c) + (1 - torch.sigmoid(p.beta * (rho_c - rho_r)))  # [B]
    return _dpo_style(losses, rho_c, rho_r, p.beta)


@_register("sigmoid_norm", "length-normalised DPO as in SimPO's reward, Meng et al. 2024, arXiv 2405.14734 Eq. 4")
def sigmoid_norm(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """Length-normalised DPO: ℓ = −logσ(β(ρ_c/|y_c| − ρ_r/|y_r|)) (SimPO's per-token normalisation,
    arXiv 2405.14734, applied to DPO's log-ratios; TRL's `sigmoid_norm`). Rewards stay β·ρ on the sums.
    """
    rho_c, rho_r = _log_ratios(x)  # [B], [B]
    margin = _per_token(rho_c, x.chosen_lengths) - _per_token(rho_r, x.rejected_lengths)  # [B]
    return _dpo_style(-F.logsigmoid(p.beta * margin), rho_c, rho_r, p.beta)


# ----------------------------------------------------------------------------------------------------------------
# CPOTrainer loss_type="alphapo" (TRL 1.16 `CPOTrainer.cpo_loss` with loss_type "simpo", cpo_alpha = 0)
# ----------------------------------------------------------------------------------------------------------------


@_register(
    "alphapo",
    "AlphaPO, Gupta et al. 2025, arXiv 2501.03884 (the α-reward) with SimPO's margin γ (arXiv 2405.14734 Eq. 6)",
    needs_reference=False,
)
def alphapo(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """AlphaPO (arXiv 2501.03884, the α-reward), reference-free. On length-averaged log-probs π̄ = logπ_θ(y|x)/|y|:
    r = (1 − e^{−α·π̄})/α (= (1 − p̄^{−α})/α, p̄ = e^{π̄}), r = π̄ at α = 0;
    logits = r_c − r_r − γ/β; ℓ = −(1−ε)logσ(β·logits) − ε·logσ(−β·logits).
    At α = 0, ε = 0 this is SimPO (arXiv 2405.14734 Eq. 6): −logσ(β(π̄_c − π̄_r) − γ).
    Rewards β·r (TRL's metric). TRL forms p̄ = exp(π̄) first; e^{−α·π̄} is the same value without underflow.
    """
    alpha = p.alpha
    pi_bar_c = _per_token(x.chosen, x.chosen_lengths)  # [B]
    pi_bar_r = _per_token(x.rejected, x.rejected_lengths)  # [B]
    if alpha != 0.0:
        r_c = (1 - torch.exp(-alpha * pi_bar_c)) / alpha  # [B]
        r_r = (1 - torch.exp(-alpha * pi_bar_r)) / alpha  # [B]
    else:
        r_c, r_r = pi_bar_c, pi_bar_r
    logits = r_c - r_r - p.simpo_gamma / p.beta  # [B]
    return PreferenceLossOutput(
        losses=_smoothed_logistic(p.beta * logits, p.label_smoothing),
        chosen_rewards=(p.beta * r_c).detach(),  # [B]
        rejected_rewards=(p.beta * r_r).detach(),  # [B]
    )


register_simpo = _register(
    "simpo",
    "SimPO, Meng et al. 2024, arXiv 2405.14734 Eq. 6 (TRL CPOConfig loss_type simpo; α-reward when alpha ≠ 0)",
    needs_reference=False,
)
register_simpo(alphapo)  # the same formula: CPOTrainer computes both as "simpo"; only cpo_alpha's default differs


@_register("sft", "TRL 1.16 DPOTrainer loss_type sft: the NLL of the chosen completions", needs_reference=False)
def sft(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
    """−Σ_pairs logπ_θ(y_c|x) / Σ_pairs |y_c|: the token mean of the chosen completions' NLL over the batch, the same
    value for every pair (so the trainer's mean over pairs is that token mean). Rewards: β·ρ when the reference is
    given, else β·logπ (nothing to compare against)."""
    nll = -x.chosen.sum() / x.chosen_lengths.sum().clamp(min=1)  # []
    rho_c, rho_r = _log_ratios(x) if x.ref_chosen is not None else (x.chosen, x.rejected)
    return PreferenceLossOutput(
        losses=nll.expand_as(x.chosen),  # [B]
        chosen_rewards=(p.beta * rho_c).detach(),  # [B]
        rejected_rewards=(p.beta * rho_r).detach(),  # [B]
    )


def combined_loss(terms: list[tuple[str, float]]) -> PreferenceLoss:
    """Σ_k w_k·ℓ_k over named losses (TRL 1.16 DPOConfig `loss_type` list with `loss_weights`, e.g. MPO's
    [sigmoid, bco_pair, sft]; CPO's `cpo_alpha`·NLL is the term (sft, cpo_alpha)). One term of weight 1 is that
    loss itself. Rewards are the first term's."""
    losses = [(PREFERENCE_LOSSES.get(name), weight) for name, weight in terms]
    if len(losses) == 1 and losses[0][1] == 1.0:
        return losses[0][0]

    def fn(x: PreferenceLogps, p: PreferenceParams) -> PreferenceLossOutput:
        outs = [(loss.fn(x, p), weight) for loss, weight in losses]
        total = sum(weight * out.losses for out, weight in outs)  # [B]
        return PreferenceLossOutput(total, outs[0][0].chosen_rewards, outs[0][0].rejected_rewards)  # type: ignore[arg-type]

    citation = " + ".join(f"{weight:g}·{name}" for name, weight in terms)
    return PreferenceLoss(fn=fn, needs_reference=any(loss.needs_reference for loss, _ in losses), citation=citation)


# ----------------------------------------------------------------------------------------------------------------
# Unpaired BCO (TRL's experimental BCOTrainer, present in the 1.10 snapshot, removed before 1.16; reference §3.11)
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class RunningMoments:
    """Running mean and variance of a stream of rewards, as TRL's BCO `RunningMoments` (1.10 snapshot,
    trl/experimental/bco/bco_trainer.py): a prior of mean 0, variance 1 and weight `count` = 1e-24, and each
    batch merged with Chan et al.'s parallel formula,
        N = n_old + n, δ = m_batch − m_old, m ← m_old + δ·n/N,
        var ← (var_old·n_old + var_batch·n + δ²·n_old·n/N) / N      (population variances).
    The prior's weight vanishes in float64 once any batch arrives (n + 1e-24 == n), so after k updates mean and
    var equal those of all values seen; a single observation leaves var ≈ 1e-24·(1 + x²), not 0.
    `std` is Bessel-corrected, sqrt(var·N/(N−1)), as TRL's (inf while N ≤ 1, where TRL divides by 0 → inf).

    Choices: moments accumulate in float64 (TRL: float32 batch moments, float Python state); `update` returns the
    running (mean, std) after the update, where TRL's returns the batch's own mean and unbiased std (the BCO
    trainer ignores that return value and reads `.mean`).
    """

    mean: float = 0.0
    var: float = 1.0
    std: float = 1.0
    count: float = 1e-24

    @torch.no_grad()
    def update(self, values: Tensor) -> tuple[float, float]:
        x = values.detach().reshape(-1).double()  # [n]
        n = x.numel()
        if n == 0:
            raise ValueError("RunningMoments.update needs at least one value")
        var_batch, mean_batch = torch.var_mean(x, unbiased=False)
        delta = float(mean_batch) - self.mean
        total = self.count + n
        m2 = self.var * self.count + float(var_batch) * n + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.var = m2 / total
        self.std = math.sqrt(self.var * total / (total - 1)) if total > 1 else math.inf
        self.count = total
        return self.mean, self.std


def bco_unpaired_loss(
    logps: Tensor, ref_logps: Tensor, labels: Tensor, beta: float, delta: float
) -> tuple[Tensor, Tensor]:
    """Unpaired BCO (Jung et al. 2024, arXiv 2404.04656; TRL BCOTrainer.bco_loss): a binary classifier on
    the implicit reward r = β(logπ_θ − logπ_ref), shifted by δ (the running mean of all rewards, from
    `RunningMoments`, updated with this batch's detached rewards before the call):
        desirable (label True): −logσ(r − δ);   undesirable: −logσ(−(r − δ)).

    Rows keep their input order (TRL concatenates desirable then undesirable rows; the mean is the same).
    TRL's optional underlying-distribution matching (UDM: density-ratio weights on undesirable rows from a
    prompt classifier) is not implemented.

    Args: logps, ref_logps [N] summed completion log-probs; labels [N] bool. Returns (losses [N], rewards [N],
    the rewards detached).
    """
    r = implicit_reward(logps, ref_logps, beta)  # [N]
    sign = labels.to(r.dtype) * 2 - 1  # [N] +1 desirable, −1 undesirable
    losses = -F.logsigmoid(sign * (r - delta))  # [N]
    return losses, r.detach()
