"""Bad input, fuzzed: every field of every paper's smoke config, mutated, is either accepted or refused with a
ConfigError that says where; never a crash of another kind. Likewise targets.yaml and data rows."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from repro.config import load_paper_config, merged_paper_config, resolve
from repro.data.preference_loader import _read_file
from repro.data.prompts import load_prompts
from repro.report.targets import TargetsError, load_paper_meta, load_targets
from repro.schema import ConfigError
from repro.workflow import default_variant

pytestmark = pytest.mark.faults

PAPERS = Path(__file__).resolve().parents[1] / "papers"
ALL_PAPERS = sorted(p.parent.name for p in PAPERS.glob("*/paper.yaml"))
# values of the wrong type or out of any sensible range, tried on every field
MUTATIONS: list[Any] = [-1, 0, -1e9, 1e12, "abc", "", [], ["x"], {}, {"a": 1}, None, True, 0.5]


def _leaves(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _with(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of `tree` (mappings and lists) with the value at `path` replaced."""
    out = copy.deepcopy(tree)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _raw(paper: str) -> dict[str, Any]:
    raw = merged_paper_config(PAPERS / paper, "smoke", default_variant(paper))
    raw.pop("base", None)
    return raw


@pytest.mark.parametrize("paper", ALL_PAPERS)
def test_every_field_mutated_is_accepted_or_refused_with_a_config_error(paper: str) -> None:
    raw, where = _raw(paper), f"fuzz {paper}"
    tried = refused = 0
    for path, _ in _leaves(raw):
        for value in MUTATIONS:
            tried += 1
            try:
                resolve(_with(raw, path, value), where)
            except ConfigError as err:
                refused += 1
                assert str(err).startswith(where), str(err)  # says which config
    assert tried > 100 and refused > tried // 3  # most of these values are nonsense for most fields


@pytest.mark.parametrize("paper", ALL_PAPERS)
def test_an_unknown_key_at_any_level_is_refused_by_name(paper: str) -> None:
    raw = _raw(paper)
    sections = [()] + [path[:-1] for path, _ in _leaves(raw) if len(path) > 1]
    for section in sorted(set(sections)):
        node = copy.deepcopy(raw)
        target = node
        for key in section:
            target = target[key]
        target["lerning_rate_typo"] = 1
        dotted = ".".join((*section, "lerning_rate_typo"))
        if section and section[0] == "rewards" or section[-1:] == ("rollout_options",):
            dotted = "lerning_rate_typo"  # free-form parameter maps name the parameter
        with pytest.raises(ConfigError, match=dotted):
            resolve(node, paper)


OUT_OF_RANGE = [  # (paper, field, value, what the message must say)
    ("dapo", "train.gradient_accumulation_steps", 0, "at least 1"),
    ("rloo", "train.num_generations", 0, "at least 1"),
    ("dapo", "train.learning_rate", -1e-4, "positive"),
    ("dapo", "train.adam_beta2", 1.0, r"in \[0, 1\)"),
    ("dapo", "train.max_grad_norm", 0.0, "positive"),
    ("dapo", "train.steps_per_generation", 0, "at least 1"),
    ("dapo", "train.temperature", 0.0, "positive"),
    ("dapo", "eval.top_p", 0.0, r"in \(0, 1\]"),
    ("dapo", "seeds", [], "at least one seed"),
    ("dapo", "resources.threads", 0, "at least 1"),
    ("dpo", "train.beta", -0.1, "beta"),
    ("dpo", "train.weight_decay", -0.1, "at least 0"),
    ("dft", "train.warmup_ratio", 1.5, r"in \[0, 1\)"),
    ("tis", "train.rollout_options.noise_std", "loud", "must be a number"),
    ("dapo", "rewards.soft_overlong_punishment.weight", "heavy", "must be a number"),
    ("dapo", "rewards.soft_overlong_punishment.cache", 12, "L_cache < L_max"),
]


@pytest.mark.parametrize("paper, field, value, message", OUT_OF_RANGE)
def test_out_of_range_values_are_refused_with_the_range(paper: str, field: str, value: Any, message: str) -> None:
    raw = _raw(paper)
    path = tuple(field.split("."))
    with pytest.raises(ConfigError, match=message) as err:
        resolve(_with(raw, path, value), paper)
    assert path[-1] in str(err.value)


@pytest.mark.parametrize(
    "paper, train, message",
    [
        ("dapo", {"per_device_train_batch_size": 7}, "must be divisible by num_generations=8"),
        ("dapo", {"steps_per_generation": 3, "gradient_accumulation_steps": 2}, "must divide one another"),
        ("gfpo", {"gfpo_retain": 32}, "need 2 <= k <= G"),
    ],
)
def test_impossible_batch_arithmetic_is_refused_with_the_fix(paper: str, train: dict[str, Any], message: str) -> None:
    raw = _raw(paper)
    raw["train"] = {**raw["train"], **train}
    with pytest.raises(ConfigError, match=message):
        resolve(raw, paper)


def test_every_paper_config_resolves_unmutated() -> None:  # the fuzz's starting points are valid
    for paper in ALL_PAPERS:
        load_paper_config(PAPERS / paper, "smoke", default_variant(paper))


