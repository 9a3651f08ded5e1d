"""PAPO (arXiv 2507.06448): image masking, the perception KL and its clip, the double entropy terms, the composed
loss and its gradient by hand; the tiny vision-language model, the visual task, and the loop (GRPO unchanged)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from repro.config import load_paper_config
from repro.data.synthetic import held_out, make_train
from repro.data.visual import BACKGROUND, CELL, COLOURS, IMAGE_TOKEN, Image, count_colour, draw_scene
from repro.losses.aggregation import AggregationContext
from repro.losses.perception import (
    AUXILIARY_TERMS,
    IMAGE_MASKS,
    PerceptionInputs,
    PerceptionSpec,
    papo_loss,
    perception_kl,
)
from repro.models.loading import load_policy
from repro.models.tiny_vl import save_tiny_vl
from repro.models.vision import black_level, encode_images, load_processor
from repro.rollout.base import RolloutBatch, SamplingParams, concat_batches
from repro.rollout.hf import HFRollout
from repro.schema import ConfigError
from repro.trainers.logprobs import completion_logprobs
from repro.trainers.online_rl import OnlineRLTrainer

PAPO = Path(__file__).resolve().parents[1] / "papers" / "papo"
CTX = AggregationContext(grad_accum_steps=1, steps_per_generation=1, num_items_in_batch=2.0, max_completion_length=2)
LN2, LN4 = math.log(2), math.log(4)


# --- masking -------------------------------------------------------------------------------------


def test_random_patch_mask_blackens_whole_patches_with_the_fill_value() -> None:
    pixels = torch.arange(2 * 3 * 28 * 28, dtype=torch.float32).reshape(2, 3, 28, 28)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    masked, hidden = IMAGE_MASKS.get("random")(pixels, 0.6, 7, fill, torch.Generator().manual_seed(0))
    assert hidden.shape == (2, 4, 4)
    for b in range(2):
        for r in range(4):
            for c in range(4):
                block = masked[b, :, r * 7 : (r + 1) * 7, c * 7 : (c + 1) * 7]
                if hidden[b, r, c]:
                    assert torch.equal(block, fill.view(3, 1, 1).expand(3, 7, 7))
                else:
                    assert torch.equal(block, pixels[b, :, r * 7 : (r + 1) * 7, c * 7 : (c + 1) * 7])


def test_mask_ratio_and_determinism() -> None:
    pixels, fill = torch.zeros(500, 3, 28, 28), torch.ones(3)
    mask = IMAGE_MASKS.get("random")
    a, hidden = mask(pixels, 0.6, 7, fill, torch.Generator().manual_seed(3))
    b, _ = mask(pixels, 0.6, 7, fill, torch.Generator().manual_seed(3))
    c, _ = mask(pixels, 0.6, 7, fill, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(hidden.float().mean().item() - 0.6) < 0.01  # 8,000 Bernoulli(0.6) patches: sd 0.0055
    assert abs((a[:, 0] == 1).float().mean().item() - 0.6) < 0.01  # the same share of pixels
    none, _ = mask(pixels, 0.0, 7, fill, torch.Generator().manual_seed(0))
    every, _ = mask(pixels, 1.0, 7, fill, torch.Generator().manual_seed(0))
    assert torch.equal(none, pixels) and torch.equal(every, torch.ones_like(pixels))


def test_patches_at_the_edge_are_cut_and_the_pixel_mask_ignores_patches() -> None:
    pixels, fill = torch.zeros(1, 1, 10, 10), torch.ones(1)
    masked, hidden = IMAGE_MASKS.get("random")(pixels, 1.0, 4, fill, torch.Generator().manual_seed(0))
    assert hidden.shape == (1, 3, 3) and masked.sum() == 100
    masked, hidden = IMAGE_MASKS.get("pixel")(torch.zeros(200, 3, 8, 8), 0.6, 4, torch.ones(3), torch.Generator())
    assert hidden.shape == (200, 8, 8) and abs(masked.mean().item() - 0.6) < 0.02


# --- the loss terms by hand ------------------------------------------------------------------------


def test_perception_kl_is_k3_and_estimates_kl_of_original_from_masked() -> None:
    # d = log(.25/.5) = −ln 2: e^d − d − 1 = 0.5 + ln 2 − 1
    kl = perception_kl(torch.tensor([[math.log(0.5), math.log(0.3)]]), torch.tensor([[math.log(0.25), math.log(0.3)]]))
    assert kl[0].tolist() == pytest.approx([0.5 + LN2 - 1, 0.0], abs=1e-7)
    # Direction: under p (original image) the k3 estimate averages to KL(p ‖ q), q the masked-image policy.
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    per_token = perception_kl(p.log().view(1, 2), q.log().view(1, 2))  # one row per possible token
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.14384
    assert (p * per_token[0]).sum().item() == pytest.approx(expected, abs=1e-6)
    assert perception_kl(torch.zeros(1, 1), torch.full((1, 1), -100.0)).item() == pytest.approx(math.exp(-20) + 19)


def test_the_clip_bounds_the_maximised_kl_and_stops_its_gradient() -> None:
    logp = torch.tensor([[math.log(0.5), math.log(0.5)]], requires_grad=True)
    logp_mask = torch.tensor([[math.log(0.25), math.log(0.45)]])
    kl = perception_kl(logp, logp_mask).detach()  # [0.1931, 0.0054]
    term = AUXILIARY_TERMS.get("implicit_perception")(PerceptionInputs(logp, logp_mask, kl_clip=0.1))
    assert term[0].tolist() == pytest.approx([-0.1, -kl[0, 1].item()], abs=1e-6)
    term.sum().backward()
    assert logp.grad[0, 0] == 0.0 and logp.grad[0, 1] != 0.0  # clipped token: no push


def test_double_entropy_terms_are_negative_log_probs() -> None:
    x = PerceptionInputs(torch.tensor([[-0.1, -2.0]]), torch.tensor([[-1.5, -0.3]]), 10.0)
    assert AUXILIARY_TERMS.get("entropy")(x)[0].tolist() == pytest.approx([0.1, 2.0])
    assert AUXILIARY_TERMS.get("masked_entropy")(x)[0].tolist() == pytest.approx([1.5, 0.3])


def test_composed_loss_by_hand_and_its_metrics() -> None:
    logp = torch.tensor([[-LN2, -LN4]])
    logp_mask = torch.tensor([[-LN4, -LN4]])
    spec = PerceptionSpec(perception_loss_weight=0.1, der_loss_weight1=0.2, der_loss_weight2=0.3, kl_clip=10.0)
    loss, metrics = papo_loss(spec, logp, logp_mask, torch.ones(1, 2), CTX, "batch_token_mean")
    kl = (0.5 + LN2 - 1 + 0.0) / 2
    h, h_mask = (LN2 + LN4) / 2, LN4
    assert loss.item() == pytest.approx(-0.1 * kl + 0.2 * h + 0.3 * h_mask, abs=1e-6)
    assert metrics["perception_kl"] == pytest.approx(kl, abs=1e-6)
    assert (metrics["entropy_loss"], metrics["entropy_loss_masked"]) == pytest.approx((h, h_mask), abs=1e-6)
    # the run's own aggregator: GRPO's sequence mean with GA = 2 halves every term
    half, _ = papo_loss(spec, logp, logp_mask, torch.ones(1, 2), dataclasses.replace(CTX, grad_accum_steps=2),
                        "sequence_mean")  # fmt: skip
    assert half.item() == pytest.approx(loss.item() / 2, abs=1e-6)


def test_gradient_signs_raise_the_perception_kl_and_lower_both_entropies() -> None:
    ctx, mask = CTX, torch.ones(1, 2)
    logp = torch.tensor([[-LN2, -1.0]], requires_grad=True)
    logp_mask = torch.tensor([[-LN4, -1.5]], requires_grad=True)
    gamma_only = PerceptionSpec(0.1, 0.0, 0.0)
    loss, _ = papo_loss(gamma_only, logp, logp_mask, mask, ctx, "batch_token_mean")
    loss.backward()
    # ∂/∂ℓ of −γ·mean(e^d − d − 1), d = ℓ^mask − ℓ: γ(e^d − 1)/2 < 0 when the masked log-prob is lower
    d = torch.tensor([-LN2, -0.5])
    assert logp.grad[0].tolist() == pytest.approx((0.1 * (d.exp() - 1) / 2).tolist(), abs=1e-6)
    with torch.no_grad():  # one descent step widens the gap between the two policies
        before = perception_kl(logp, logp_mask).sum()
        after = perception_kl(logp - 1.0 * logp.grad, logp_mask - 1.0 * logp_mask.grad).sum()
    assert after > before
    logp.grad = logp_mask.grad = None
    entropy_only = PerceptionSpec(0.0, 0.2, 0.3)
    loss, _ = papo_loss(entropy_only, logp, logp_mask, mask, ctx, "batch_token_mean")
    loss.backward()  # descent raises the sampled tokens' log-probs on both images: lower entropy estimates
    assert logp.grad[0].tolist() == pytest.approx([-0.1, -0.1]) and logp_mask.grad[0].tolist() == pytest.approx(
        [-0.15, -0.15]
    )


def test_zero_weights_are_grpo() -> None:
    spec = PerceptionSpec(0.0, 0.0, 0.0)
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, metrics = papo_loss(spec, logp, torch.tensor([[-1.5, -2.0]]), torch.ones(1, 2), CTX, "sequence_mean")
    assert not spec.active and loss.item() == 0.0 and not loss.requires_grad
    assert metrics["perception_kl"] > 0  # measured all the same


# --- the visual task ---------------------------------------------------------------------------------


def test_count_colour_answers_by_hand_and_draws_its_squares() -> None:
    image = draw_scene([(0, "red", 3, 0, 0), (5, "blue", 4, 2, 1)], noise_seed=0)
    pixels = image.to_array()
    assert pixels.shape == (28, 28, 3) and Image.from_array(pixels) == image
    assert abs(int(pixels[1, 1, 0]) - COLOURS["red"][0]) <= 25  # cell 0, inside the red square
    assert abs(int(pixels[CELL + 3, CELL + 2, 2]) - COLOURS["blue"][2]) <= 25  # cell 5 = row 1, col 1
    assert pixels[20, 20].max() < BACKGROUND + 20  # empty cell: background
    import random

    prompt, answer, target, image = count_colour(random.Random(0))
    assert prompt.startswith(IMAGE_TOKEN + "how many ") and answer == target and 0 <= int(answer) <= 8


def test_visual_held_out_is_fixed_and_disjoint_from_training_by_prompt_and_image() -> None:
    held = held_out("count_colour")
    assert held == held_out("count_colour") and len({p.key for p in held}) == len(held) == 200
    assert len({p.prompt for p in held}) == 3  # the text alone does not identify a problem
    train = make_train("count_colour", 2000, seed=0)
    assert not {p.key for p in held} & {p.key for p in train}
    assert all(isinstance(p.image, Image) for p in train[:5])


# --- the tiny vision-language model in the loop -------------------------------------------------------

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_vl(tmp_path_factory.mktemp("tiny_vl"), vision_hidden_size=16, vision_intermediate_size=32,
                        vision_layers=1, vision_heads=2, **SMALL)  # fmt: skip


def test_tiny_vl_round_trips_and_its_processor_expands_the_image(vl_dir: Path) -> None:
    model, tok = load_policy(str(vl_dir))
    processor = load_processor(str(vl_dir))
    assert type(model).__name__ == "LlavaForConditionalGeneration" and processor is not None
    problems = held_out("count_colour", n=2)
    texts, extra = encode_images(processor, [p.prompt for p in problems], [p.image for p in problems])
    assert texts[0] == IMAGE_TOKEN * 16 + problems[0].prompt[len(IMAGE_TOKEN) :]  # (28 / 7)² patches
    assert extra["pixel_values"].shape == (2, 3, 28, 28)
    black = torch.full((1, 28, 28, 3), 0, dtype=torch.uint8).numpy()
    pv = processor.image_processor(list(black), return_tensors="pt")["pixel_values"]
    assert torch.allclose(pv[0, :, 0, 0], black_level(processor), atol=1e-6)  # masking writes true black
    assert load_processor(str(vl_dir.parent)) is None  # no processor: a text model


def test_vl_sampler_and_trainer_log_probs_agree(vl_dir: Path) -> None:
    model, tok = load_policy(str(vl_dir))
    processor = load_processor(str(vl_dir))
    problems = held_out("count_colour", n=2)
    texts, extra = encode_images(processor, [p.prompt for p in problems], [p.image for p in problems])
    torch.manual_seed(0)
    batch = HFRollout(model, tok).generate(texts, SamplingParams(num_generations=3, max_new_tokens=5), extra)
    assert batch.extra_inputs["pixel_values"].shape == (6, 3, 28, 28)
    assert not (batch.completion_ids == processor.image_token_id).any()  # <image> is never sampled
    with torch.no_grad():
        logp, _ = completion_logprobs(model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids,
                                      batch.completion_mask, extra_inputs=batch.extra_inputs)  # fmt: skip
    assert ((logp - batch.sampler_logprobs).abs() * batch.completion_mask).max() < 1e-4
    both = concat_batches([batch.select(torch.tensor([0, 5])), batch.select(torch.tensor([3]))], tok.pad_token_id)
    assert torch.equal(both.extra_inputs["pixel_values"], batch.extra_inputs["pixel_values"][[0, 5, 3]])


def test_vl_shared_prompt_forward_is_the_same_function(vl_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows sharing a prompt *and* its image run the prompt (image included) once; rows with the same text but
    another image (PAPO's masked copies) are distinct prompts. Log-probs and gradients as the one-call forward."""
    from repro.trainers import logprobs

    model, tok = load_policy(str(vl_dir))
    processor = load_processor(str(vl_dir))
    model.train()
    assert logprobs.can_share_prompts(model)
    problems = held_out("count_colour", n=2)
    texts, extra = encode_images(processor, [p.prompt for p in problems], [p.image for p in problems])
    tok.padding_side = "left"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    rows = torch.tensor([0, 0, 0, 1, 1, 1])
    pixels = extra["pixel_values"][rows]  # [6, C, H, W]
    pixels[2] = 0.0  # row 2: problem 0's text with another image
    torch.manual_seed(0)
    completion_ids = torch.randint(4, 30, (6, 4))
    completion_mask = torch.ones(6, 4)
    completion_mask[4, 2:] = 0
    first, prompt_of = logprobs.distinct_prompts(
        enc["input_ids"][rows], enc["attention_mask"][rows], {"pixel_values": pixels}
    )
    assert len(first) == 3 and prompt_of[0] == prompt_of[1] != prompt_of[2] and prompt_of[3] == prompt_of[5]
    assert torch.equal(prompt_of[first], torch.arange(3))  # each distinct prompt's first row is one of its rows

    def run(share: bool) -> tuple[torch.Tensor, torch.Tensor]:
        monkeypatch.setattr(logprobs, "SHARED_PROMPT_MIN_SAVING", 1 if share else 10**9)
        calls = []
        hook = model.register_forward_pre_hook(lambda module, args: calls.append(1))
        model.zero_grad()
        logp, _ = completion_logprobs(model, enc["input_ids"][rows], enc["attention_mask"][rows], completion_ids,
                                      completion_mask, extra_inputs={"pixel_values": pixels})  # fmt: skip
        hook.remove()
        assert len(calls) == (2 if share else 1)
        (logp * completion_mask).sum().backward()
        return logp.detach() * completion_mask, torch.cat(
            [q.grad.reshape(-1) for q in model.parameters() if q.grad is not None]
        )

    shared, full = run(True), run(False)
    assert float((shared[0] - full[0]).abs().max()) < 1e-5
    assert float((shared[1] - full[1]).norm() / full[1].norm()) < 1e-5


