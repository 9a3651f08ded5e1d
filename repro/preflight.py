"""`repro check`: everything `train` would find wrong before it loads weights, found in seconds.

For a paper folder: paper.yaml and targets.yaml validate and carry the folder's name (a copied folder is told which
ids to rename), and no variant file is left out of paper.yaml. For each variant at a tier (under the run's
overrides, repro/overrides.py):
- the config validates (unknown keys, types, ranges, batch arithmetic: repro/config.py);
- every model it names exists: a local checkpoint folder with its config and tokenizer files, a well-formed hub id
  (cached, when HF_HUB_OFFLINE is set), or a `prepared:` base whose build config exists;
- the policy's config.json (no weights) fits the run (context length, ScaleRL's float32 head), its tokenizer has a
  chat template wherever a prompt template needs one, every template renders, and the stop tokens resolve
  (repro/models/stops.py);
- every local data file exists (and a prompt file's first row has the configured fields).
- every tracker `train.report_to` names has its client library installed (repro/trackers.py).

The DAG runs it once for every planned (paper, results folder) before its first job (Snakefile `onstart`), and
`train` runs the model and data part itself before loading weights.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from repro.schema import ConfigError

PREPARED = "prepared:"
# hub ids: "name" or "org/name" (letters, digits, '-', '_', '.'); anything else is meant as a local path
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
# the dotted keys of every field that names a model or a data source, whatever the kind
MODEL_KEYS = ("model.name_or_path", "train.teacher_model_name_or_path")
DATA_KEYS = ("data.prompts", "data.pairs", "data.dataset", "eval.prompts")


def check_papers(papers: list[str], tier: str, overrides: Any = None, sources: bool = True) -> list[str]:
    """Check every variant of each paper at `tier` (`sources`: its models and data too, else the configs alone);
    the lines to print. Raises ConfigError on the first problem."""
    from repro import workflow
    from repro.config import merged_paper_config, paper_where, resolve
    from repro.trl_vocabulary import differing_defaults

    lines = []
    checked_models: dict[str, list[str]] = {}
    for paper in papers:
        check_folder(Path("papers") / paper)
        differing: dict[str, list[str]] = {}  # line -> variants that leave that key at our default
        for variant in workflow.variants(paper):
            raw = merged_paper_config(Path("papers") / paper, tier, variant, overrides)
            cfg = resolve(raw, paper_where(paper, tier, variant, overrides))
            where = f"{paper} tier={tier} variant={variant}"
            notes = check_sources(cfg, where, checked_models) if sources else []
            lines.append(f"ok {where}" + (f" ({'; '.join(notes)})" if notes else ""))
            for line in differing_defaults(cfg, raw.get("train") or {}):
                differing.setdefault(line, []).append(variant)
        every = len(workflow.variants(paper))
        for line, where_unset in differing.items():
            scope = "" if len(where_unset) == every else f" [{', '.join(where_unset)}]"
            lines.append(f"note {paper}: unset, so this harness's default (TRL's differs):{scope} {line}")
    return lines


def check_folder(paper_dir: Path) -> None:
    """A paper folder's own files agree: paper.yaml and targets.yaml validate and name the folder (a copied folder
    keeps the original's ids until renamed), and every variant file is listed in paper.yaml or is the `base:` of
    one that is (the DAG and check run only listed variants: an unlisted file would be ignored without a word)."""
    from repro.config import base_names
    from repro.io import read_yaml
    from repro.report.targets import TargetsError, load_paper_meta, load_targets

    name = paper_dir.name
    try:
        meta = load_paper_meta(paper_dir)
        targets = load_targets(paper_dir / "targets.yaml", list(meta.variants))
    except TargetsError as err:
        raise ConfigError(str(err)) from None
    for file, key, value in (("paper.yaml", "id", meta.id), ("targets.yaml", "paper", targets.paper)):
        if value != name:
            raise ConfigError(
                f"{paper_dir / file}: {key}: {value!r} is not the folder's name {name!r} (a copied paper folder?); "
                f"set `id: {name}` in paper.yaml and `paper: {name}` in targets.yaml"
            )
    folder = paper_dir / "configs" / "variants"
    listed = set(meta.variants)
    bases = set()
    for variant in listed:
        data = read_yaml(folder / f"{variant}.yaml") if (folder / f"{variant}.yaml").is_file() else {}
        chain = data.get("base") if isinstance(data, dict) else None
        bases |= {Path(b).stem for b in base_names(chain, folder / f"{variant}.yaml")}
    unlisted = sorted(f.stem for f in folder.glob("*.yaml") if f.stem not in listed | bases)
    if unlisted:
        raise ConfigError(
            f"{paper_dir / 'paper.yaml'}: variants: {', '.join(unlisted)} (configs/variants/) not listed, so the DAG "
            "and check would never run them; add them to `variants:` (and to `ablation:` if they are a row of it), "
            "or delete the files"
        )


def check_sources(cfg: Any, where: str, seen: dict[str, list[str]] | None = None) -> list[str]:
    """Models, tokenizer, templates, stop tokens, report_to's libraries and data files of one resolved config; notes
    worth printing.
    `seen`: models already checked in this process (name -> notes), so a paper's variants load a tokenizer once."""
    from repro.trackers import require_installed

    require_installed(cfg.train.report_to, where)  # report_to's client libraries (`pip install wandb`, ...)
    seen = {} if seen is None else seen
    notes: list[str] = []
    for key in MODEL_KEYS:
        name = _get(cfg, key)
        if not name:
            continue
        policy = key == "model.name_or_path"
        cache_key = f"{name}|{_templates(cfg) if policy else ''}"
        if cache_key not in seen:
            seen[cache_key] = _check_model(cfg, key, str(name), where, policy)
        notes += seen[cache_key]
    if _get(cfg, "train.rollout_backend") == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ConfigError(
                f"{where}: train.use_vllm / train.rollout_backend: vllm is not installed here (pip install vllm, on a "
                "machine with a GPU); set train.use_vllm: false (or rollout_backend: hf) to sample with transformers"
            )
    for key in DATA_KEYS:
        source = _get(cfg, key)
        if isinstance(source, str) and source:
            _check_data(cfg, key, source, where)
    if getattr(cfg, "trainer", None) is None and not (cfg.eval.task or cfg.eval.prompts):  # online RL
        from repro.runs import held_out_problems

        held_out_problems(cfg, where)  # raises: the held-out problems are not named
    return notes


