"""What a paper says, loaded strictly: `paper.yaml` (meta, ablation rows, settings) and
`targets.yaml` (published numbers and claims).

Unknown keys, missing keys, wrong types and names that do not exist (variants, tests, reducers)
are rejected at load time with a message naming the file, the key path and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from repro.io import read_yaml
from repro.registry import unknown_name_message
from repro.report.claims import DIRECTIONS, REDUCERS, TESTS, THRESHOLD_OPS, ClaimParams

TIERS = ("smoke", "small", "paper")
UNITS = ("percent", "fraction", "score", "ratio", "tokens", "steps", "gpu_hours")
METRIC_FILES = ("metrics", "eval")
CLAIM_KINDS = ("mechanism", "premise")  # DESIGN.md "Claims": only mechanism claims can read "reproduced"
BASE_MODEL = "base_model"  # claim control meaning the warm-start scores in eval.json "base"


class TargetsError(ValueError):
    """targets.yaml or paper.yaml does not follow the schema; the message says where and how to fix."""


# --- strict checking of plain YAML mappings ------------------------------------------------


@dataclass(frozen=True)
class Where:
    """A file and a key path inside it, printed as `file: targets[0].protocol.k`."""

    file: str
    path: str = ""

    def key(self, name: str) -> Where:
        return Where(self.file, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> Where:
        return Where(self.file, f"{self.path}[{i}]")

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(top level)'}"


@dataclass(frozen=True)
class FieldSpec:
    """One allowed key: accepted types, whether it is required, its default and allowed values."""

    types: tuple[type, ...]
    required: bool = True
    default: Any = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False


TYPE_WORDS = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    list: "a list",
    dict: "a mapping",
}


def check_fields(raw: Any, spec: dict[str, FieldSpec], where: Where) -> dict[str, Any]:
    """Validate a mapping against `spec`; return it with defaults filled in."""
    if not isinstance(raw, dict):
        raise TargetsError(f"{where}: expected a mapping with keys {', '.join(spec)}, got {_kind(raw)}")
    for key in raw:
        if key not in spec:
            raise TargetsError(
                f"{where.key(str(key))}: {unknown_name_message('key', str(key), list(spec))} Remove or rename it."
            )
    out: dict[str, Any] = {}
    for key, fs in spec.items():
        if key not in raw:
            if fs.required:
                raise TargetsError(f"{where}: missing required key `{key}` ({_expected(fs)})")
            out[key] = list(fs.default) if isinstance(fs.default, list) else fs.default
            continue
        value = raw[key]
        if value is None and (fs.nullable or not fs.required):
            out[key] = None if fs.nullable else fs.default
            continue
        if not _has_type(value, fs.types):
            raise TargetsError(f"{where.key(key)}: expected {_expected(fs)}, got {_kind(value)} {value!r}")
        if fs.choices is not None:
            check_name(value, list(fs.choices), key, where.key(key))
        out[key] = value
    return out


def check_name(name: str, valid: list[str], kind: str, where: Where) -> None:
    """Reject a name that is not in `valid`, listing the closest ones."""
    if name not in valid:
        raise TargetsError(f"{where}: {unknown_name_message(kind, name, valid)}")


def _has_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _expected(fs: FieldSpec) -> str:
    types = [t for t in fs.types if not (t is int and float in fs.types)]  # ints are numbers
    words = " or ".join(TYPE_WORDS.get(t, t.__name__) for t in types)
    return f"{words}, one of {', '.join(fs.choices)}" if fs.choices else words


def _kind(value: Any) -> str:
    return {type(None): "null", bool: "true/false"}.get(type(value), type(value).__name__)


# --- dataclasses ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalProtocol:
    """The whole evaluation protocol of a published number (DESIGN.md: pin it, show deviations)."""

    metric: str  # avg@k, pass@k, maj@k, greedy, win_rate, ...
    k: int | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    grader: str | None = None
    grader_version: str | None = None
    template: str | None = None
    dataset: str | None = None
    dataset_hash: str | None = None
    eval_library: str | None = None
    eval_library_version: str | None = None
    checkpoint_selection: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set, in declaration order."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class SourceRef:
    """Where a number comes from: an arXiv version (or a URL) and a table/figure/section."""

    arxiv: str | None = None
    url: str | None = None
    table: str | None = None
    figure: str | None = None
    section: str | None = None
    note: str | None = None
    unverified: bool = False  # not opened in its source: shown as such, `note` says where it was seen

    def describe(self) -> str:
        section = self.section and (f"§{self.section}" if self.section[:1].isdigit() else self.section)  # "abstract"
        where = ", ".join(x for x in (self.table, self.figure, section) if x)
        origin = f"arXiv {self.arxiv}" if self.arxiv else (self.url or "")
        text = ", ".join(x for x in (where, origin) if x)
        return f"UNVERIFIED ({self.note}); {text}" if self.unverified else text


@dataclass(frozen=True)
class Baseline:
    name: str
    value: float


@dataclass(frozen=True)
class Target:
    """An absolute published number, compared only at the tier that matches the paper's setting."""

    id: str
    variant: str
    model: str
    benchmark: str
    protocol: EvalProtocol
    value: float
    unit: str
    source: SourceRef
    tolerance: float
    tier: str
    description: str = ""
    baseline: Baseline | None = None
    higher_is_better: bool = True


