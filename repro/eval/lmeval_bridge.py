"""Run one benchmark on one checkpoint through lm-evaluation-harness's Python API.

We render every prompt ourselves (our named, chat-template-aware templates), write them with the
gold answers to a JSON Lines file, and hand lm-eval a generated task over that file: `repeats: n`,
a `take_first_k` filter so all n samples are scored (without it lm-eval scores only the first), and
a `process_results` that grades with the project's one grader. lm-eval's per-sample log becomes our
per-item records; our metric code re-scores them and must agree with lm-eval's aggregate.

Backends: `hf` (transformers, CPU or GPU) and `vllm` (GPU, when installed); `auto` picks vLLM when
it is importable and CUDA is available. `lm=` takes any lm-eval `LM` object (the oracle stubs).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from repro.eval.benchmark import Benchmark, Item, Protocol, dataset_source, items_hash, load_items, protocol_hash
from repro.eval.metrics import maj_at_k, pass_at_k
from repro.rewards.grader import extract_answer, grade

HEADLINE = {"greedy": "avg", "avg@k": "avg", "pass@k": "pass_at_k", "maj@k": "maj_at_k"}
FILTER = "samples"
BOOTSTRAP_RESAMPLES = 400


def score_responses(responses: list[str], gold: str, protocol: Protocol) -> dict[str, Any]:
    """Per-problem scores of n responses: avg (share correct), unbiased pass@k, maj@k over the first k."""
    answers = [extract_answer(r, protocol.answer_style) for r in responses]
    correct = [grade(a, gold) for a in answers]
    return {"answers": answers, "correct": correct, **_problem_metrics(answers, correct, protocol.k)}


def _problem_metrics(answers: list[str | None], correct: list[bool], k: int) -> dict[str, float]:
    n, c = len(correct), sum(correct)
    return {
        "avg": c / n,
        "pass_at_k": pass_at_k(n, c, k),
        "maj_at_k": float(maj_at_k(answers[:k], correct[:k])),
    }


def choose_backend(backend: str) -> str:
    if backend not in ("auto", "hf", "vllm"):
        raise ValueError(f"backend must be auto, hf or vllm, got {backend!r}")
    if backend != "auto":
        return backend
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return "hf"
    return "vllm" if torch.cuda.is_available() else "hf"


def generation_kwargs(protocol: Protocol, stop: list[str], backend: str) -> dict[str, Any]:
    """lm-eval generation kwargs: pure temperature / top-p sampling, or greedy; no repetition penalty."""
    kwargs: dict[str, Any] = {"until": stop, "max_gen_toks": protocol.max_tokens}
    if protocol.metric == "greedy":
        return {**kwargs, "do_sample": False, "temperature": 0.0}
    kwargs.update(do_sample=True, temperature=protocol.temperature, top_p=protocol.top_p)
    if backend == "vllm":
        kwargs["top_k"] = protocol.top_k or -1  # vLLM: -1 disables top-k
    else:  # HF: explicit, or generate() takes top_k=50 and the penalty from the checkpoint's generation config
        kwargs.update(top_k=protocol.top_k, repetition_penalty=1.0)
    return kwargs


def task_config(bench: Benchmark, protocol: Protocol, data_file: Path, stop: list[str], backend: str) -> dict[str, Any]:
    """An lm-eval task over our rendered prompts (absolute path: lm-eval resolves data files from the CWD)."""

    def process_results(doc: dict[str, Any], results: list[list[str]]) -> dict[str, float]:
        scores = score_responses(list(results[0]), doc["answer"], protocol)  # results[0]: the n samples
        return {name: scores[name] for name in ("avg", "pass_at_k", "maj_at_k")}

    return {
        "task": f"repro_{bench.name}_v{bench.version}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{answer}}",
        "target_delimiter": "",
        "repeats": protocol.n,
        "generation_kwargs": generation_kwargs(protocol, stop, backend),
        "filter_list": [{"name": FILTER, "filter": [{"function": "take_first_k", "k": protocol.n}]}],
        "process_results": process_results,
        "metric_list": [
            {"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("avg", "pass_at_k", "maj_at_k")
        ],
        "metadata": {"version": bench.version},
    }


def evaluate_benchmark(
    bench: Benchmark,
    protocol: Protocol,
    *,
    model_path: str | None = None,
    tokenizer: Any = None,
    lm: Any = None,
    local_dir: Path | None = None,
    backend: str = "auto",
    batch_size: int = 64,
    dtype: str = "float32",
    items: list[Item] | None = None,
) -> dict[str, Any]:
    """Score one checkpoint (`model_path`) or one lm-eval LM object (`lm`) on `bench` under `protocol`.

    `items`: the problems when the caller has loaded them already (load_items(bench, local_dir, protocol.limit)).
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    from repro.data.templates import render

    if (model_path is None) == (lm is None):
        raise ValueError("pass exactly one of model_path (a checkpoint) and lm (an lm-eval LM object)")
    started = time.time()
    if items is None:
        items = load_items(bench, local_dir, protocol.limit)  # before any model is loaded: bad data fails fast
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
    chosen = "stub" if lm is not None else choose_backend(backend)
    # The one stop set of sampling (repro/models/stops.py): the tokenizer's eos, the checkpoint's generation_config
    # eos ids and the chat template's end of turn (Qwen base models: eos <|endoftext|>, turns end <|im_end|>).
    from repro.models.stops import checkpoint_generation_config, stop_strings

    stop = stop_strings(tokenizer, checkpoint_generation_config(model_path) if model_path else None)
    prompts = [render(protocol.template, item.problem, tokenizer) for item in items]
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # one "left truncation" warning per batch otherwise
    with tempfile.TemporaryDirectory(prefix=f"repro-{bench.name}-") as tmp:
        data_file = Path(tmp) / f"{bench.name}.jsonl"
        rows = [{"id": it.id, "prompt": p, "answer": it.answer} for it, p in zip(items, prompts, strict=True)]
        data_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        config = task_config(bench, protocol, data_file, stop, "hf" if chosen == "stub" else chosen)
        model: Any = lm
        model_args: dict[str, Any] = {}
        if lm is None:
            model = chosen
            model_args = {"pretrained": model_path, "tokenizer": model_path, "dtype": dtype}
            if chosen == "vllm":
                model_args.update(seed=protocol.seed, gpu_memory_utilization=0.85)
        out = lm_eval.simple_evaluate(
            model=model,
            model_args=model_args,
            tasks=[config],
            task_manager=TaskManager(include_defaults=False),  # indexing lm-eval's 10k built-in tasks takes ~20 s
            batch_size=batch_size,
            device=None if chosen == "vllm" else _device(),
            log_samples=True,
            random_seed=protocol.seed,
            numpy_random_seed=protocol.seed,
            torch_random_seed=protocol.seed,
        )
    task = config["task"]
    records = build_records(out["samples"][task], items, prompts, protocol, tokenizer)
    lm_eval_metrics = {m: float(out["results"][task][f"{m},{FILTER}"]) for m in ("avg", "pass_at_k", "maj_at_k")}
    ours = aggregate(records, protocol.k)
    for name, value in ours.items():  # our metric code over lm-eval's logged samples must give lm-eval's number
        if not math.isclose(value, lm_eval_metrics[name], abs_tol=1e-9):
            raise RuntimeError(f"{bench.name}: {name} from lm-eval {lm_eval_metrics[name]} != ours {value}")
    headline = HEADLINE[protocol.metric]
    value = lm_eval_metrics[headline]
    ci = sampling_ci(records, protocol, headline)
    return {
        "benchmark": bench.name,
        "version": bench.version,
        "metric": protocol.metric,
        "metric_name": metric_label(protocol),
        "value": value,
        "unit": "fraction",
        "ci": ci,
        "ci_kind": "evaluation sampling (bootstrap over samples, 95%)" if ci else None,
        "stderr_problems": float(out["results"][task].get(f"{headline}_stderr,{FILTER}", float("nan"))),
        "metrics": {metric_label(protocol, m): v for m, v in lm_eval_metrics.items()},
        "n_problems": len(items),
        "protocol": protocol.as_dict(),
        "protocol_hash": protocol_hash(bench, protocol),
        "dataset": {"source": dataset_source(bench, local_dir), "hash": items_hash(items), "n_items": len(items)},
        "backend": chosen,
        "eval_library": "lm-eval",
        "eval_library_version": out.get("lm_eval_version") or _version("lm_eval"),
        "grader_version": _version("math-verify"),
        "mean_response_tokens": _mean(t for r in records for t in r["response_tokens"]),
        "prompts_over_context": _prompts_over_context(model_path, tokenizer, prompts, protocol.max_tokens),
        "truncation_rate": _mean(float(t >= protocol.max_tokens) for r in records for t in r["response_tokens"]),
        "wall_time_s": time.time() - started,
        "items": records,
    }


