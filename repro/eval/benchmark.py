"""Versioned math benchmark definitions: dataset, prompt template, sampling, metric, grader.

One YAML file per benchmark in `repro/eval/benchmarks/` (its `version` is bumped on any change that
can move a score). A run's protocol is the benchmark's default protocol with the run config's
overrides on top (`eval.benchmarks.<name>` in a paper's tier config). Loading a benchmark reads
YAML only: no torch, no lm-eval, so the DAG and config checks can use it.

Data: by default the hub id (`datasets.load_dataset`); with a local directory (config key
`eval.data_dir`, or the environment variable REPRO_MATH_DATA, which wins) the benchmark's
`local_file` in that directory, in the layout of the shipped copies in `data/math/` (`id`, `problem`, `answer`;
data/SOURCES.md). A relative directory is relative to where the command runs: the project root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from repro.io import parse_json_rows, read_yaml
from repro.registry import unknown_name_message
from repro.schema import ConfigError, from_dict

BENCHMARK_DIR = Path(__file__).parent / "benchmarks"
DATA_DIR_ENV = "REPRO_MATH_DATA"
METRICS = ("greedy", "avg@k", "pass@k", "maj@k")
ANSWER_TRANSFORMS = ("none", "after_hashes", "first_of_list")


@dataclass(frozen=True)
class Protocol:
    """How a benchmark is run and scored. `n` samples per problem; `k` of the metric (k <= n)."""

    template: str = "qwen_math"
    answer_style: str = "boxed"
    metric: str = "greedy"
    n: int = 1
    k: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    max_tokens: int = 3000
    limit: int | None = None  # the first `limit` problems (smoke runs); None: all
    seed: int = 1234  # sampling seed (lm-eval's random / numpy / torch seeds)
    grader: str = "math-verify"

    def check(self, where: str) -> None:
        from repro.data.templates import TEMPLATES
        from repro.rewards.grader import ANSWER_STYLES

        def fail(message: str) -> None:
            raise ConfigError(f"{where}: {message}")

        if self.template not in TEMPLATES:
            fail(unknown_name_message("prompt template", self.template, TEMPLATES.names()))
        if self.answer_style not in ANSWER_STYLES:
            fail(unknown_name_message("answer style", self.answer_style, list(ANSWER_STYLES)))
        if self.metric not in METRICS:
            fail(unknown_name_message("metric", self.metric, list(METRICS)))
        if self.grader != "math-verify":
            fail(f"grader {self.grader!r}: the project has one grader, 'math-verify' (repro/rewards/grader.py)")
        if self.n < 1 or not 1 <= self.k <= self.n:
            fail(f"need n >= 1 and 1 <= k <= n (got n={self.n}, k={self.k}); k is the metric's k, n the samples drawn")
        if self.metric == "greedy" and (self.n != 1 or self.temperature != 0.0):
            fail(
                f"metric greedy decodes once at temperature 0: set n: 1, k: 1, temperature: 0.0 (got n={self.n}, "
                f"temperature={self.temperature}), or use avg@k / pass@k / maj@k for sampling"
            )
        if self.metric != "greedy" and self.temperature <= 0.0:
            fail(f"metric {self.metric} samples: temperature must be > 0 (use metric: greedy for temperature 0)")
        if self.metric == "avg@k" and self.k != self.n:
            fail(f"avg@k averages all n samples: set k = n (got n={self.n}, k={self.k})")
        if not 0.0 < self.top_p <= 1.0 or self.top_k < 0 or self.max_tokens < 1:
            fail(
                f"need 0 < top_p <= 1, top_k >= 0, max_tokens >= 1 (got {self.top_p}, {self.top_k}, {self.max_tokens})"
            )
        if self.limit is not None and self.limit < 1:
            fail(f"limit must be a positive number of problems or null (got {self.limit})")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DatasetSpec:
    """Where the problems come from, and how hub fields map onto (id, problem, answer)."""

    hub_id: str
    split: str
    problem_field: str
    answer_field: str
    local_file: str  # file name in the local data directory (fields id / problem / answer)
    size: int  # problems in the full set; a loaded set of another size is an error
    hub_config: str | None = None
    id_field: str | None = None  # None: the row index
    answer_transform: str = "none"  # how the hub's answer field becomes an answer string


@dataclass(frozen=True)
class Benchmark:
    name: str
    version: int
    description: str
    dataset: DatasetSpec
    protocol: Protocol = field(default_factory=Protocol)
    smoke: dict[str, Any] = field(default_factory=dict)  # protocol overrides for a smoke-scale run
    source: str = ""  # where the set and its default protocol come from

    def resolve(self, overrides: dict[str, Any] | None = None, where: str = "") -> Protocol:
        """The default protocol with `overrides` on top, checked."""
        where = where or f"benchmark {self.name}"
        merged = {**self.protocol.as_dict(), **(overrides or {})}
        protocol = from_dict(Protocol, merged, where, f"eval.benchmarks.{self.name}")
        protocol.check(f"{where}: eval.benchmarks.{self.name}")
        return protocol


@dataclass(frozen=True)
class Item:
    """One benchmark problem."""

    id: str
    problem: str
    answer: str


@cache
def benchmarks() -> dict[str, Benchmark]:
    """Every benchmark definition, by name (read once per process)."""
    found: dict[str, Benchmark] = {}
    for path in sorted(BENCHMARK_DIR.glob("*.yaml")):
        raw = read_yaml(path)
        bench = from_dict(Benchmark, raw, str(path))
        if bench.name != path.stem:
            raise ConfigError(f"{path}: name {bench.name!r} must equal the file name {path.stem!r}")
        if bench.dataset.answer_transform not in ANSWER_TRANSFORMS:
            raise ConfigError(f"{path}: dataset.answer_transform must be one of {', '.join(ANSWER_TRANSFORMS)}")
        bench.resolve(where=str(path))
        bench.resolve(bench.smoke, where=f"{path} (smoke)")
        found[bench.name] = bench
    return found


def get_benchmark(name: str) -> Benchmark:
    known = benchmarks()
    if name not in known:
        raise ConfigError(unknown_name_message("benchmark", name, list(known)))
    return known[name]


def data_dir(configured: str | None) -> Path | None:
    """The local data directory: $REPRO_MATH_DATA, else the config's eval.data_dir, else None (the hub)."""
    chosen = os.environ.get(DATA_DIR_ENV) or configured
    if not chosen:
        return None
    path = Path(chosen).expanduser().resolve()
    if not path.is_dir():
        origin = f"${DATA_DIR_ENV}" if os.environ.get(DATA_DIR_ENV) else "eval.data_dir"
        raise ConfigError(
            f"{origin} = {chosen!r}: no such directory. Point it at a folder of benchmark JSONL files "
            "such as the shipped data/math (run from the project root), or unset it to load from the hub."
        )
    return path