def _get(cfg: Any, dotted: str) -> Any:
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _templates(cfg: Any) -> list[str]:
    """Every prompt template the run renders: its data template and its benchmarks' protocols."""
    names = [str(t)] if (t := _get(cfg, "data.template")) else []
    benchmarks = _get(cfg, "eval.benchmarks") or {}
    if benchmarks:
        from repro.eval.benchmark import get_benchmark

        for bench, overrides in benchmarks.items():
            names.append(get_benchmark(bench).resolve(overrides or {}).template)
    return sorted(set(names))


def _check_model(cfg: Any, key: str, name: str, where: str, policy: bool) -> list[str]:
    """A ConfigError unless `name` can be loaded; for the policy, its tokenizer's templates and stop tokens."""
    if name.startswith(PREPARED):
        from repro.warm_starts import split_replica

        base = name[len(PREPARED) :]
        built = Path("results/base") / base / "prepare.json"
        stem, _ = split_replica(base)  # warm start k of a base is built from the base's config
        if not (Path("configs/base") / f"{stem}.yaml").is_file() and not built.is_file():
            raise ConfigError(
                f"{where}: {key}: {name!r} names no base model: configs/base/{base}.yaml does not exist "
                f"(bases: {', '.join(sorted(p.stem for p in Path('configs/base').glob('*.yaml')))})"
            )
        if not built.is_file():
            return []  # the DAG builds it first; its tokenizer is ours
        path = str(built.parent / "model")
    else:
        path = _locate(key, name, where)
    if not policy:
        return []
    _check_model_config(cfg, key, name, path, where)
    return _check_tokenizer(cfg, key, name, path, where)