def papo_cfg(variant: str, **train):
    cfg = load_paper_config(PAPO, "smoke", variant)
    train = {"per_device_train_batch_size": 8, "steps_per_generation": 2, "num_generations": 4, "beta": 0.0, **train}
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def run_vl(vl_dir: Path, out: Path, variant: str, measure: bool = True) -> tuple[list[dict], list[torch.Tensor]]:
    model, tok = load_policy(str(vl_dir))
    processor = load_processor(str(vl_dir))
    torch.manual_seed(0)
    cfg = papo_cfg(variant, max_steps=2, save_steps=0)
    problems = make_train("count_colour", 50, seed=0)
    trainer = OnlineRLTrainer(cfg, model, tok, problems, HFRollout(model, tok), out, seed=0, processor=processor)
    if not measure:
        trainer.perception = None
    rows = trainer.train(progress=False)
    return rows, [p.detach().clone() for p in model.parameters()]


def test_grpo_is_unchanged_by_measuring_the_perception_kl_and_papo_changes_the_update(
    vl_dir: Path, tmp_path: Path
) -> None:
    grpo_rows, grpo = run_vl(vl_dir, tmp_path / "grpo", "grpo")
    _, plain = run_vl(vl_dir, tmp_path / "plain", "grpo", measure=False)
    assert all(torch.equal(a, b) for a, b in zip(grpo, plain))
    assert grpo_rows[-1]["perception_kl"] > 0 and "entropy_loss_masked" in grpo_rows[-1]
    papo_rows, papo = run_vl(vl_dir, tmp_path / "papo", "papo")
    assert papo_rows[0]["perception_kl"] == pytest.approx(grpo_rows[0]["perception_kl"])  # same masks, same weights
    assert not all(torch.equal(a, b) for a, b in zip(grpo, papo))


