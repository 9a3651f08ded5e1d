"""The lean sampling loop (repro/rollout/decode.py) against HF `generate`, and the shared-prompt forward of
`completion_logits` against the one-row-per-sequence forward."""

from __future__ import annotations

import pytest
import torch

from repro.models.loading import load_policy
from repro.rollout import decode
from repro.rollout.base import SamplingParams
from repro.rollout.hf import HFRollout
from repro.trainers import logprobs

PROMPTS = ["1+2=", "123+456=", "7*8=", "99-1=", "(3+4)*5="]  # different lengths: left padding


@pytest.fixture()
def eos_prone(tiny_model_dir: str):
    """The tiny Llama (grouped-query attention, untied head) with its EOS logit scaled up, so that rows end at
    many different steps and the loop drops finished rows from its batch."""
    model, tok = load_policy(tiny_model_dir)
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id] *= 12
    return model, tok


def sample_both(model, tok, params: SamplingParams, seed: int):
    batches = []
    for mode in ("auto", "generate"):
        torch.manual_seed(seed)
        batches.append(HFRollout(model, tok, decode=mode).generate(PROMPTS, params))
    return batches


@pytest.mark.parametrize(
    "params",
    [SamplingParams(6, 16), SamplingParams(6, 16, temperature=0.7, top_k=5), SamplingParams(4, 9, temperature=0.5)],
)
def test_lean_loop_draws_the_samples_generate_draws(eos_prone, params: SamplingParams) -> None:
    model, tok = eos_prone
    lean, hf = sample_both(model, tok, params, seed=3)
    lengths = lean.completion_lengths
    assert len(set(lengths.tolist())) >= 3 and not lean.truncated.all()  # rows ended at many steps: compaction ran
    assert torch.equal(lean.completion_ids, hf.completion_ids) and torch.equal(lean.prompt_ids, hf.prompt_ids)
    assert torch.equal(lean.completion_mask, hf.completion_mask) and lean.completions == hf.completions
    assert float((lean.sampler_logprobs - hf.sampler_logprobs).abs().max()) < 1e-5


def test_lean_loop_with_top_p_matches_generate_row_for_row(eos_prone) -> None:
    """Nucleus cut-offs sit on cumulative sums, where float rounding can move one token across: nearly all rows
    agree, and the loop's own log-probs are those of the trainer's forward."""
    model, tok = eos_prone
    params = SamplingParams(8, 12, temperature=0.9, top_p=0.8)
    same = 0
    for seed in range(4):
        lean, hf = sample_both(model, tok, params, seed)
        same += int((lean.completion_ids == hf.completion_ids).all(dim=1).sum())
    assert same >= 0.95 * 4 * len(PROMPTS) * 8


def test_models_outside_the_llama_family_use_generate(tiny_model_dir: str) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=60))
    assert "gpt2" in decode.unsupported_reason(gpt2, 32)
    model, _ = load_policy(tiny_model_dir)
    assert decode.unsupported_reason(model, 32) is None
    assert "pixel_values" in decode.unsupported_reason(model, 32, {"pixel_values": torch.zeros(1, 3, 4, 4)})
    model.config.sliding_window = 16
    assert decode.unsupported_reason(model, 32) == "sliding-window attention"
    model.config.sliding_window = None
    model.generation_config.no_repeat_ngram_size = 3  # a checkpoint setting `generate` would honour
    assert "no_repeat_ngram_size" in decode.unsupported_reason(model, 32)
    with pytest.raises(ValueError, match="decode='fast'"):
        HFRollout(model, None, decode="fast")


@pytest.mark.parametrize("sample", [False, True])
def test_evaluation_decodes_what_generate_decodes(
    tiny_model_dir: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, sample: bool
) -> None:
    """Held-out evaluation (greedy, and k samples per prompt in calls of whole groups) through the lean loop gives
    `generate`'s completions and lengths, in batches smaller than the prompt list. Greedy runs on the plain tiny
    model (the EOS-prone one would end every row at once)."""
    from repro.eval.synthetic import generate_completions

    model, tok = request.getfixturevalue("eos_prone") if sample else load_policy(tiny_model_dir)
    kwargs = {"sample": sample, "temperature": 0.8, "max_new_tokens": 12, "batch_size": 6, "num_samples": 3}
    torch.manual_seed(5)
    lean = generate_completions(model, tok, PROMPTS, **kwargs)
    monkeypatch.setattr(decode, "unsupported_reason", lambda model, length, extra=None: "forced off")
    torch.manual_seed(5)
    hf = generate_completions(model, tok, PROMPTS, **kwargs)
    assert len(lean[0]) == 3 * len(PROMPTS) and len(set(lean[0])) >= 4
    assert len(set(lean[1])) >= (3 if sample else 1)  # sampled rows ended at several steps: compaction ran
    assert lean == hf
    if not sample:  # greedy: a prompt's rows agree
        assert all(len(set(lean[0][3 * i : 3 * i + 3])) == 1 for i in range(len(PROMPTS)))