def dataset_source(bench: Benchmark, local_dir: Path | None) -> str:
    if local_dir is not None:
        return str(local_dir / bench.dataset.local_file)
    spec = bench.dataset
    return f"hf:{spec.hub_id}" + (f"/{spec.hub_config}" if spec.hub_config else "") + f"@{spec.split}"


def load_items(bench: Benchmark, local_dir: Path | None, limit: int | None = None) -> list[Item]:
    """The benchmark's problems in their published order (the first `limit` if set)."""
    spec = bench.dataset
    if local_dir is not None:
        path = local_dir / spec.local_file
        if not path.is_file():
            raise ConfigError(
                f"benchmark {bench.name}: {path} is missing. The local data directory must hold {spec.local_file} "
                f"with fields id, problem, answer (see data/SOURCES.md)."
            )
        rows = parse_json_rows(path.read_text(encoding="utf-8"), str(path))
        items = [Item(str(r["id"]), str(r["problem"]), _answer_string(r["answer"])) for r in rows]
    else:
        items = _load_hub(bench)
    if len(items) != spec.size:
        raise ConfigError(
            f"benchmark {bench.name} (version {bench.version}) has {spec.size} problems, but "
            f"{dataset_source(bench, local_dir)} holds {len(items)}: a different copy of the set. "
            "Use the published set, or define a new benchmark for this one."
        )
    return items[:limit] if limit else items


def _load_hub(bench: Benchmark) -> list[Item]:
    from datasets import load_dataset

    spec = bench.dataset
    try:
        rows = load_dataset(spec.hub_id, spec.hub_config, split=spec.split)
    except Exception as err:  # the hub raises many types (connection, offline, missing file)
        raise ConfigError(
            f"benchmark {bench.name}: cannot load {spec.hub_id} from the hub ({type(err).__name__}: {err}). "
            f"Offline, set {DATA_DIR_ENV} (or eval.data_dir) to a directory with {spec.local_file}, "
            "e.g. the shipped data/math."
        ) from err
    items = []
    for i, row in enumerate(rows):
        answer = row[spec.answer_field]
        if spec.answer_transform == "after_hashes":  # GSM8K: the worked solution ends in "#### 72"
            answer = str(answer).rsplit("####", 1)[-1].replace(",", "")
        elif spec.answer_transform == "first_of_list":  # OlympiadBench: final_answer is a list
            answer = str(answer[0]).strip().strip("$")
        item_id = f"{bench.name}-{row[spec.id_field] if spec.id_field else i}"
        items.append(Item(item_id, str(row[spec.problem_field]), _answer_string(answer)))
    return items


def _answer_string(answer: Any) -> str:
    """Answers as strings; an integral float (AMC's 27.0) becomes '27'."""
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return str(answer).strip()


def items_hash(items: list[Item]) -> str:
    """Content hash of exactly the problems evaluated (ids, texts, answers, order)."""
    canonical = json.dumps([[i.id, i.problem, i.answer] for i in items], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def protocol_hash(bench: Benchmark, protocol: Protocol) -> str:
    payload = {"benchmark": bench.name, "version": bench.version, "protocol": protocol.as_dict()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:16]