def test_trl_papo_settings_are_accepted_and_checked() -> None:
    t = load_paper_config(PAPO, "smoke", "papo").train
    assert (t.perception_loss_weight, t.mask_ratio, t.mask_type, t.der_loss_weight1, t.der_loss_weight2) == (
        0.01, 0.6, "random", 0.02, 0.02,
    )  # fmt: skip
    from repro.config import resolve

    raw = {
        "model": {"name_or_path": "x"},
        "data": {"prompts": "synthetic:count_colour"},
        "rewards": {"correctness": {}},
    }
    with pytest.raises(ConfigError, match="Did you mean 'random'"):
        resolve({**raw, "train": {"max_steps": 1, "learning_rate": 1e-5, "mask_type": "randm"}}, "t")
    with pytest.raises(ConfigError, match="mask_ratio"):
        resolve({**raw, "train": {"max_steps": 1, "learning_rate": 1e-5, "mask_ratio": 1.5}}, "t")
    with pytest.raises(ConfigError, match="der_loss_weight2"):
        resolve({**raw, "train": {"max_steps": 1, "learning_rate": 1e-5, "der_loss_weight2": -0.1}}, "t")


def test_papo_weights_on_a_text_policy_are_an_error(tmp_path: Path) -> None:
    from repro.trainers.perception import make_probe

    with pytest.raises(ConfigError, match="vision-language"):
        make_probe(papo_cfg("papo").train, None, torch.nn.Linear(1, 1), seed=0)
    assert make_probe(papo_cfg("grpo").train, None, torch.nn.Linear(1, 1), seed=0) is None


def test_rollout_batch_without_extra_inputs_is_unchanged() -> None:
    batch = RolloutBatch(*(torch.zeros(2, 1) for _ in range(5)), torch.zeros(2, dtype=torch.bool), ["a", "b"])
    assert batch.extra_inputs == {} and batch.select(torch.tensor([1])).extra_inputs == {}
    assert concat_batches([batch, batch], 0).extra_inputs == {}