# --------------------------------------------------------------------------- targets.yaml and data rows


@pytest.mark.parametrize("paper", ["dapo", "dpo", "dft", "centered_rm"])
def test_every_targets_field_mutated_is_accepted_or_refused_with_a_targets_error(paper: str, tmp_path: Path) -> None:
    variants = load_paper_meta(PAPERS / paper).variants
    source = yaml.safe_load((PAPERS / paper / "targets.yaml").read_text(encoding="utf-8"))
    rng = random.Random(0)
    paths = list(_targets_leaves(source))
    refused = 0
    for path in paths:
        value = rng.choice(MUTATIONS)
        broken = tmp_path / "targets.yaml"
        broken.write_text(yaml.safe_dump(_with(source, path, value)), encoding="utf-8")
        try:
            load_targets(broken, variants)
        except TargetsError as err:
            refused += 1
            assert str(broken) in str(err)
    assert len(paths) > 10 and refused > len(paths) // 3


def _targets_leaves(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _targets_leaves(value, (*prefix, key))
    elif isinstance(node, list) and node:
        for i, value in enumerate(node):
            yield from _targets_leaves(value, (*prefix, i))
    else:
        yield prefix


@pytest.mark.parametrize(
    "text, message",
    [
        ("paper: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("", "expected a mapping"),
    ],
)
def test_a_malformed_targets_file_is_refused(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TargetsError, match=message):
        load_targets(path, ["dapo"])


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"problem": "1+1", "answer": "2"}\n{"problem": "2+2", "answer": \n', r"rows\.jsonl:2: not valid JSON"),
        ('{"problem": "1+1", "answer": "2"}\n[1, 2]\n', r"rows\.jsonl:2: a data row must be a JSON object"),
        ('{"problem": "1+1"}\n', "row 0 has no field 'answer'"),
    ],
)
def test_malformed_prompt_rows_name_the_file_and_line(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_prompts(str(path))


def test_malformed_preference_rows_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pairs\.jsonl:2: not valid JSON"):
        _read_file(path)


def test_a_missing_prompt_file_is_refused_before_a_model_is_loaded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: str
) -> None:
    from repro import runs

    def no_model(*_: Any, **__: Any) -> None:
        raise AssertionError("the model was loaded before the prompt file was checked")

    raw = _raw("dapo")
    raw["data"]["prompts"] = str(tmp_path / "missing" / "prompts.jsonl")
    raw["model"]["name_or_path"] = tiny_model_dir
    cfg = resolve(raw, "dapo")
    monkeypatch.setattr("repro.models.loading.load_policy", no_model)
    monkeypatch.setattr(runs, "load_paper_config", lambda *_: cfg)
    with pytest.raises(ConfigError, match=r"data\.prompts: '.*prompts\.jsonl' does not exist"):
        runs.train_run("dapo", "smoke", "dapo", 0, tmp_path / "run")
    raw["model"]["name_or_path"] = str(tmp_path / "some-model")  # and a model folder that does not exist
    cfg = resolve(raw, "dapo")
    with pytest.raises(ConfigError, match=r"model\.name_or_path: '.*some-model' is not a folder that exists"):
        runs.train_run("dapo", "smoke", "dapo", 0, tmp_path / "run")


def test_files_are_read_only_through_safe_loaders_and_remote_code_stays_off() -> None:
    """A scan of the package source: YAML through a safe loader, torch.load with weights_only=True, and
    trust_remote_code taken from the config, never switched on in code."""
    import re

    source = Path(__file__).resolve().parents[1] / "repro"
    for path in source.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():  # each call sits on one line in this code base
            if "yaml.load(" in line:
                assert "Loader=_LOADER" in line or "SafeLoader" in line, (path, line)
            if "torch.load(" in line:
                assert "weights_only=True" in line, (path, line)
        assert "yaml.unsafe_load" not in text and "yaml.full_load" not in text, path
        assert not re.search(r"trust_remote_code\s*=\s*True", text), path
    assert re.search(
        r"_LOADER = getattr\(yaml, \"CSafeLoader\", yaml\.SafeLoader\)",
        (source / "report" / "staleness.py").read_text(),
    )


def test_a_missing_sft_data_file_is_refused_before_the_model_loads(
    tiny_model_dir: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from repro.runs_sft import train_sft_run
    from repro.sft_config import resolve_sft

    def no_model(*_: Any, **__: Any) -> None:
        raise AssertionError("the model was loaded before the SFT data was read")

    monkeypatch.setattr("repro.models.loading.load_policy", no_model)
    raw = {"trainer": "sft", "model": {"name_or_path": tiny_model_dir},
           "data": {"dataset": str(tmp_path / "missing.jsonl")}, "train": {"max_steps": 1, "learning_rate": 1e-4}}  # fmt: skip
    cfg = resolve_sft(raw, "sft fuzz")
    with pytest.raises(ConfigError, match="missing.jsonl"):
        train_sft_run(cfg, "dft", "smoke", "dft", 0, tmp_path / "run", tiny_model_dir)
