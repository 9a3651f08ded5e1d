"""Judge-based alignment benchmarks (AlpacaEval / MT-Bench / Arena-Hard style) and the judges that score them.

A judged benchmark asks the policy for one response per prompt and a judge for P(response ≻ baseline), the
baseline being a fixed reference response per prompt (AlpacaEval 2: GPT-4 Turbo's outputs; Arena-Hard v0.1:
GPT-4-0314's; our `hh_harmless`: the human-preferred HH reply). The win rate is the mean of P over prompts,
its 95% CI a seeded bootstrap over prompts.

Judges implement the `Judge` protocol and are built by name from a spec ({"kind": ..., **options}, `make_judge`):

- `reward_model`: a local (or hub) `AutoModelForSequenceClassification` with one output; P = σ(r(x, y) − r(x, y_base))
  (the Bradley–Terry preference of the reward model, as RLHF papers use a reward model as a proxy judge);
- `callable`: a Python function (prompt, response) → score, e.g. a synthetic task's gold reward; P = 1 if the
  response scores higher, 0.5 on a tie, else 0;
- `llm_judge`: a placeholder. API judges (AlpacaEval's GPT-4, Arena-Hard's GPT-4-Turbo) are not run offline;
  its error says how to plug one in.

Benchmark specs are YAML files in `repro/eval/judge_benchmarks/` (read without torch), versioned like the math
benchmarks (repro/eval/benchmark.py).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from repro.io import read_yaml
from repro.registry import Registry, unknown_name_message
from repro.schema import ConfigError, from_dict

JUDGE_BENCHMARK_DIR = Path(__file__).parent / "judge_benchmarks"
BOOTSTRAP_RESAMPLES = 1000


@runtime_checkable
class Judge(Protocol):
    name: str

    def win_probabilities(self, prompts: list[str], responses: list[str], baselines: list[str]) -> list[float]:
        """P(response ≻ baseline | prompt) per item, each in [0, 1]."""
        ...


JudgeFactory = Callable[..., Judge]
JUDGES: Registry[JudgeFactory] = Registry("judge")


def make_judge(spec: dict[str, Any]) -> Judge:
    """The judge named by spec["kind"], built with the spec's other keys as options (checked against its signature)."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"a judge spec is a mapping with a 'kind' (one of {', '.join(JUDGES.names())}), got {spec!r}")
    kind, options = spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    if kind not in JUDGES:
        raise ConfigError(unknown_name_message("judge kind", kind, JUDGES.names()))
    factory = JUDGES.get(kind)
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for option in options:
            if option not in params:
                raise ConfigError(f"judge {kind}: unknown option {option!r}; valid options: {', '.join(params)}")
        missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in options]
        if missing:
            raise ConfigError(f"judge {kind}: missing option(s) {', '.join(missing)}")
    return factory(**options)