@dataclass(frozen=True)
class ClaimMetric:
    """Which number per seed a claim tests: a reduced metrics.jsonl curve or an eval.json key."""

    file: str  # metrics | eval
    name: str  # metric key; for eval a (dotted) key of eval.json
    reduce: str | None = None  # metrics only
    frac: float = 0.5  # mean_last only

    def describe(self) -> str:
        if self.file == "eval":
            return f"eval.json {self.name}"
        how = {
            "mean_last": f"mean over the last {self.frac:.0%} of steps",
            "last": "last step",
            "max": "max over steps",
            "min": "min over steps",
            "mean": "mean over steps",
            "growth": f"mean of the last {self.frac:.0%} of steps − mean of the first {self.frac:.0%}",
            "mean_first": f"mean over the first {self.frac:.0%} of steps",
            "fluctuation": f"std of step-to-step changes over the last {self.frac:.0%} of steps",
            "sigmoid_asymptote": f"fitted sigmoid asymptote A over steps, first {self.frac:.0%} as warm-up",
        }.get(self.reduce or "", self.reduce or "")
        return f"{self.name} ({how})"


@dataclass(frozen=True)
class Claim:
    """A directional or mechanistic statement checked at every tier with a test over seeds."""

    id: str
    statement: str
    source: str
    treatment: str
    control: str | None  # a variant, BASE_MODEL, or None (max_equals only)
    metric: ClaimMetric
    test: str
    direction: str | None = "greater"
    alpha: float = 0.05
    min_effect: float = 0.0
    min_seeds: int = 3
    threshold: tuple[str, float] | None = None
    control_metric: ClaimMetric | None = None  # the control's number, when it is another metric (same runs)
    kind: str = "mechanism"  # mechanism | premise (CLAIM_KINDS)
    deterministic: bool = False  # zero spread on both sides compares exactly only when declared
    requires: tuple[str, ...] | None = None  # premises gating a mechanism claim; None: every premise of the paper
    paired_with: str | None = None  # a non-inferiority mechanism claim's discriminating partner
    margin_of_control_gain: float | None = None  # non-inferiority margin as a share of the control's own gain

    def params(self) -> ClaimParams:
        return ClaimParams(
            self.direction, self.alpha, self.min_effect, self.min_seeds, self.threshold, self.deterministic
        )


@dataclass(frozen=True)
class Reference:
    """A published number the harness does not run (another benchmark, a judge, a fitted quantity)."""

    id: str
    model: str
    metric: str
    value: str  # as published: "0.61", "46–71 %", "77.9"
    source: SourceRef
    why_not_run: str
    baseline: str = ""


@dataclass(frozen=True)
class Targets:
    paper: str
    targets: tuple[Target, ...]
    claims: tuple[Claim, ...]
    path: Path
    references: tuple[Reference, ...] = ()
    no_mechanism_test: dict[str, str] = field(default_factory=dict)  # tier -> why it cannot test the mechanism


@dataclass(frozen=True)
class AblationRow:
    variant: str
    label: str
    published: float | None


@dataclass(frozen=True)
class Ablation:
    """The paper's ablation table; ours is `ours_metric` of eval.json (×100 when unit is percent)."""

    title: str
    source: str
    metric: str
    rows: tuple[AblationRow, ...]
    unit: str = "percent"
    ours_metric: str = "sampled_accuracy"


