"""The rollout contract every backend meets (`repro/rollout/base.py`), checked on the HF backends here and on vLLM
where it is installed; and the engine-token-list assembly the vLLM backend uses, by hand."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from repro.models.loading import load_policy
from repro.rollout.base import RolloutBatch, SamplingParams
from repro.rollout.hf import make_backend
from repro.rollout.vllm import batch_from_token_lists
from repro.trainers.logprobs import completion_logprobs

PROMPTS = ["1+2=", "123+456="]
PARAMS = SamplingParams(num_generations=3, max_new_tokens=6, temperature=1.0)


def check_contract(batch: RolloutBatch, tok, params: SamplingParams) -> None:
    G, n = params.num_generations, len(PROMPTS)
    N, T = n * G, batch.completion_ids.size(1)
    assert batch.prompt_ids.shape == batch.prompt_mask.shape and batch.prompt_ids.size(0) == N
    assert batch.completion_ids.shape == batch.completion_mask.shape == batch.sampler_logprobs.shape == (N, T)
    assert T <= params.max_new_tokens and batch.truncated.shape == (N,) and len(batch.completions) == N
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    assert batch.prompt_mask.sum(1).tolist() == [length for length in lengths for _ in range(G)]  # prompt-major
    assert (batch.prompt_mask[:, -1] == 1).all()  # left padding
    for i in range(N):
        ids, mask = batch.completion_ids[i], batch.completion_mask[i].bool()
        k = int(mask.sum())
        assert mask[:k].all() and not mask[k:].any()  # a prefix
        eos_at = (ids[:k] == tok.eos_token_id).nonzero()
        assert len(eos_at) <= 1 and (len(eos_at) == 0 or int(eos_at[0]) == k - 1)  # up to and including EOS
        assert bool(batch.truncated[i]) == (len(eos_at) == 0 and k == params.max_new_tokens)
        assert (batch.sampler_logprobs[i][~mask] == 0).all() and (batch.sampler_logprobs[i][mask] <= 0).all()
        assert batch.completions[i] == tok.decode(ids[:k], skip_special_tokens=True)


@pytest.mark.parametrize("backend, gap", [("hf", 1e-4), ("hf_mismatch", None)])
def test_hf_backends_meet_the_rollout_contract(tiny_model_dir: str, backend: str, gap: float | None) -> None:
    model, tok = load_policy(tiny_model_dir)
    rollout = make_backend(backend, model, tok)
    torch.manual_seed(0)
    batch = rollout.generate(PROMPTS, PARAMS)
    check_contract(batch, tok, PARAMS)
    with torch.no_grad():
        logp, _ = completion_logprobs(
            model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask
        )
    diff = float(((logp - batch.sampler_logprobs).abs() * batch.completion_mask).max())
    if gap is not None:  # the trainer scores the sampled tokens as the sampler did
        assert diff < gap
    else:  # bf16 weights: close but not equal (what a rollout correction is for)
        assert 0 < diff < 0.5


def test_sync_weights_makes_the_sampler_follow_the_trainer(tiny_model_dir: str) -> None:
    model, tok = load_policy(tiny_model_dir)
    rollout = make_backend("hf_mismatch", model, tok, dtype="float32")  # exact copy: the sync is all that differs
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    torch.manual_seed(0)
    stale = rollout.generate(PROMPTS, PARAMS)
    rollout.sync_weights(model)
    torch.manual_seed(0)
    fresh = rollout.generate(PROMPTS, PARAMS)
    with torch.no_grad():
        logp, _ = completion_logprobs(
            model, fresh.prompt_ids, fresh.prompt_mask, fresh.completion_ids, fresh.completion_mask
        )
    assert float(((logp - fresh.sampler_logprobs).abs() * fresh.completion_mask).max()) < 1e-4
    assert not torch.equal(stale.sampler_logprobs, fresh.sampler_logprobs)


def test_engine_token_lists_become_a_contract_batch(tiny_model_dir: str) -> None:
    _, tok = load_policy(tiny_model_dir)
    eos, d = tok.eos_token_id, tok.convert_tokens_to_ids
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    completions = [
        [d("3"), eos], [d("3")], [d("1"), d("2"), d("3"), d("4"), d("5"), d("6")],  # EOS returned / not / truncated
        [d("5"), d("7"), d("9"), eos], [eos], [d("9"), eos, d("1")],  # an engine that ran past EOS
    ]  # fmt: skip
    logprobs = [[-0.5] * len(c) for c in completions]
    batch = batch_from_token_lists(prompts, completions, logprobs, 3, tok, max_new_tokens=6)
    check_contract(batch, tok, PARAMS)
    assert batch.completion_mask.sum(1).tolist() == [2, 1, 6, 4, 1, 2]
    assert batch.truncated.tolist() == [False, False, True, False, False, False]
    assert batch.completions[:2] == ["3", "3"] and batch.completions[5] == "9"
    assert batch.sampler_logprobs[5].tolist() == [-0.5, -0.5, 0, 0, 0, 0]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (CUDA machines only)")
def test_the_vllm_backend_meets_the_rollout_contract(tiny_model_dir: str) -> None:
    model, tok = load_policy(tiny_model_dir)
    batch = make_backend("vllm", model, tok).generate(PROMPTS, PARAMS)
    check_contract(batch, tok, PARAMS)


def test_per_group_seeds_make_a_groups_samples_independent_of_its_batch(tiny_model_dir: str) -> None:
    """With a seed per prompt, a group samples the same completions alone or beside others, and the global RNG is
    left as it was (the trainer's shuffles do not depend on how the rollouts were seeded)."""
    model, tok = load_policy(tiny_model_dir)
    rollout = make_backend("hf", model, tok)
    params = SamplingParams(num_generations=3, max_new_tokens=6, temperature=1.0)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    both = rollout.generate(PROMPTS, params, seeds=[11, 12])
    assert torch.equal(torch.get_rng_state(), before)
    check_contract(both, tok, params)
    second = rollout.generate(PROMPTS[1:], params, seeds=[12])
    assert both.completions[3:] == second.completions
    T = second.completion_ids.size(1)
    assert torch.equal(both.completion_ids[3:, :T], second.completion_ids)
    assert torch.allclose(both.sampler_logprobs[3:, :T], second.sampler_logprobs)
    other_seed = rollout.generate(PROMPTS[1:], params, seeds=[13])
    assert other_seed.completions != second.completions  # the seed, not the prompt alone, fixes the samples
    with pytest.raises(ValueError, match="one per prompt"):
        rollout.generate(PROMPTS, params, seeds=[1])


NO_VLLM = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")


@pytest.mark.parametrize("backend", ["hf", "hf_mismatch", pytest.param("vllm", marks=NO_VLLM)])
@pytest.mark.parametrize("mode", ["keep_end", "keep_start"])
def test_every_backend_cuts_a_long_prompt_on_the_configured_side_and_flags_it(
    tiny_model_dir: str, backend: str, mode: str
) -> None:
    model, tok = load_policy(tiny_model_dir)
    rollout = make_backend(backend, model, tok)
    params = SamplingParams(num_generations=2, max_new_tokens=4, max_prompt_length=5, truncation_mode=mode)
    short, long = (tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS)  # 4 and 8 tokens
    kept = long[-5:] if mode == "keep_end" else long[:5]
    for seeds in (None, [1, 2]):  # one batch, or one group at a time
        torch.manual_seed(0)
        batch = rollout.generate(PROMPTS, params, seeds=seeds)
        prompts = [batch.prompt_ids[i][batch.prompt_mask[i].bool()].tolist() for i in range(4)]
        assert prompts == [short, short, kept, kept]
        assert batch.prompt_ids.size(1) == 5 and batch.prompt_truncated.tolist() == [False, False, True, True]