def build_records(
    samples: list[dict[str, Any]], items: list[Item], prompts: list[str], protocol: Protocol, tokenizer: Any
) -> list[dict[str, Any]]:
    """Per-item records from lm-eval's sample log, in benchmark order."""
    by_doc = {int(s["doc_id"]): s for s in samples}
    if sorted(by_doc) != list(range(len(items))):
        raise RuntimeError(f"lm-eval logged {len(by_doc)} documents for {len(items)} problems")
    records = []
    for i, (item, prompt) in enumerate(zip(items, prompts, strict=True)):
        responses = [str(r) for r in by_doc[i]["filtered_resps"][0]]
        if len(responses) != protocol.n:
            raise RuntimeError(f"{item.id}: lm-eval kept {len(responses)} responses, expected n={protocol.n}")
        scores = score_responses(responses, item.answer, protocol)
        records.append(
            {
                "id": item.id,
                "answer": item.answer,
                "prompt": prompt,
                "responses": responses,
                "response_tokens": [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses],
                "extracted": scores["answers"],
                "correct": scores["correct"],
            }
        )
    return records


def aggregate(records: list[dict[str, Any]], k: int) -> dict[str, float]:
    """Benchmark-level avg / pass@k / maj@k from per-item records (re-scoring needs only these)."""
    per_item = [_problem_metrics(r["extracted"], r["correct"], k) for r in records]
    return {name: sum(p[name] for p in per_item) / len(per_item) for name in ("avg", "pass_at_k", "maj_at_k")}