@dataclass(frozen=True)
class ScalingFitSpec:
    """ScaleRL's sigmoid fit of a metrics.jsonl curve against optimizer steps (repro/report/scaling_fit.py)."""

    metric: str  # e.g. accuracy
    source: str
    warmup_frac: float = 0.05  # leading share of steps left out of the fit; R0 is their mean


@dataclass(frozen=True)
class SettingRow:
    key: str  # dotted key path into config.resolved.yaml
    paper: Any
    source: str


@dataclass(frozen=True)
class PaperMeta:
    id: str
    title: str
    family: str
    variants: tuple[str, ...]
    default_variant: str
    arxiv: str | None = None
    url: str | None = None
    ablation: Ablation | None = None
    settings_table: tuple[SettingRow, ...] = field(default_factory=tuple)
    path: Path | None = None
    scaling_fit: ScalingFitSpec | None = None

    @property
    def link(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else (self.url or "")


# --- schemas -------------------------------------------------------------------------------

NUM = (int, float)
OPT_STR = FieldSpec((str,), required=False)

PROTOCOL_SPEC = {
    "metric": FieldSpec((str,)),
    "k": FieldSpec((int,), required=False),
    "n": FieldSpec((int,), required=False),
    "temperature": FieldSpec(NUM, required=False),
    "top_p": FieldSpec(NUM, required=False),
    "top_k": FieldSpec((int,), required=False),
    "max_tokens": FieldSpec((int,), required=False),
    **{
        k: OPT_STR
        for k in (
            "grader",
            "grader_version",
            "template",
            "dataset",
            "dataset_hash",
            "eval_library",
            "eval_library_version",
            "checkpoint_selection",
        )
    },
}
SOURCE_SPEC = {
    **{k: OPT_STR for k in ("arxiv", "url", "table", "figure", "section", "note")},
    "unverified": FieldSpec((bool,), required=False, default=False),
}
BASELINE_SPEC = {"name": FieldSpec((str,)), "value": FieldSpec(NUM)}
TARGET_SPEC = {
    "id": FieldSpec((str,)),
    "variant": FieldSpec((str,)),
    "description": FieldSpec((str,), required=False, default=""),
    "model": FieldSpec((str,)),
    "benchmark": FieldSpec((str,)),
    "protocol": FieldSpec((dict,)),
    "value": FieldSpec(NUM),
    "unit": FieldSpec((str,), choices=UNITS),
    "baseline": FieldSpec((dict,), required=False),
    "source": FieldSpec((dict,)),
    "tolerance": FieldSpec(NUM),
    "tier": FieldSpec((str,), choices=TIERS),
    "higher_is_better": FieldSpec((bool,), required=False, default=True),
}
METRIC_SPEC = {
    "file": FieldSpec((str,), choices=METRIC_FILES),
    "name": FieldSpec((str,)),
    "reduce": FieldSpec((str,), required=False),
    "frac": FieldSpec(NUM, required=False, default=0.5),
}
THRESHOLD_SPEC = {"op": FieldSpec((str,), choices=tuple(THRESHOLD_OPS)), "value": FieldSpec(NUM)}
CLAIM_SPEC = {
    "id": FieldSpec((str,)),
    "statement": FieldSpec((str,)),
    "source": FieldSpec((str,)),
    "treatment": FieldSpec((str,)),
    "control": FieldSpec((str,), required=False),
    "metric": FieldSpec((dict,)),
    "direction": FieldSpec((str,), required=False, choices=DIRECTIONS),
    "test": FieldSpec((str,)),
    "alpha": FieldSpec(NUM, required=False, default=0.05),
    "min_effect": FieldSpec(NUM, required=False, default=0.0),
    "min_seeds": FieldSpec((int,), required=False, default=3),
    "threshold": FieldSpec((dict,), required=False),
    "control_metric": FieldSpec((dict,), required=False),
    "kind": FieldSpec((str,), choices=CLAIM_KINDS),
    "deterministic": FieldSpec((bool,), required=False, default=False),
    "requires": FieldSpec((list,), required=False),
    "paired_with": FieldSpec((str,), required=False),
    "margin_of_control_gain": FieldSpec(NUM, required=False),
}
REFERENCE_SPEC = {
    "id": FieldSpec((str,)),
    "model": FieldSpec((str,)),
    "metric": FieldSpec((str,)),
    "value": FieldSpec((str, int, float)),
    "source": FieldSpec((dict,)),
    "why_not_run": FieldSpec((str,)),
    "baseline": FieldSpec((str,), required=False, default=""),
}
TARGETS_FILE_SPEC = {
    "paper": FieldSpec((str,)),
    "targets": FieldSpec((list,)),
    "claims": FieldSpec((list,)),
    "references": FieldSpec((list,), required=False, default=[]),
    "no_mechanism_test": FieldSpec((dict,), required=False),
}
ABLATION_ROW_SPEC = {
    "variant": FieldSpec((str,)),
    "label": FieldSpec((str,)),
    "published": FieldSpec(NUM, nullable=True),
}
ABLATION_SPEC = {
    "title": FieldSpec((str,)),
    "source": FieldSpec((str,)),
    "metric": FieldSpec((str,)),
    "rows": FieldSpec((list,)),
    "unit": FieldSpec((str,), required=False, default="percent", choices=("percent", "fraction")),
    "ours_metric": FieldSpec((str,), required=False, default="sampled_accuracy"),
}
SETTING_SPEC = {
    "key": FieldSpec((str,)),
    "paper": FieldSpec((str, int, float, bool, list, dict), nullable=True),
    "source": FieldSpec((str,)),
}
PAPER_SPEC = {
    "id": FieldSpec((str,)),
    "title": FieldSpec((str,)),
    "arxiv": FieldSpec((str,), required=False),
    "url": FieldSpec((str,), required=False),
    "family": FieldSpec((str,)),
    "variants": FieldSpec((list,)),
    "default_variant": FieldSpec((str,)),
    "ablation": FieldSpec((dict,), required=False),
    "settings_table": FieldSpec((list,), required=False, default=[]),
    "scaling_fit": FieldSpec((dict,), required=False),
}
SCALING_FIT_SPEC = {
    "metric": FieldSpec((str,)),
    "source": FieldSpec((str,)),
    "warmup_frac": FieldSpec(NUM, required=False, default=0.05),
}


# --- loaders -------------------------------------------------------------------------------


def load_targets(path: str | os.PathLike[str], variants: list[str] | tuple[str, ...]) -> Targets:
    """Load and validate targets.yaml; variant names are checked against `variants` (paper.yaml)."""
    path = Path(path)
    raw = _read_yaml(path)
    where = Where(str(path))
    top = check_fields(raw, TARGETS_FILE_SPEC, where)
    targets = tuple(
        _target(item, where.key("targets").index(i), list(variants)) for i, item in enumerate(top["targets"])
    )
    claims = tuple(_claim(item, where.key("claims").index(i), list(variants)) for i, item in enumerate(top["claims"]))
    references = tuple(_reference(item, where.key("references").index(i)) for i, item in enumerate(top["references"]))
    _unique_ids([t.id for t in targets], where.key("targets"))
    _unique_ids([c.id for c in claims], where.key("claims"))
    _unique_ids([r.id for r in references], where.key("references"))
    no_test = _no_mechanism_test(top.get("no_mechanism_test"), where.key("no_mechanism_test"))
    _check_claim_links(claims, no_test, where)
    return Targets(top["paper"], targets, claims, path, references, no_test)


def load_paper_meta(paper_dir: str | os.PathLike[str]) -> PaperMeta:
    """Load and validate `<paper_dir>/paper.yaml`."""
    path = Path(paper_dir) / "paper.yaml"
    where = Where(str(path))
    top = check_fields(_read_yaml(path), PAPER_SPEC, where)
    if top.get("arxiv") is None and top.get("url") is None:
        raise TargetsError(f"{path}: set `arxiv` (e.g. 2503.14476v1) or, for a blog post, `url`")
    variants = _string_list(top["variants"], where.key("variants"))
    if not variants:
        raise TargetsError(f"{where.key('variants')}: list at least one variant")
    _unique_ids(variants, where.key("variants"))
    check_name(top["default_variant"], variants, "variant", where.key("default_variant"))
    ablation = None
    if top.get("ablation") is not None:
        ablation = _ablation(top["ablation"], where.key("ablation"), variants)
    settings = tuple(
        SettingRow(**check_fields(item, SETTING_SPEC, where.key("settings_table").index(i)))
        for i, item in enumerate(top["settings_table"])
    )
    scaling_fit = None
    if top.get("scaling_fit") is not None:
        scaling_fit = ScalingFitSpec(**check_fields(top["scaling_fit"], SCALING_FIT_SPEC, where.key("scaling_fit")))
        if not 0 <= scaling_fit.warmup_frac < 0.5:
            raise TargetsError(f"{where.key('scaling_fit').key('warmup_frac')}: must lie in [0, 0.5)")
    return PaperMeta(
        id=top["id"],
        title=top["title"],
        family=top["family"],
        variants=tuple(variants),
        default_variant=top["default_variant"],
        arxiv=top.get("arxiv"),
        url=top.get("url"),
        ablation=ablation,
        settings_table=settings,
        path=Path(paper_dir),
        scaling_fit=scaling_fit,
    )


# --- pieces --------------------------------------------------------------------------------


def _target(raw: Any, where: Where, variants: list[str]) -> Target:
    f = check_fields(raw, TARGET_SPEC, where)
    check_name(f["variant"], variants, "variant", where.key("variant"))
    from repro.eval.benchmark import benchmarks  # YAML only: cheap

    known = list(benchmarks())
    if f["benchmark"] not in known:
        raise TargetsError(
            f"{where.key('benchmark')}: {unknown_name_message('benchmark', f['benchmark'], known)} "
            "A new benchmark is a YAML file in repro/eval/benchmarks/."
        )
    protocol = EvalProtocol(**check_fields(f["protocol"], PROTOCOL_SPEC, where.key("protocol")))
    source = _source(f["source"], where.key("source"))
    baseline = None
    if f.get("baseline") is not None:
        baseline = Baseline(**check_fields(f["baseline"], BASELINE_SPEC, where.key("baseline")))
    if f["tolerance"] < 0:
        raise TargetsError(f"{where.key('tolerance')}: must be ≥ 0 (absolute, in the target's unit)")
    return Target(
        id=f["id"],
        variant=f["variant"],
        model=f["model"],
        benchmark=f["benchmark"],
        protocol=protocol,
        value=float(f["value"]),
        unit=f["unit"],
        source=source,
        tolerance=float(f["tolerance"]),
        tier=f["tier"],
        description=f["description"],
        baseline=baseline,
        higher_is_better=f["higher_is_better"],
    )


def _reference(raw: Any, where: Where) -> Reference:
    f = check_fields(raw, REFERENCE_SPEC, where)
    return Reference(**{**f, "value": str(f["value"]), "source": _source(f["source"], where.key("source"))})


def _source(raw: Any, where: Where) -> SourceRef:
    ref = SourceRef(**check_fields(raw, SOURCE_SPEC, where))
    if not (ref.arxiv or ref.url):
        raise TargetsError(f"{where}: name the source: `arxiv` (with version, e.g. 2503.14476v1) or `url`")
    if ref.unverified:
        if not ref.note:
            raise TargetsError(f"{where}: an unverified number needs `note:` saying where it was seen")
        return ref
    if not (ref.table or ref.figure or ref.section):
        raise TargetsError(f"{where}: say where in the source: `table`, `figure` or `section`")
    return ref


def _claim(raw: Any, where: Where, variants: list[str]) -> Claim:
    f = check_fields(raw, CLAIM_SPEC, where)
    check_name(f["test"], TESTS.names(), "claim test", where.key("test"))
    check_name(f["treatment"], variants, "variant", where.key("treatment"))
    control = f.get("control")
    is_threshold = f["test"] == "max_equals"
    if control is not None and control != BASE_MODEL:
        check_name(control, [*variants, BASE_MODEL], "control", where.key("control"))
    if control is None and not is_threshold:
        raise TargetsError(f"{where}: missing key `control` (a variant or `{BASE_MODEL}`)")
    direction = f.get("direction")
    if direction is None and not is_threshold:
        raise TargetsError(f"{where}: missing key `direction` (one of {', '.join(DIRECTIONS)})")
    metric = _claim_metric(f["metric"], where.key("metric"))
    control_metric = None
    if f.get("control_metric") is not None:
        control_metric = _claim_metric(f["control_metric"], where.key("control_metric"))
        if control in (None, BASE_MODEL) or is_threshold:
            raise TargetsError(f"{where.key('control_metric')}: needs a variant as `control` and a two-group test")
    elif control == f["treatment"]:
        raise TargetsError(f"{where.key('control')}: the treatment itself is a control only with `control_metric`")
    if control == BASE_MODEL and metric.file != "eval":
        raise TargetsError(f"{where.key('control')}: `{BASE_MODEL}` has only eval.json scores; set metric.file: eval")
    threshold = None
    if is_threshold:
        if f.get("threshold") is None:
            raise TargetsError(f"{where}: test max_equals needs `threshold: {{op: '==', value: 0}}`")
        t = check_fields(f["threshold"], THRESHOLD_SPEC, where.key("threshold"))
        threshold = (t["op"], float(t["value"]))
    elif f.get("threshold") is not None:
        raise TargetsError(f"{where.key('threshold')}: only test max_equals takes a threshold")
    if not 0 < f["alpha"] < 1:
        raise TargetsError(f"{where.key('alpha')}: must lie in (0, 1), e.g. 0.05")
    min_seeds_floor = 1 if is_threshold else 2
    if f["min_seeds"] < min_seeds_floor:
        raise TargetsError(f"{where.key('min_seeds')}: must be ≥ {min_seeds_floor} for test {f['test']}")
    _check_kind(f, control, metric, where)
    requires = f.get("requires")
    if requires is not None:
        requires = tuple(_string_list(requires, where.key("requires")))
    margin_share = f.get("margin_of_control_gain")
    return Claim(
        id=f["id"],
        statement=f["statement"],
        source=f["source"],
        treatment=f["treatment"],
        control=control,
        metric=metric,
        test=f["test"],
        direction=direction,
        alpha=float(f["alpha"]),
        min_effect=float(f["min_effect"]),
        min_seeds=f["min_seeds"],
        threshold=threshold,
        control_metric=control_metric,
        kind=f["kind"],
        deterministic=f["deterministic"],
        requires=requires,
        paired_with=f.get("paired_with"),
        margin_of_control_gain=None if margin_share is None else float(margin_share),
    )


def _check_kind(f: dict[str, Any], control: str | None, metric: ClaimMetric, where: Where) -> None:
    """A mechanism claim tests the method against a control variant that lacks it (its placebo needs one); a
    non-inferiority margin is a share (< ½) of the control's own gain over the starting model."""
    mechanism = f["kind"] == "mechanism"
    if mechanism and control in (None, BASE_MODEL):
        raise TargetsError(
            f"{where.key('control')}: a mechanism claim needs a control variant that lacks the mechanism (its "
            f"placebo is the control's values in the treatment's place); a comparison with `{BASE_MODEL}` or a "
            "bare threshold is a `kind: premise` (training moves the policy, the task has headroom)"
        )
    if not mechanism:
        for key in ("requires", "paired_with"):
            if f.get(key) is not None:
                raise TargetsError(f"{where.key(key)}: only a mechanism claim takes `{key}`; remove it")
    share = f.get("margin_of_control_gain")
    if f["test"] == "noninferiority_welch" and not mechanism:
        raise TargetsError(
            f"{where.key('test')}: a non-inferiority test passes its own placebo (the control is not worse than "
            "itself), so alone it shows nothing; make it `kind: mechanism` with `paired_with:` a claim on the "
            "mechanism's direct effect"
        )
    if f["test"] != "noninferiority_welch":
        for key in ("margin_of_control_gain", "paired_with"):
            if f.get(key) is not None:
                raise TargetsError(f"{where.key(key)}: `{key}` belongs to test noninferiority_welch only")
        return
    if share is None:
        raise TargetsError(
            f"{where}: a non-inferiority claim states its margin as `margin_of_control_gain: f` (0 < f < 0.5): f × "
            "the control's own gain over the starting model (eval.json − eval.json base)"
        )
    if share is not None:
        if not 0 < share < 0.5:
            raise TargetsError(
                f"{where.key('margin_of_control_gain')}: must lie in (0, 0.5): the margin is smaller than half "
                "of the control's own gain over the starting model"
            )
        if f["min_effect"] != 0:
            raise TargetsError(f"{where.key('min_effect')}: the margin is `margin_of_control_gain`; remove min_effect")
        if metric.file != "eval":
            raise TargetsError(
                f"{where.key('metric')}: the control's gain over the starting model is read from eval.json and its "
                "`base` scores; a non-inferiority margin needs `file: eval`"
            )
    if mechanism and f.get("paired_with") is None:
        raise TargetsError(
            f"{where}: a non-inferiority mechanism claim shows nothing alone; name the discriminating claim on the "
            "mechanism's direct effect it goes with: `paired_with: <claim id>`"
        )


def _check_claim_links(claims: tuple[Claim, ...], no_test: dict[str, str], where: Where) -> None:
    """`requires` names premises, `paired_with` a mechanism claim that is not a non-inferiority one, and a file
    without a mechanism claim says why (`no_mechanism_test`)."""
    by_id = {c.id: c for c in claims}
    premises = [c.id for c in claims if c.kind == "premise"]
    for i, claim in enumerate(claims):
        here = where.key("claims").index(i)
        for name in claim.requires or ():
            check_name(name, premises, "premise", here.key("requires"))
        if claim.paired_with is not None:
            partner = by_id.get(claim.paired_with)
            mechanisms = [c.id for c in claims if c.kind == "mechanism" and c.test != "noninferiority_welch"]
            if partner is None or partner.id not in mechanisms:
                check_name(claim.paired_with, mechanisms, "mechanism claim", here.key("paired_with"))
    if not any(c.kind == "mechanism" for c in claims) and not no_test:
        raise TargetsError(
            f"{where.key('claims')}: no claim has `kind: mechanism`; add one, or say per tier why the paper's mechanism cannot be "
            'tested there: `no_mechanism_test: {smoke: "..."}`'
        )


def _no_mechanism_test(raw: dict[str, Any] | None, where: Where) -> dict[str, str]:
    if raw is None:
        return {}
    for tier, why in raw.items():
        check_name(str(tier), list(TIERS), "tier", where)
        if not isinstance(why, str) or not why.strip():
            raise TargetsError(f"{where.key(str(tier))}: say why the mechanism cannot be tested at this tier")
    return {str(k): str(v) for k, v in raw.items()}


def _claim_metric(raw: Any, where: Where) -> ClaimMetric:
    f = check_fields(raw, METRIC_SPEC, where)
    reduce = f.get("reduce")
    if f["file"] == "metrics":
        if reduce is None:
            raise TargetsError(f"{where}: missing key `reduce` (one of {', '.join(REDUCERS.names())})")
        check_name(reduce, REDUCERS.names(), "metric reduce", where.key("reduce"))
    elif reduce is not None:
        raise TargetsError(f"{where.key('reduce')}: `reduce` applies to file: metrics only; remove it")
    if not 0 < f["frac"] <= 1:
        raise TargetsError(f"{where.key('frac')}: must lie in (0, 1]")
    return ClaimMetric(f["file"], f["name"], reduce, float(f["frac"]))


def _ablation(raw: Any, where: Where, variants: list[str]) -> Ablation:
    f = check_fields(raw, ABLATION_SPEC, where)
    rows = []
    for i, item in enumerate(f["rows"]):
        r = check_fields(item, ABLATION_ROW_SPEC, where.key("rows").index(i))
        check_name(r["variant"], variants, "variant", where.key("rows").index(i).key("variant"))
        published = None if r["published"] is None else float(r["published"])
        rows.append(AblationRow(r["variant"], r["label"], published))
    return Ablation(f["title"], f["source"], f["metric"], tuple(rows), f["unit"], f["ours_metric"])


def _read_yaml(path: Path) -> Any:
    try:
        return read_yaml(path)  # parsed once per file version (the catalog index reads every paper's)
    except FileNotFoundError:
        raise TargetsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise TargetsError(f"{path}: not valid YAML: {err}") from None


def _string_list(raw: list[Any], where: Where) -> list[str]:
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise TargetsError(f"{where.index(i)}: expected a string, got {type(item).__name__} {item!r}")
    return list(raw)


def _unique_ids(ids: list[str], where: Where) -> None:
    seen: set[str] = set()
    for name in ids:
        if name in seen:
            raise TargetsError(f"{where}: {name!r} appears twice; names must be unique")
        seen.add(name)


__all__ = [
    "BASE_MODEL",
    "Ablation",
    "AblationRow",
    "Baseline",
    "Claim",
    "ClaimMetric",
    "EvalProtocol",
    "PaperMeta",
    "SettingRow",
    "SourceRef",
    "Target",
    "Targets",
    "TargetsError",
    "load_paper_meta",
    "load_targets",
]