def _check_model_config(cfg: Any, key: str, name: str, path: str, where: str) -> None:
    """What the checkpoint's config.json (no weights) says against the run's settings."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=bool(_get(cfg, "model.trust_remote_code")))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{where}: {key}: the config.json of {name!r} does not load: {err}") from None
    text = getattr(config, "text_config", None) or config
    tied = getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", False))
    if _get(cfg, "train.cast_lm_head_to_fp32") and _get(cfg, "model.dtype") != "float32" and tied:
        raise ConfigError(
            f"{where}: train.cast_lm_head_to_fp32: {name!r} ties its LM head to the input embeddings "
            "(tie_word_embeddings), and this harness casts only an untied head to float32 (TRL 1.16 also casts a "
            "tied one, casting the embeddings' output back: not done here); set train.cast_lm_head_to_fp32: false, "
            "model.dtype: float32, or use a checkpoint with an untied head"
        )
    papo = [k for k in ("perception_loss_weight", "der_loss_weight1", "der_loss_weight2") if _get(cfg, f"train.{k}")]
    if papo and getattr(config, "vision_config", None) is None:
        raise ConfigError(
            f"{where}: train.{papo[0]}: PAPO's losses need a vision-language policy whose prompts carry images, and "
            f"{name!r} is a text model (its config.json has no vision_config); set {', '.join(papo)} to 0 or use a "
            "vision-language checkpoint (e.g. prepared:smoke_vl with data synthetic:count_colour)"
        )
    context = getattr(text, "max_position_embeddings", None)
    prompt, completion = _get(cfg, "data.max_prompt_length"), _get(cfg, "train.max_completion_length")
    if context and prompt and completion and prompt + completion > context:
        raise ConfigError(
            f"{where}: train.max_completion_length: data.max_prompt_length + train.max_completion_length = "
            f"{prompt} + {completion} tokens exceed {name!r}'s context of {context} (max_position_embeddings); "
            "shorten them"
        )


def _locate(key: str, name: str, where: str) -> str:
    """A local checkpoint folder, or a hub id (cached when offline): what from_pretrained is given."""
    expanded = Path(os.path.expanduser(name))
    looks_local = name.startswith((".", "/", "~")) or name.strip("/").count("/") > 1 or not HUB_ID.match(name)
    if expanded.exists() or looks_local:
        if not expanded.is_dir():
            raise ConfigError(
                f"{where}: {key}: {name!r} is not a folder that exists; point it at a checkpoint folder (with "
                "config.json, the weights and the tokenizer files) or at a hub id such as Qwen/Qwen2.5-0.5B-Instruct"
            )
        if not (expanded / "config.json").is_file():
            raise ConfigError(
                f"{where}: {key}: {name!r} holds no config.json: not a transformers checkpoint folder "
                "(save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder))"
            )
        if not any((expanded / f).is_file() for f in TOKENIZER_FILES):
            raise ConfigError(
                f"{where}: {key}: {name!r} holds no tokenizer ({', '.join(TOKENIZER_FILES)}); save it beside the "
                "weights with tokenizer.save_pretrained(folder)"
            )
        return str(expanded)
    from repro.models.loading import hub_offline

    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise ConfigError(
                f"{where}: {key}: {name!r} is a hub id that is not in the local cache, and HF_HUB_OFFLINE is set; "
                "download it where the hub is reachable (huggingface-cli download) or point it at a local folder"
            )
    return name


def _check_tokenizer(cfg: Any, key: str, name: str, path: str, where: str) -> list[str]:
    """The tokenizer (no weights): each template renders, and the stop tokens resolve; returns a note on them."""
    from repro.data.templates import render
    from repro.models.loading import load_tokenizer
    from repro.models.stops import checkpoint_generation_config, stop_token_ids

    trust = bool(_get(cfg, "model.trust_remote_code"))
    try:
        tokenizer = load_tokenizer(path, trust)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{where}: {key}: the tokenizer of {name!r} does not load: {err}") from None
    for template in _templates(cfg):
        render(template, "What is 1 + 1?", tokenizer, where=f"{where}: {key}: {name!r}")
    stops = stop_token_ids(tokenizer, checkpoint_generation_config(path))
    shown = " ".join(tokenizer.convert_ids_to_tokens(i) for i in stops)
    return [f"stop tokens of {name}: {shown}"]


def _check_data(cfg: Any, key: str, source: str, where: str) -> None:
    """A local data file or folder must exist; a prompt file's first row must carry the configured fields."""
    if source.startswith(("synthetic:", PREPARED)):
        return
    from repro.overrides import unresolved_user_data

    if (wanted := unresolved_user_data(source)) is not None:
        raise ConfigError(
            f"{where}: {key}: {source!r} is a file you supply (too large to ship; data/SOURCES.md says where each "
            f"comes from): pass data_dir=<folder holding {wanted}> (snakemake --config data_dir=..., or --data-dir), "
            f"or --set {key}=<your file or hub dataset id>"
        )
    path = Path(source).expanduser()
    local = source.startswith((".", "/", "~")) or path.suffix in (".jsonl", ".json", ".parquet", ".gz", ".csv")
    if not local and not path.exists():
        return  # a hub dataset id: `datasets` fetches it (or finds it in its cache) when the run starts
    if not path.exists():
        raise ConfigError(
            f"{where}: {key}: {source!r} does not exist; fix the path (data_dir=, data/SOURCES.md) "
            f"or --set {key}=<your file>"
        )
    if key in ("data.prompts", "eval.prompts") and path.is_file() and path.suffix in (".jsonl", ".json", ".parquet"):
        from repro.data.prompts import load_prompts

        section = cfg.eval if key == "eval.prompts" else cfg.data
        fields, named_in = {}, "data"
        for field in ("problem_field", "answer_field"):  # eval.<field> falls back to data.<field> when unset
            if own := getattr(section, field, None):
                fields[field], named_in = own, key.split(".")[0]
            elif hasattr(cfg.data, field):
                fields[field] = getattr(cfg.data, field)
        try:
            load_prompts(source, split=getattr(section, "split", "train"), limit=1, fields_key=named_in, **fields)
        except ConfigError as err:
            raise ConfigError(f"{where}: {key}: {err}") from None
