"""Preference losses (repro/losses/preference.py): every registry entry against values computed pair by pair with
plain `math`, their edge cases and gradient signs, parity with TRL 1.16 (`DPOTrainer._compute_loss` on injected
log-probs, `CPOTrainer.cpo_loss`; reference trl_losses.md §2.2, §3.2, §6), and unpaired BCO with its running
reward mean (§3.11).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from repro.losses.preference import (
    PREFERENCE_LOSSES,
    PreferenceLogps,
    PreferenceParams,
    RunningMoments,
    bco_unpaired_loss,
)
from repro.registry import RegistryError

DPO_STYLE = [
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "aot_pair",
    "discopop",
    "apo_zero",
    "apo_down",
    "sigmoid_norm",
]
REFERENCE_FREE = ("alphapo", "simpo", "sft")  # simpo: CPO's name for the same formula; sft: the chosen NLL
ALL_NAMES = sorted([*DPO_STYLE, *REFERENCE_FREE])


# ----------------------------------------------------------------------------------------------------------------
# A fixed batch and the hand-computed values
# ----------------------------------------------------------------------------------------------------------------

# ρ_c = [0.5, −1, 0.5, 4], ρ_r = [−0.5, 0.5, −1.5, −1], Δ = [1, −1.5, 2, 5]; with β = 0.3, βΔ = 1.5 ≥ 1 on the last
# pair (hinge 0). Sorting changes the pairing: AOT's sorted policy margins [−2, −1, 1.5, 4.5] minus sorted reference
# margins [−6, −0.5, 0.5, 2.5] give d = [4, −0.5, 1, 2], not the per-pair Δ.
CHOSEN = [-5.0, -9.0, -3.5, -12.0]
REJECTED = [-6.5, -7.0, -8.0, -11.0]
REF_CHOSEN = [-5.5, -8.0, -4.0, -16.0]
REF_REJECTED = [-6.0, -7.5, -6.5, -10.0]
LEN_C = [4, 6, 3, 8]
LEN_R = [5, 5, 7, 6]
PARAMS = PreferenceParams(beta=0.3, label_smoothing=0.1, discopop_tau=0.05, alpha=0.25, simpo_gamma=0.5)


def logps(
    chosen=CHOSEN, rejected=REJECTED, ref_chosen=REF_CHOSEN, ref_rejected=REF_REJECTED, len_c=LEN_C, len_r=LEN_R
) -> PreferenceLogps:
    def t(v):
        return None if v is None else torch.tensor(v, dtype=torch.float64)

    return PreferenceLogps(
        chosen=t(chosen),
        rejected=t(rejected),
        ref_chosen=t(ref_chosen),
        ref_rejected=t(ref_rejected),
        chosen_lengths=torch.tensor(len_c),  # int counts are accepted
        rejected_lengths=torch.tensor(len_r),
    )


def ls(z: float) -> float:
    """log σ(z), computed without overflow."""
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


def sg(z: float) -> float:
    return math.exp(ls(z))


def hand_losses(name: str, p: PreferenceParams) -> list[float]:
    """Per-pair losses of the fixed batch, pair by pair in plain Python (TRL 1.16 formulas, reference §2.2)."""
    b, e = p.beta, p.label_smoothing
    rc = [c - r for c, r in zip(CHOSEN, REF_CHOSEN)]
    rr = [c - r for c, r in zip(REJECTED, REF_REJECTED)]
    out = []
    if name in ("aot", "aot_unpaired", "aot_pair"):
        if name == "aot":
            m = sorted(c - r for c, r in zip(CHOSEN, REJECTED))
            m_ref = sorted(c - r for c, r in zip(REF_CHOSEN, REF_REJECTED))
            d = [x - y for x, y in zip(m, m_ref)]
        else:
            d = [x - y for x, y in zip(sorted(rc), sorted(rr))]
        return [-(1 - e) * ls(b * di) - e * ls(-b * di) for di in d]
    for i in range(len(CHOSEN)):
        c, r, lc, lr = rc[i], rr[i], LEN_C[i], LEN_R[i]
        z = b * (c - r)
        if name == "sigmoid":
            v = -ls(z)  # ε ignored, as TRL 1.16
        elif name == "hinge":
            v = max(0.0, 1 - z)
        elif name == "ipo":
            v = (c / lc - r / lr - 1 / (2 * b)) ** 2
        elif name == "exo_pair":
            v = sg(z) * (ls(z) - math.log(1 - e)) + sg(-z) * (ls(-z) - math.log(e))
        elif name == "nca_pair":
            v = -ls(b * c) - 0.5 * ls(-b * c) - 0.5 * ls(-b * r)
        elif name == "robust":
            v = (-(1 - e) * ls(z) + e * ls(-z)) / (1 - 2 * e)
        elif name == "bco_pair":
            v = -ls(b * c) - ls(-b * r)
        elif name == "sppo_hard":
            v = (c - 1 / (2 * b)) ** 2 + (r + 1 / (2 * b)) ** 2
        elif name == "discopop":
            mix = sg(z / p.discopop_tau)
            v = (1 - mix) * -ls(z) + mix * math.exp(-z)
        elif name == "apo_zero":
            v = (1 - sg(b * c)) + sg(b * r)
        elif name == "apo_down":
            v = sg(b * c) + (1 - sg(b * (c - r)))
        elif name == "sigmoid_norm":
            v = -ls(b * (c / lc - r / lr))
        elif name == "sft":
            v = -sum(CHOSEN) / sum(LEN_C)  # TRL's sft term: the batch's chosen-token mean NLL, for every pair
        elif name in ("alphapo", "simpo"):
            pc, pr = CHOSEN[i] / lc, REJECTED[i] / lr
            a = p.alpha
            r_c, r_r = ((1 - math.exp(-a * pc)) / a, (1 - math.exp(-a * pr)) / a) if a else (pc, pr)
            u = b * (r_c - r_r - p.simpo_gamma / b)
            v = -(1 - e) * ls(u) - e * ls(-u)
        else:
            raise AssertionError(name)
        out.append(v)
    return out


def run(name: str, x: PreferenceLogps | None = None, p: PreferenceParams = PARAMS):
    return PREFERENCE_LOSSES.get(name).fn(logps() if x is None else x, p)


# ----------------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------------


def test_registry_names_flags_and_citations():
    assert PREFERENCE_LOSSES.names() == ALL_NAMES
    for name in ALL_NAMES:
        entry = PREFERENCE_LOSSES.get(name)
        assert entry.citation, name
        assert entry.needs_reference == (name not in REFERENCE_FREE), name


def test_aot_pair_is_an_alias_of_aot_unpaired():
    assert PREFERENCE_LOSSES.get("aot_pair") is PREFERENCE_LOSSES.get("aot_unpaired")


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(RegistryError) as err:
        PREFERENCE_LOSSES.get("dpo")
    msg = str(err.value)
    assert "preference loss_type 'dpo'" in msg
    for name in ALL_NAMES:
        assert name in msg


@pytest.mark.parametrize("name", DPO_STYLE)
def test_missing_reference_is_a_clear_error(name: str):
    with pytest.raises(ValueError, match="needs reference log-probs.*alphapo"):
        run(name, logps(ref_chosen=None, ref_rejected=None))


def test_logps_shapes_are_checked():
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        logps(len_c=[4, 6, 3])
    with pytest.raises(ValueError, match="both ref_chosen and ref_rejected"):
        logps(ref_rejected=None)


# ----------------------------------------------------------------------------------------------------------------
# Every entry by hand
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_losses_and_rewards_by_hand(name: str):
    out = run(name)
    assert out.losses.shape == (4,)
    torch.testing.assert_close(out.losses, torch.tensor(hand_losses(name, PARAMS), dtype=torch.float64))
    b = PARAMS.beta
    if name in ("alphapo", "simpo"):
        a = PARAMS.alpha
        exp_c = [b * (1 - math.exp(-a * c / n)) / a for c, n in zip(CHOSEN, LEN_C)]
        exp_r = [b * (1 - math.exp(-a * r / n)) / a for r, n in zip(REJECTED, LEN_R)]
    else:  # β·ρ on the summed log-probs, TRL's rewards/chosen and rewards/rejected
        exp_c = [b * (c - r) for c, r in zip(CHOSEN, REF_CHOSEN)]
        exp_r = [b * (c - r) for c, r in zip(REJECTED, REF_REJECTED)]
    torch.testing.assert_close(out.chosen_rewards, torch.tensor(exp_c, dtype=torch.float64))
    torch.testing.assert_close(out.rejected_rewards, torch.tensor(exp_r, dtype=torch.float64))


def test_values_at_zero_log_ratios():
    """Pinned numbers: at π_θ = π_ref every log-ratio is 0."""
    x = logps(ref_chosen=CHOSEN, ref_rejected=REJECTED)
    b, eps = 0.25, 1e-3
    p = PreferenceParams(beta=b, label_smoothing=eps)
    log2 = math.log(2)
    expected = {
        "sigmoid": log2,
        "hinge": 1.0,
        "ipo": 1 / (2 * b) ** 2,  # 4
        "exo_pair": 0.5 * (-log2 - math.log1p(-eps)) + 0.5 * (-log2 - math.log(eps)),
        "nca_pair": 2 * log2,
        "robust": log2,  # (−(1−ε) + ε)·log ½ / (1 − 2ε)
        "bco_pair": 2 * log2,
        "sppo_hard": 2 / (2 * b) ** 2,  # 8
        "aot": (1 - eps) * log2 + eps * log2,
        "aot_unpaired": log2,
        "discopop": 0.5 * log2 + 0.5,
        "apo_zero": 1.0,
        "apo_down": 1.0,
        "sigmoid_norm": log2,
    }
    for name, value in expected.items():
        torch.testing.assert_close(run(name, x, p).losses, torch.full((4,), value, dtype=torch.float64), msg=name)


def test_sigmoid_ignores_label_smoothing_as_trl_1_16():
    x = logps()
    a = run("sigmoid", x, PreferenceParams(beta=0.3, label_smoothing=0.0)).losses
    b = run("sigmoid", x, PreferenceParams(beta=0.3, label_smoothing=0.3)).losses
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("eps", [0.0, -0.1, 1.0])
def test_exo_pair_needs_label_smoothing_in_open_unit_interval(eps: float):
    with pytest.raises(ValueError, match="1e-3"):
        run("exo_pair", p=PreferenceParams(label_smoothing=eps))


@pytest.mark.parametrize("eps", [0.5, 0.7, -0.1])
def test_robust_rejects_label_smoothing_outside_zero_half(eps: float):
    with pytest.raises(ValueError, match=r"0 <= label_smoothing < 0.5"):
        run("robust", p=PreferenceParams(label_smoothing=eps))


def test_robust_at_zero_smoothing_is_dpo():
    p = PreferenceParams(beta=0.3, label_smoothing=0.0)
    torch.testing.assert_close(run("robust", p=p).losses, run("sigmoid", p=p).losses)


def test_aot_with_one_pair_is_dpo():
    x = logps([-5.0], [-6.5], [-5.5], [-6.0], [4], [5])
    p = PreferenceParams(beta=0.3)
    for name in ("aot", "aot_unpaired"):
        torch.testing.assert_close(run(name, x, p).losses, run("sigmoid", x, p).losses)


def test_alphapo_at_alpha_zero_is_simpo_and_continuous():
    b, g = 2.5, 0.1
    x = logps(ref_chosen=None, ref_rejected=None)  # reference-free
    out = run("alphapo", x, PreferenceParams(beta=b, simpo_gamma=g, alpha=0.0))
    simpo = [-ls(b * (c / lc - r / lr) - g) for c, r, lc, lr in zip(CHOSEN, REJECTED, LEN_C, LEN_R)]
    torch.testing.assert_close(out.losses, torch.tensor(simpo, dtype=torch.float64))
    torch.testing.assert_close(out.chosen_rewards, torch.tensor([b * c / n for c, n in zip(CHOSEN, LEN_C)]).double())
    near = run("alphapo", x, PreferenceParams(beta=b, simpo_gamma=g, alpha=1e-7))
    torch.testing.assert_close(near.losses, out.losses, rtol=1e-5, atol=1e-6)


def _grads(name: str, x: PreferenceLogps, p: PreferenceParams) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = x.chosen.clone().requires_grad_(True)
    rejected = x.rejected.clone().requires_grad_(True)
    y = PreferenceLogps(chosen, rejected, x.ref_chosen, x.ref_rejected, x.chosen_lengths, x.rejected_lengths)
    out = PREFERENCE_LOSSES.get(name).fn(y, p)
    assert not out.chosen_rewards.requires_grad and not out.rejected_rewards.requires_grad
    out.losses.sum().backward()
    return chosen.grad, rejected.grad


def test_sppo_hard_minimum():
    b = 0.3
    h = 1 / (2 * b)
    x = logps([-5.0 + h, -2.0 + h], [-6.0 - h, -9.0 - h], [-5.0, -2.0], [-6.0, -9.0], [3, 4], [5, 6])
    p = PreferenceParams(beta=b)
    torch.testing.assert_close(run("sppo_hard", x, p).losses, torch.zeros(2, dtype=torch.float64))
    gc, gr = _grads("sppo_hard", x, p)
    torch.testing.assert_close(gc, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(gr, torch.zeros(2, dtype=torch.float64))
    assert (run("sppo_hard", logps(), p).losses > 0).all()


def test_ipo_minimum_at_normalised_margin():
    b = 0.3
    target = 1 / (2 * b)  # ρ_c/|y_c| − ρ_r/|y_r| = 1/(2β); with ρ_r = 0: ρ_c = |y_c|/(2β)
    x = logps([-5.0 + 4 * target, -2.0 + 2 * target], [-6.0, -9.0], [-5.0, -2.0], [-6.0, -9.0], [4, 2], [5, 6])
    p = PreferenceParams(beta=b)
    torch.testing.assert_close(run("ipo", x, p).losses, torch.zeros(2, dtype=torch.float64))
    gc, gr = _grads("ipo", x, p)
    torch.testing.assert_close(gc, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(gr, torch.zeros(2, dtype=torch.float64))


def test_hinge_is_exactly_zero_with_zero_gradient_past_the_margin():
    b = 0.5  # βΔ = 1 exactly on the first pair, 2 on the second, 0.5 on the third
    x = logps([-3.0, -1.0, -4.0], [-5.0, -5.0, -5.0], [-4.0, -4.0, -4.0], [-4.0, -4.0, -4.0], [1, 1, 1], [1, 1, 1])
    out = run("hinge", x, PreferenceParams(beta=b))
    assert out.losses.tolist() == [0.0, 0.0, 0.5]
    gc, gr = _grads("hinge", x, PreferenceParams(beta=b))
    assert gc.tolist() == [0.0, 0.0, -b] and gr.tolist() == [0.0, 0.0, b]


def test_apo_zero_raises_chosen_and_lowers_rejected():
    gc, gr = _grads("apo_zero", logps(), PARAMS)
    assert (gc < 0).all() and (gr > 0).all()  # a descent step raises log π(y_c), lowers log π(y_r)


def test_apo_down_pushes_both_down():
    gc, gr = _grads("apo_down", logps(), PARAMS)
    assert (gr > 0).all()  # always: y_r goes down
    # y_c goes down where |ρ_c| < |Δ| (pairs 1–4 here: ρ_c = [0.5, −1, 0.5, 4], Δ = [1, −1.5, 2, 5])
    assert (gc > 0).all()
    # ... and is left alone at π_θ = π_ref, where σ'(βρ_c) = σ'(βΔ)
    gc0, gr0 = _grads("apo_down", logps(ref_chosen=CHOSEN, ref_rejected=REJECTED), PARAMS)
    torch.testing.assert_close(gc0, torch.zeros(4, dtype=torch.float64))
    assert (gr0 > 0).all()


def test_dpo_gradient_signs():
    # (not nca_pair: its −½logσ(−βρ_c) pushes y_c down once βρ_c is large, e.g. pair 4 here; not discopop: it is
    # non-monotone near Δ = 0)
    for name in ("sigmoid", "robust", "exo_pair", "bco_pair", "sigmoid_norm", "alphapo"):
        gc, gr = _grads(name, logps(), PARAMS)
        assert (gc < 0).all() and (gr > 0).all(), name


def test_discopop_is_finite_for_very_negative_margins():
    # z = βΔ = −120 in float32: TRL's σ(z/τ)·e^{−z} is 0·inf = nan; ours is e^{logσ(z/τ) − z} = 0
    x = logps([-401.0], [-1.0], [-1.0], [-1.0], [1], [1])
    p = PreferenceParams(beta=0.3, discopop_tau=0.05)
    out = run("discopop", PreferenceLogps(*(t.float() for t in vars(x).values())), p).losses
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), torch.tensor([120.0], dtype=torch.float64), rtol=1e-6, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# Parity with TRL 1.16
# ----------------------------------------------------------------------------------------------------------------

needs_trl = pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="TRL parity needs the test extra")

PB = 6  # pairs in the parity batch
BETA = 0.3
TOL = {"rtol": 1e-5, "atol": 1e-6}
PARITY_CASES = [
    ("sigmoid", 0.0),
    ("sigmoid", 0.2),  # TRL 1.16 ignores ε for sigmoid
    ("hinge", 0.0),
    ("ipo", 0.0),
    ("exo_pair", 1e-3),
    ("nca_pair", 0.0),
    ("robust", 0.1),
    ("bco_pair", 0.0),
    ("sppo_hard", 0.0),
    ("aot", 0.0),
    ("aot", 0.1),
    ("aot_unpaired", 0.0),
    ("aot_unpaired", 0.1),
    ("discopop", 0.0),
    ("apo_zero", 0.0),
    ("apo_down", 0.0),
    ("sigmoid_norm", 0.0),
]


def make_dpo_trainer(model_dir: str, output_dir: str, loss_type: str, label_smoothing: float) -> Any:
    import trl
    from datasets import Dataset

    config = trl.DPOConfig(
        output_dir=output_dir,
        bf16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        report_to="none",
        logging_steps=1000,
        save_strategy="no",
        per_device_train_batch_size=2,
        loss_type=loss_type,
        beta=BETA,
        label_smoothing=label_smoothing,
        discopop_tau=0.05,
    )
    trainer = trl.DPOTrainer(
        model=model_dir,
        args=config,
        train_dataset=Dataset.from_list([{"prompt": "1+2=", "chosen": "3", "rejected": "4"}] * 2),
    )
    trainer.precompute_ref_logps = True  # read ref_chosen_logps / ref_rejected_logps from the batch (§6)
    trainer.model.train()  # mode is read from model.training
    return trainer


@pytest.fixture(scope="module")
def dpo_trainer_for(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    cache: dict[tuple[str, float], Any] = {}

    def get(loss_type: str, label_smoothing: float) -> Any:
        key = (loss_type, label_smoothing)
        if key not in cache:
            out = str(tmp_path_factory.mktemp("dpo"))
            cache[key] = make_dpo_trainer(tiny_model_dir, out, loss_type, label_smoothing)
        return cache[key]

    yield get
    cache.clear()


def parity_batch(seed: int = 0) -> PreferenceLogps:
    g = torch.Generator().manual_seed(seed)
    chosen = -(2 + 18 * torch.rand(PB, generator=g))  # [B]
    rejected = -(2 + 18 * torch.rand(PB, generator=g))
    ref_chosen = chosen + 4.0 * torch.randn(PB, generator=g)  # [B]
    ref_rejected = rejected + 4.0 * torch.randn(PB, generator=g)
    ref_chosen[3] -= 4.0  # βΔ past hinge's margin 1 on one pair (seed 0)
    len_c = torch.randint(1, 8, (PB,), generator=g)
    len_r = torch.randint(1, 8, (PB,), generator=g)
    return PreferenceLogps(chosen, rejected, ref_chosen, ref_rejected, len_c, len_r)


def trl_dpo(trainer: Any, x: PreferenceLogps) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
    """TRL's loss, ∂loss/∂logπ (chosen, rejected) and metrics on given summed log-probs: a fake model returns
    per-token log-probs whose first position holds the sum (the rest 0), with completion masks of the given lengths."""
    from trl.trainer.utils import FusedCausalLMOutput

    lengths = torch.cat([x.chosen_lengths, x.rejected_lengths])  # [2B]
    seq = 1 + int(lengths.max())  # one prompt token, then the completion
    completion_mask = torch.zeros(2 * PB, seq, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        completion_mask[i, 1 : 1 + n] = 1
    logp = torch.cat([x.chosen, x.rejected]).clone().requires_grad_(True)  # [2B]
    zeros = torch.zeros(2 * PB, seq - 1)

    def fake_model(**_: Any) -> Any:
        return FusedCausalLMOutput(
            log_probs=torch.cat([logp[:, None], zeros[:, 1:]], dim=1),  # [2B, L−1]
            entropy=zeros,
            mean_logits=zeros,
            is_top1=torch.zeros(2 * PB, seq - 1, dtype=torch.bool),
            label_mask=completion_mask[:, 1:].bool(),
        )

    inputs = {
        "input_ids": torch.zeros(2 * PB, seq, dtype=torch.long),
        "attention_mask": torch.ones(2 * PB, seq, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": x.ref_chosen,
        "ref_rejected_logps": x.ref_rejected,
    }
    trainer._metrics["train"].clear()
    loss = trainer._compute_loss(fake_model, inputs, False)
    loss.backward()
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    grad_c, grad_r = logp.grad.chunk(2)
    return loss.detach(), grad_c, grad_r, metrics


@needs_trl
@pytest.mark.parametrize(("name", "eps"), PARITY_CASES)
def test_dpo_parity_with_trl(dpo_trainer_for: Callable[..., Any], name: str, eps: float):
    x = parity_batch()
    trl_loss, trl_gc, trl_gr, metrics = trl_dpo(dpo_trainer_for(name, eps), x)

    chosen = x.chosen.clone().requires_grad_(True)
    rejected = x.rejected.clone().requires_grad_(True)
    y = PreferenceLogps(chosen, rejected, x.ref_chosen, x.ref_rejected, x.chosen_lengths, x.rejected_lengths)
    out = PREFERENCE_LOSSES.get(name).fn(y, PreferenceParams(beta=BETA, label_smoothing=eps, discopop_tau=0.05))
    loss = out.losses.mean()
    loss.backward()

    torch.testing.assert_close(loss.detach(), trl_loss, **TOL)
    torch.testing.assert_close(chosen.grad, trl_gc, **TOL)
    torch.testing.assert_close(rejected.grad, trl_gr, **TOL)
    c, r = out.chosen_rewards, out.rejected_rewards
    ours = {
        "rewards/chosen": c.mean().item(),
        "rewards/rejected": r.mean().item(),
        "rewards/margins": (c - r).mean().item(),
        "rewards/accuracies": (c > r).float().mean().item(),
    }
    for key, value in ours.items():
        assert value == pytest.approx(metrics[key], rel=1e-5, abs=1e-6), key


def test_parity_batch_exercises_hinge_margin_and_accuracy():
    """The parity batch has pairs on both sides of hinge's margin and both reward orders."""
    x = parity_batch()
    z = BETA * ((x.chosen - x.ref_chosen) - (x.rejected - x.ref_rejected))
    assert (z > 1).any() and (z < 1).any() and (z < 0).any()