def sigmoid(x: float) -> float:
    """σ(x), without overflow for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class RewardModelJudge:
    """P(y ≻ y_base | x) = σ(r(x, y) − r(x, y_base)) from a one-output sequence-classification reward model.

    Texts are `prompt + response` ("concat", for pre-rendered prompts such as HH's) or the tokenizer's chat
    template over a user and an assistant message ("chat"). Batches are right-padded with the model's pad id, so
    every sequence keeps positions 0..L−1 and the model pools its last real token: a batch scores exactly as one
    sequence at a time. `append_eos` appends the tokenizer's EOS to each text, as TRL's RewardTrainer (and
    repro/trainers/reward_model.py) does when it trains: set it for a reward model trained that way (off: no EOS).
    `max_length` keeps the last tokens (the response's end) of a longer text.
    """

    def __init__(
        self,
        path: str,
        batch_size: int = 8,
        template: Literal["concat", "chat"] = "concat",
        dtype: str = "float32",
        max_length: int | None = None,
        append_eos: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from repro.models.loading import DTYPES, hub_offline

        if template not in ("concat", "chat") or dtype not in DTYPES or batch_size < 1:
            raise ConfigError(
                f"judge reward_model: need template 'concat' or 'chat', dtype one of {', '.join(DTYPES)}, "
                f"batch_size >= 1 (got {template!r}, {dtype!r}, {batch_size})"
            )
        local = Path(path).expanduser()
        if not local.exists() and (path.startswith((".", "/", "~")) or path.strip("/").count("/") > 1):
            raise ConfigError(f"judge reward_model: path {path!r} does not exist")
        source = str(local) if local.exists() else path
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForSequenceClassification.from_pretrained(source, dtype=DTYPES[dtype])
        except OSError as err:
            if not local.exists() and hub_offline():
                raise ConfigError(
                    f"judge reward_model: {path!r} is not available offline and not cached; "
                    "point path at a local directory holding the reward model and its tokenizer"
                ) from err
            raise
        if self.model.config.num_labels != 1:
            raise ConfigError(
                f"judge reward_model: {path!r} has {self.model.config.num_labels} labels; a reward model has one"
            )
        if template == "chat" and not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"judge reward_model: template 'chat' but {path!r}'s tokenizer has no chat template")
        pad = self.model.config.pad_token_id
        if pad is None:
            pad = (
                self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            )
            self.model.config.pad_token_id = pad
        if pad is None:
            raise ConfigError(f"judge reward_model: {path!r} defines neither a pad nor an EOS token to pad batches")
        self.pad_id = int(pad)
        self.model.eval()
        self.name = f"reward_model:{path}"
        self.batch_size, self.template, self.max_length = batch_size, template, max_length
        self.append_eos = append_eos
        self._torch = torch

    def _text(self, prompt: str, response: str) -> str:
        if self.template == "concat":
            text = prompt + response
        else:
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        eos = self.tokenizer.eos_token
        return text + eos if self.append_eos and eos and not text.endswith(eos) else text

    def rewards(self, prompts: list[str], responses: list[str]) -> list[float]:
        """r(x, y) per item, in batches of `batch_size`."""
        torch = self._torch
        texts = [self._text(p, r) for p, r in zip(prompts, responses, strict=True)]
        out: list[float] = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                ids = self.tokenizer(chunk, add_special_tokens=self.template == "concat")["input_ids"]
                ids = [seq[-self.max_length :] if self.max_length else seq for seq in ids]
                width = max(len(seq) for seq in ids)
                input_ids = torch.tensor([seq + [self.pad_id] * (width - len(seq)) for seq in ids])  # [B, T]
                mask = torch.tensor([[1] * len(seq) + [0] * (width - len(seq)) for seq in ids])  # [B, T]
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits  # [B, 1]
                out += logits[:, 0].float().tolist()
        return out

    def win_probabilities(self, prompts: list[str], responses: list[str], baselines: list[str]) -> list[float]:
        r_resp, r_base = self.rewards(prompts, responses), self.rewards(prompts, baselines)
        return [sigmoid(a - b) for a, b in zip(r_resp, r_base, strict=True)]


class CallableJudge:
    """P = 1 when score(prompt, response) > score(prompt, baseline), 0.5 on a tie, else 0."""

    def __init__(self, fn: Callable[[str, str], float] | str, name: str | None = None) -> None:
        if isinstance(fn, str):  # "package.module:function", so a YAML config can name one
            module, _, attr = fn.partition(":")
            try:
                fn = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as err:
                raise ConfigError(
                    f"judge callable: cannot import {fn!r} (write it as 'package.module:function')"
                ) from err
        if not callable(fn):
            raise ConfigError(f"judge callable: fn must be a function (prompt, response) -> score, got {fn!r}")
        self.fn = fn
        self.name = name or f"callable:{getattr(fn, '__qualname__', repr(fn))}"

    def win_probabilities(self, prompts: list[str], responses: list[str], baselines: list[str]) -> list[float]:
        probabilities = []
        for prompt, response, baseline in zip(prompts, responses, baselines, strict=True):
            s_resp, s_base = float(self.fn(prompt, response)), float(self.fn(prompt, baseline))
            probabilities.append(1.0 if s_resp > s_base else 0.5 if s_resp == s_base else 0.0)
        return probabilities


def llm_judge(**options: Any) -> Judge:
    """API judges are not run here; the error says how to plug one in."""
    raise ConfigError(
        f"judge llm_judge ({options or 'no options'}): API judges (GPT-4 / GPT-4-Turbo as in AlpacaEval, MT-Bench, "
        "Arena-Hard) are not run offline by this harness. To use one, write a class with `name: str` and "
        "`win_probabilities(prompts, responses, baselines) -> list[float]` (repro.eval.judge.Judge) that calls your "
        "API, register it with JUDGES.add('<kind>', YourJudge), and set judge: {kind: <kind>, ...}; or judge "
        "offline with kind 'reward_model' (path of a local reward model)."
    )


JUDGES.add("reward_model", RewardModelJudge)
JUDGES.add("callable", CallableJudge)
JUDGES.add("llm_judge", llm_judge)


# --- judged benchmark specs ----------------------------------------------------------------------


@dataclass(frozen=True)
class JudgedDataset:
    """Where prompts and baseline responses come from.

    format "columns": `prompt_field` and `baseline_field` columns of each row; format "preference": rows read as
    preference pairs (repro/data/preference_loader.py: explicit or implicit HH prompts), baseline = the pair's
    `baseline_field` ("chosen" or "rejected"). `baseline_field: null`: the set ships no baseline responses.
    """

    hub_id: str
    split: str
    prompt_field: str
    baseline_field: str | None
    local_file: str | None = None  # file name in a local data directory; null: no local copy known
    hub_config: str | None = None
    hub_data_dir: str | None = None
    id_field: str | None = None  # null: the `id` column when present, else the row index
    format: Literal["columns", "preference"] = "columns"
    prompt_transform: Literal["none", "first_turn"] = "none"  # first_turn: turns[0]["content"] (Arena-Hard)
    turns: int = 1  # MT-Bench has 2; only single-turn sets run
    size: int | None = None  # prompts in the full set; a loaded copy of another size is an error


@dataclass(frozen=True)
class Generation:
    """How the policy answers: one response per prompt (n = 1), greedy at temperature 0."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 1234
    prompt_format: Literal["raw", "chat"] = "raw"  # chat: the policy's chat template around a user message
    batch_size: int = 16


@dataclass(frozen=True)
class JudgedBenchmark:
    name: str
    version: int
    description: str
    dataset: JudgedDataset
    generation: Generation = field(default_factory=Generation)
    limit: int | None = None  # the first `limit` prompts; None: all
    judge: dict[str, Any] = field(default_factory=dict)  # the published judge, e.g. {kind: llm_judge, model: ...}
    requires: list[str] = field(default_factory=list)  # what a faithful run needs that is not here
    source: str = ""

    def check(self, where: str) -> None:
        g = self.generation
        if g.n != 1:
            raise ConfigError(f"{where}: generation.n = {g.n}; judged benchmarks draw one response per prompt (n: 1)")
        if g.temperature < 0 or not 0 < g.top_p <= 1 or g.max_new_tokens < 1 or g.batch_size < 1:
            raise ConfigError(f"{where}: need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1, batch_size >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"{where}: limit must be a positive number of prompts or null (got {self.limit})")
        if self.dataset.format == "preference" and self.dataset.baseline_field not in ("chosen", "rejected"):
            raise ConfigError(f"{where}: dataset.format preference needs baseline_field 'chosen' or 'rejected'")

    def resolve(self, overrides: dict[str, Any] | None = None, where: str = "") -> JudgedBenchmark:
        """This benchmark with a run config's overrides ({limit, generation: {...}}) on top, checked."""
        where = where or f"judged benchmark {self.name}"
        raw = dataclasses.asdict(self)
        for key, value in (overrides or {}).items():
            if key not in ("limit", "generation"):
                raise ConfigError(f"{where}: only limit and generation can be overridden, not {key!r}")
            raw[key] = {**raw["generation"], **value} if key == "generation" else value
        bench = from_dict(JudgedBenchmark, raw, where)
        bench.check(where)
        return bench


@cache
def judged_benchmarks() -> dict[str, JudgedBenchmark]:
    """Every judged benchmark definition, by name (read once per process)."""
    found: dict[str, JudgedBenchmark] = {}
    for path in sorted(JUDGE_BENCHMARK_DIR.glob("*.yaml")):
        bench = from_dict(JudgedBenchmark, read_yaml(path), str(path))
        if bench.name != path.stem:
            raise ConfigError(f"{path}: name {bench.name!r} must equal the file name {path.stem!r}")
        bench.check(str(path))
        found[bench.name] = bench
    return found


def get_judged_benchmark(name: str) -> JudgedBenchmark:
    known = judged_benchmarks()
    if name not in known:
        raise ConfigError(unknown_name_message("judged benchmark", name, list(known)))
    return known[name]


# --- evaluation ----------------------------------------------------------------------------------


def load_judged_items(bench: JudgedBenchmark, data_dir: Path | None) -> list[dict[str, str]]:
    """[{id, prompt, baseline}] of the whole set, in published order; data_dir None: the hub copy."""
    from repro.data.preference_loader import pairs_from_rows, read_rows

    spec = bench.dataset
    if spec.turns != 1:
        raise ConfigError(
            f"judged benchmark {bench.name}: {spec.turns}-turn conversations are not supported (single-turn only)"
        )
    if spec.baseline_field is None:
        raise ConfigError(
            f"judged benchmark {bench.name}: {spec.hub_id} ships no baseline responses; pairwise judging needs "
            f"them ({'; '.join(bench.requires) or 'see the benchmark file'})"
        )
    if data_dir is not None:
        if spec.local_file is None:
            raise ConfigError(f"judged benchmark {bench.name}: no local copy is known; pass data_dir=None for the hub")
        source = str(Path(data_dir) / spec.local_file)
        if not Path(source).is_file():
            raise ConfigError(f"judged benchmark {bench.name}: {source} is missing (expected {spec.local_file})")
        rows = read_rows(source)
    else:
        source = spec.hub_id
        try:
            rows = read_rows(spec.hub_id, spec.split, hub_config=spec.hub_config, hub_data_dir=spec.hub_data_dir)
        except ConfigError as err:
            local = (
                f"pass data_dir= a folder holding {spec.local_file}" if spec.local_file else "no local copy is known"
            )
            raise ConfigError(f"judged benchmark {bench.name}: {err} For this benchmark: {local}.") from err
    if spec.format == "preference":
        pairs = pairs_from_rows(rows, source, prompt_field=spec.prompt_field)
        items = [{"id": p.id, "prompt": p.prompt, "baseline": getattr(p, spec.baseline_field)} for p in pairs]
    else:
        items = [_column_item(bench, row, i) for i, row in enumerate(rows)]
    if spec.size is not None and len(items) != spec.size:
        raise ConfigError(
            f"judged benchmark {bench.name} (version {bench.version}) has {spec.size} prompts, but {source} gives "
            f"{len(items)}: a different copy of the set"
        )
    return items


def _column_item(bench: JudgedBenchmark, row: dict[str, Any], i: int) -> dict[str, str]:
    spec = bench.dataset
    for option in ("prompt_field", "baseline_field"):
        column = getattr(spec, option)
        if column not in row:
            raise ConfigError(
                f"judged benchmark {bench.name}: no column {column!r} (columns: {', '.join(sorted(row))}); "
                f"fix dataset.{option}"
            )
    prompt = row[spec.prompt_field]
    if spec.prompt_transform == "first_turn":
        prompt = prompt[0]["content"]
    item_id = row[spec.id_field] if spec.id_field else row.get("id", i)
    return {"id": f"{bench.name}-{item_id}", "prompt": str(prompt), "baseline": str(row[spec.baseline_field])}


def bootstrap_ci(values: list[float], seed: int, resamples: int = BOOTSTRAP_RESAMPLES) -> list[float]:
    """95% percentile bootstrap CI of the mean, resampling items (seeded)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)  # [resamples]
    low, high = np.percentile(means, [2.5, 97.5])
    return [float(low), float(high)]


def evaluate_judged(
    bench: JudgedBenchmark,
    model: Any,
    tokenizer: Any,
    judge: Judge,
    data_dir: Path | None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Win rate of the policy's responses against the benchmark's baselines, judged by `judge`.

    Returns {benchmark, version, judge, win_rate, ci95, n, generation, items: [{id, prompt, response, baseline, p}]}.
    `limit` (else the benchmark's) keeps the first prompts.
    """
    import torch

    from repro.eval.synthetic import generate_completions
    from repro.progress import progress_bar

    bench.check(f"judged benchmark {bench.name}")
    g = bench.generation
    if g.prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"judged benchmark {bench.name}: prompt_format chat needs a tokenizer with a chat template")
    items = load_judged_items(bench, data_dir)
    items = items[: limit or bench.limit or len(items)]
    prompts = [it["prompt"] for it in items]
    rendered = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        if g.prompt_format == "chat"
        else p
        for p in prompts
    ]
    model.eval()
    torch.manual_seed(g.seed)
    responses: list[str] = []
    with progress_bar(total=len(rendered), desc=f"{bench.name}: generate", unit="prompt") as bar:
        for start in range(0, len(rendered), g.batch_size):
            chunk = rendered[start : start + g.batch_size]
            texts, _ = generate_completions(
                model,
                tokenizer,
                chunk,
                sample=g.temperature > 0,
                temperature=g.temperature or 1.0,
                top_p=g.top_p,
                max_new_tokens=g.max_new_tokens,
                batch_size=len(chunk),
            )
            responses += texts
            bar.update(len(chunk))
    baselines = [it["baseline"] for it in items]
    p = judge.win_probabilities(prompts, responses, baselines)
    if len(p) != len(items) or any(not 0.0 <= x <= 1.0 for x in p):
        raise ValueError(f"judge {judge.name} must return one probability in [0, 1] per item")
    return {
        "benchmark": bench.name,
        "version": bench.version,
        "judge": judge.name,
        "win_rate": sum(p) / len(p),
        "ci95": bootstrap_ci(p, g.seed),
        "n": len(items),
        "generation": dataclasses.asdict(g),
        "items": [{**it, "response": r, "p": float(x)} for it, r, x in zip(items, responses, p, strict=True)],
    }