def rows_and_grads(model, share: bool, monkeypatch: pytest.MonkeyPatch, T: int):
    torch.manual_seed(0)
    n, G, P = 5, 4, 7
    prompt_ids = torch.randint(4, 40, (n, P))
    prompt_mask = torch.ones(n, P, dtype=torch.long)
    prompt_mask[1, :3] = 0
    prompt_mask[3, :5] = 0
    prompt_ids[prompt_mask == 0] = 0
    rows = torch.arange(n).repeat_interleave(G)
    completion_ids = torch.randint(4, 40, (n * G, T))
    completion_mask = torch.ones(n * G, T)
    completion_mask[::3, T // 2 + 1 :] = 0  # some rows end early
    monkeypatch.setattr(logprobs, "can_share_prompts", lambda m: share)
    monkeypatch.setattr(logprobs, "SHARED_PROMPT_MIN_SAVING", 1)  # share whenever a prompt repeats
    calls = []
    hook = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    model.zero_grad()
    logp, entropy = logprobs.completion_logprobs(
        model, prompt_ids[rows], prompt_mask[rows], completion_ids, completion_mask, 0.8, with_entropy=True
    )
    hook.remove()
    assert len(calls) == (1 + (T > 1) if share else 1)  # shared: the prompts, then the completions on their cache
    (logp * completion_mask).sum().backward()
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    return logp.detach() * completion_mask, entropy * completion_mask, grads


@pytest.mark.parametrize("T", [1, 6])
def test_shared_prompt_forward_is_the_same_function(
    tiny_model_dir: str, monkeypatch: pytest.MonkeyPatch, T: int
) -> None:
    model, _ = load_policy(tiny_model_dir)
    model.train()
    assert logprobs.can_share_prompts(model)
    shared = rows_and_grads(model, True, monkeypatch, T)
    full = rows_and_grads(model, False, monkeypatch, T)
    assert float((shared[0] - full[0]).abs().max()) < 1e-5
    assert float((shared[1] - full[1]).abs().max()) < 1e-5
    assert float((shared[2] - full[2]).norm() / full[2].norm()) < 1e-5


def test_prompts_are_shared_only_when_that_saves_enough_tokens(tiny_model_dir: str) -> None:
    model, _ = load_policy(tiny_model_dir)
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))

    def forwards(n: int, G: int, P: int) -> int:
        calls.clear()
        prompt_ids = torch.randint(4, 40, (n, P)).repeat_interleave(G, dim=0)
        completion_ids = torch.randint(4, 40, (n * G, 3))
        with torch.no_grad():
            logprobs.completion_logits(
                model, prompt_ids, torch.ones_like(prompt_ids), completion_ids, torch.ones(n * G, 3)
            )
        return len(calls)

    assert forwards(16, 8, 8) == 2  # a GRPO batch: 896 prompt tokens saved
    assert forwards(16, 2, 8) == 1  # DPO pairs: 128 saved, less than a second call costs


def test_checkpointed_models_are_run_row_by_row(tiny_model_dir: str) -> None:
    model, _ = load_policy(tiny_model_dir)
    model.gradient_checkpointing_enable()
    assert not logprobs.can_share_prompts(model)


def test_chunked_prefill_and_a_growing_cache_decode_the_same_samples(
    tiny_model_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prompts prefilled a few rows at a time (decode.PREFILL_BYTES, which bounds the [rows, H, P, P] scores) and a
    key/value cache grown past its first 64 positions give `generate`'s samples, as one prefill does."""
    model, tok = load_policy(tiny_model_dir)  # random init: rows run long, past the cache's first allocation
    params = SamplingParams(3, 90)
    whole, hf = sample_both(model, tok, params, seed=5)
    assert int(whole.completion_lengths.max()) > 64  # _Cache.reserve grew the cache
    monkeypatch.setattr(decode, "PREFILL_BYTES", 1)  # one prompt per prefill chunk
    chunked, _ = sample_both(model, tok, params, seed=5)
    for batch in (whole, chunked):
        assert torch.equal(batch.completion_ids, hf.completion_ids) and batch.completions == hf.completions
        assert float((batch.sampler_logprobs - hf.sampler_logprobs).abs().max()) < 1e-5