@needs_trl
def test_trl_rejects_old_aot_pair_name_that_we_alias(dpo_trainer_for: Callable[..., Any]):
    with pytest.raises(ValueError, match="Unknown loss type: aot_pair"):
        trl_dpo(dpo_trainer_for("aot_pair", 0.0), parity_batch())


@needs_trl
def test_trl_requires_label_smoothing_for_exo_pair(tiny_model_dir: str, tmp_path):
    with pytest.raises(ValueError, match="1e-3"):
        make_dpo_trainer(tiny_model_dir, str(tmp_path), "exo_pair", 0.0)


@needs_trl
@pytest.mark.parametrize(
    ("alpha", "eps", "beta", "gamma"), [(0.0, 0.0, 2.5, 0.1), (0.25, 0.0, 2.5, 0.1), (0.25, 0.1, 0.1, 0.5)]
)
def test_alphapo_parity_with_trl_cpo_loss(alpha: float, eps: float, beta: float, gamma: float):
    from trl.experimental.cpo import CPOTrainer

    fake_self = SimpleNamespace(
        alpha=alpha,
        beta=beta,
        loss_type="simpo",  # CPOConfig rewrites loss_type="alphapo" to "simpo" with cpo_alpha = 0 (§3.2)
        simpo_gamma=gamma,
        label_smoothing=eps,
        accelerator=SimpleNamespace(device="cpu"),
    )
    x = parity_batch(seed=1)
    trl_c = x.chosen.clone().requires_grad_(True)
    trl_r = x.rejected.clone().requires_grad_(True)
    # TRL's CPO takes length-averaged log-probs
    trl_losses, trl_rc, trl_rr = CPOTrainer.cpo_loss(
        fake_self, trl_c / x.chosen_lengths.float(), trl_r / x.rejected_lengths.float()
    )
    trl_losses.mean().backward()

    chosen = x.chosen.clone().requires_grad_(True)
    rejected = x.rejected.clone().requires_grad_(True)
    y = PreferenceLogps(chosen, rejected, None, None, x.chosen_lengths, x.rejected_lengths)
    out = PREFERENCE_LOSSES.get("alphapo").fn(
        y, PreferenceParams(beta=beta, label_smoothing=eps, alpha=alpha, simpo_gamma=gamma)
    )
    out.losses.mean().backward()

    torch.testing.assert_close(out.losses.detach(), trl_losses.detach(), **TOL)
    torch.testing.assert_close(out.chosen_rewards, trl_rc, **TOL)
    torch.testing.assert_close(out.rejected_rewards, trl_rr, **TOL)
    torch.testing.assert_close(chosen.grad, trl_c.grad, **TOL)
    torch.testing.assert_close(rejected.grad, trl_r.grad, **TOL)