def sampling_ci(records: list[dict[str, Any]], protocol: Protocol, headline: str) -> list[float] | None:
    """95% bootstrap CI of the headline metric over evaluation sampling (problems fixed, samples redrawn).

    None for greedy decoding: it has no sampling noise. Training-seed variance is computed elsewhere.
    """
    if protocol.metric == "greedy":
        return None
    import numpy as np

    rng = np.random.default_rng(protocol.seed)
    values = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        total = 0.0
        for r in records:
            pick = rng.integers(0, protocol.n, size=protocol.n)
            answers = [r["extracted"][j] for j in pick]
            correct = [r["correct"][j] for j in pick]
            total += _problem_metrics(answers, correct, protocol.k)[headline]
        values.append(total / len(records))
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def metric_label(protocol: Protocol, name: str | None = None) -> str:
    """'avg@32', 'pass@8', 'maj@8' or 'greedy pass@1' for a metric of the protocol."""
    name = name or HEADLINE[protocol.metric]
    if protocol.metric == "greedy":
        return "greedy pass@1"
    return {"avg": f"avg@{protocol.n}", "pass_at_k": f"pass@{protocol.k}", "maj_at_k": f"maj@{protocol.k}"}[name]


def _prompts_over_context(model_path: str | None, tokenizer: Any, prompts: list[str], max_tokens: int) -> int | None:
    """Prompts longer than the model's context minus max_tokens (lm-eval cuts them from the left)."""
    if model_path is None:
        return None
    from transformers import AutoConfig

    limit = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    if not limit:
        return None
    room = limit - max_tokens
    return sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) > room for p in prompts)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def rescore(result: dict[str, Any]) -> dict[str, Any]:
    """Re-grade a stored benchmark result's responses with the current grader, offline (no model, no lm-eval).

    Returns a new result: extracted answers, grades, metrics and CI recomputed; `rescored` says how
    many items changed and under which grader version.
    """
    from repro.schema import from_dict

    protocol = from_dict(Protocol, result["protocol"], "benchmark result", "protocol")
    items, changed = [], 0
    for item in result["items"]:
        scores = score_responses(item["responses"], item["answer"], protocol)
        changed += scores["correct"] != item["correct"]
        items.append({**item, "extracted": scores["answers"], "correct": scores["correct"]})
    metrics = aggregate(items, protocol.k)
    headline = HEADLINE[protocol.metric]
    return {
        **result,
        "items": items,
        "value": metrics[headline],
        "metrics": {metric_label(protocol, m): v for m, v in metrics.items()},
        "ci": sampling_ci(items, protocol, headline),
        "grader_version": _version("math-verify"),
        "rescored": {"items_changed": changed, "previous_value": result["value"]},
    }
