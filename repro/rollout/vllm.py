"""Rollouts with vLLM (TRL's `use_vllm: true`), behind the same interface as `hf`: colocated in the training
process (`mode: colocate`) or from a `trl vllm-serve` server (`mode: server`, through TRL's VLLMClient).

UNTESTED HERE: vLLM cannot be installed on the CPU machines this project is built and tested on. The code follows
vLLM's and TRL 1.16's documented interfaces; `tests/test_rollout_contract.py` holds the contract every backend
must meet (it runs for `hf` and `hf_mismatch` everywhere, and for `vllm` only where vLLM is installed).

- Sampling: G completions per prompt (`n`), prompt-major; the prompt is passed as our tokenizer's token ids, so
  the trainer scores exactly the tokens vLLM saw. Sampler log-probs are vLLM's *processed* log-probs (after
  temperature and top-k/p, `logprobs_mode="processed_logprobs"`, vLLM ≥ 0.10.2), what the rollout correction
  ρ = π_old / π_rollout needs (TIS). A row is truncated when it ends without EOS at max_new_tokens.
- Weight sync after every optimizer step: colocated, the trainer's weights are loaded into vLLM's model in place;
  server, they are sent through TRL's NCCL communicator and the server's prefix cache is reset.
"""

from __future__ import annotations

from typing import Any

import torch

from repro.models.stops import stop_token_ids
from repro.rollout.base import RolloutBatch, SamplingParams, cut_prompt, left_pad
from repro.rollout.hf import BACKENDS, eos_mask
from repro.schema import ConfigError

MODES = ("colocate", "server")


@BACKENDS.register("vllm")
class VLLMRollout:
    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        mode: str = "colocate",
        gpu_memory_utilization: float = 0.3,
        server_url: str = "http://localhost:8000",
        max_model_len: int = 0,  # 0: the model's own
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"train.rollout_options.mode: {mode!r} is not one of {', '.join(MODES)}")
        try:
            import vllm
        except ImportError:
            raise ConfigError(
                "train.rollout_backend: vllm needs vLLM (pip install -e '.[gpu]' on a CUDA machine); run this tier "
                "with rollout_backend: hf (or hf_mismatch to emulate an inference engine's numerical mismatch)"
            ) from None
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer, model)  # the one stop set (repro/models/stops.py)
        if mode == "colocate":
            kwargs = {"max_model_len": max_model_len} if max_model_len else {}
            self.llm = vllm.LLM(
                model=model.config._name_or_path, gpu_memory_utilization=gpu_memory_utilization,
                logprobs_mode="processed_logprobs", enable_prefix_caching=True, **kwargs,
            )  # fmt: skip
            self.client = None
        else:
            from trl.generation.vllm_client import VLLMClient  # TRL's client of `trl vllm-serve`

            self.llm = None
            self.client = VLLMClient(base_url=server_url)
            self.client.init_communicator(device=torch.cuda.current_device())
        self.sync_weights(model)

    @torch.no_grad()
    def sync_weights(self, model: torch.nn.Module) -> None:
        if self.client is not None:
            self.client.update_model_params(model)
            self.client.reset_prefix_cache()
            return
        weights = [(name, param.detach()) for name, param in model.state_dict().items()]
        if hasattr(self.llm, "apply_model"):  # vLLM ≥ 0.10: runs in the engine's worker
            self.llm.apply_model(lambda engine_model: engine_model.load_weights(weights))
        else:
            self.llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights(weights)
        self.llm.reset_prefix_cache()

    def generate(
        self,
        prompts: list[str],
        params: SamplingParams,
        extra_inputs: dict[str, torch.Tensor] | None = None,
        seeds: list[int] | None = None,
    ) -> RolloutBatch:
        if extra_inputs:
            raise ConfigError("the vllm backend does not take image inputs here; use rollout_backend: hf for VL runs")
        encoded = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        limit = params.max_prompt_length
        cut = torch.tensor([limit is not None and len(ids) > limit for ids in encoded])  # [n]
        enc = [cut_prompt(ids, limit, params.truncation_mode) for ids in encoded]
        G = params.num_generations
        if self.client is not None:
            if seeds is not None:
                raise ConfigError(
                    "train.rollout_seeding: per_group needs per-request seeds, which TRL's vLLM server client does "
                    "not pass; use rollout_options.mode: colocate, or rollout_seeding: batch with one process"
                )
            out = self.client.generate(
                enc, n=G, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                max_tokens=params.max_new_tokens, logprobs=0,
            )  # fmt: skip
            completions = [list(c) for c in out["completion_ids"]]
            logprobs = [[float(lp[0] if isinstance(lp, list) else lp) for lp in row] for row in out["logprobs"]]
        else:
            import vllm

            def sampling(seed: int | None) -> Any:  # a request's seed fixes its G samples (vLLM's per-request seed)
                return vllm.SamplingParams(
                    n=G, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or -1,
                    max_tokens=params.max_new_tokens, logprobs=0, seed=seed, stop_token_ids=self.stop_ids,
                )  # fmt: skip

            per_request = [sampling(s) for s in seeds] if seeds is not None else sampling(None)
            outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in enc], per_request, use_tqdm=False)
            completions, logprobs = [], []
            for request in outputs:  # prompt-major: the G samples of a prompt are consecutive
                for sample in request.outputs:
                    completions.append(list(sample.token_ids))
                    logprobs.append([step[tok].logprob for tok, step in zip(sample.token_ids, sample.logprobs)])
        batch = batch_from_token_lists(
            enc, completions, logprobs, G, self.tokenizer, params.max_new_tokens, self.stop_ids
        )
        batch.prompt_truncated = cut.repeat_interleave(G)  # [N]
        return batch


def batch_from_token_lists(
    prompts: list[list[int]],
    completions: list[list[int]],
    logprobs: list[list[float]],
    G: int,
    tokenizer: Any,
    max_new_tokens: int,
    stop_ids: list[int] | None = None,
) -> RolloutBatch:
    """A RolloutBatch from an engine's token lists: prompts left-padded and repeated G times, completions
    right-padded; the mask covers each completion up to its first stop token (`stop_ids`, default the tokenizer's
    EOS; an engine may or may not return it); truncated = no stop token and max_new_tokens reached."""
    pad, eos = tokenizer.pad_token_id, stop_ids or tokenizer.eos_token_id
    T = max(1, max(len(c) for c in completions))
    prompt_ids, prompt_mask = left_pad(prompts, pad)  # [n, P]
    completion_ids = torch.full((len(completions), T), pad, dtype=torch.long)  # [N, T]
    sampler_logprobs = torch.zeros((len(completions), T))  # [N, T]
    returned = torch.zeros((len(completions), T), dtype=torch.long)  # [N, T] positions the engine returned
    for i, (ids, lps) in enumerate(zip(completions, logprobs, strict=True)):
        completion_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        sampler_logprobs[i, : len(lps)] = torch.tensor(lps, dtype=torch.float32)
        returned[i, : len(ids)] = 1
    to_eos, no_eos = eos_mask(completion_ids, eos)
    mask = to_eos * returned  # [N, T]
    lengths = returned.sum(dim=1)  # [N]
    truncated = no_eos & (lengths >= max_new_tokens)  # [N]
    texts = tokenizer.batch_decode(completion_ids * mask + pad * (1 - mask), skip_special_tokens=True)
    return RolloutBatch(
        prompt_ids.repeat_interleave(G, dim=0), prompt_mask.repeat_interleave(G, dim=0), completion_ids,
        mask.float(), sampler_logprobs * mask, truncated, texts,
    )  # fmt: skip