# ----------------------------------------------------------------------------------------------------------------
# Unpaired BCO
# ----------------------------------------------------------------------------------------------------------------


def test_running_moments_initial_state():
    rm = RunningMoments()
    assert (rm.mean, rm.var, rm.std, rm.count) == (0.0, 1.0, 1.0, 1e-24)


def test_running_moments_two_updates_equal_moments_of_the_concatenation():
    a = [0.3, -1.2, 2.5]
    b = [0.7, 0.1, -0.4, 1.9, 3.3]
    rm = RunningMoments()
    rm.update(torch.tensor(a, dtype=torch.float64))
    ret = rm.update(torch.tensor(b, dtype=torch.float64))
    allv = np.array(a + b)
    # the prior's weight 1e-24 is absorbed in float64 (3 + 1e-24 == 3): plain moments of all 8 values
    assert rm.count == 8.0
    assert rm.mean == pytest.approx(allv.mean(), rel=1e-13)
    assert rm.var == pytest.approx(allv.var(), rel=1e-13)  # population variance
    assert rm.std == pytest.approx(allv.std(ddof=1), rel=1e-13)  # Bessel-corrected, as TRL
    assert ret == (rm.mean, rm.std)


def test_running_moments_single_value_keeps_a_trace_of_the_prior():
    rm = RunningMoments()
    mean, std = rm.update(torch.tensor([2.0]))
    assert mean == 2.0 and rm.count == 1.0
    assert rm.var == pytest.approx(1e-24 * (1 + 2.0**2), rel=1e-9)  # prior var·1e-24 + δ²·1e-24, not 0
    assert std == math.inf  # N/(N−1) with N = 1: TRL's tensor division gives inf too
    with pytest.raises(ValueError, match="at least one value"):
        rm.update(torch.tensor([]))


def test_bco_unpaired_loss_by_hand():
    beta = 0.5
    lp = [-4.0, -7.0, -2.5, -9.0, -5.0]
    ref = [-5.0, -6.0, -3.5, -8.0, -5.5]
    labels = [True, False, True, False, False]
    logps_t = torch.tensor(lp, dtype=torch.float64, requires_grad=True)
    ref_t = torch.tensor(ref, dtype=torch.float64)
    labels_t = torch.tensor(labels)
    rm = RunningMoments()
    rm.update(beta * (logps_t - ref_t).detach())  # before use, as TRL's bco_loss
    losses, rewards = bco_unpaired_loss(logps_t, ref_t, labels_t, beta, rm.mean)

    r = [beta * (a - b) for a, b in zip(lp, ref)]  # [0.5, −0.5, 0.5, −0.5, 0.25]
    delta = sum(r) / len(r)  # first update: the running mean is the batch mean
    assert rm.mean == pytest.approx(delta, rel=1e-14)
    expected = [-ls(ri - delta) if y else -ls(-(ri - delta)) for ri, y in zip(r, labels)]
    torch.testing.assert_close(losses, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(rewards, torch.tensor(r, dtype=torch.float64))
    assert not rewards.requires_grad
    losses.sum().backward()
    grad = logps_t.grad
    assert (grad[labels_t] < 0).all() and (grad[~labels_t] > 0).all()  # raise desirable, lower undesirable
