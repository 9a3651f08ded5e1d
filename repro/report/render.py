"""Render compare.json as a markdown report with figures (DESIGN.md "Published numbers and claims").

Sections: header (paper link, tier, scale), settings (ours vs paper), targets, evaluation protocol,
claims, ablation, training curves, causes of silent divergence, provenance.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repro.io import read_json, read_jsonl_tolerant, write_text
from repro.overrides import tier_of
from repro.provenance import UNKNOWN
from repro.report import plots
from repro.report.alignment import alignment_section
from repro.report.results_table import results_table_section
from repro.report.samples import samples_section
from repro.report.scale import scale_line
from repro.report.staleness import stale_runs
from repro.report.targets import PaperMeta, load_paper_meta
from repro.report.warm_starts import BASE_SENSITIVE, load_replicas, mark_base_sensitive

TIER_SCALE = {  # what each tier's configs are made for; the header says what the runs were (report/scale.py)
    "smoke": "a tiny model built locally, synthetic tasks, 2 CPU cores, minutes",
    "small": "a ~0.5–1.5B model on real data (math prompts, preference pairs or SFT sets), one GPU, hours",
    "paper": "the paper's own model, data and setting",
}
REPORT_KIND = {  # what a report is at each tier: only the paper tier's setting can reproduce the paper's numbers
    "smoke": "a check of the paper's claims at smoke scale (toy model and task; not a reproduction)",
    "small": "a check of the paper's claims at small scale (not the paper's setting)",
    "paper": "reproduction report",
}
DIVERGENCE_COLUMNS = {
    "truncation_rate": "truncation rate",
    "frac_zero_std": "zero-std groups",
    "refill_batches": "refill batches",
    "response_length": "response length",
    "logprob_gap": "rollout−trainer log-prob gap",
}


def render_report(
    paper_dir: str | os.PathLike[str],
    compare_json_path: str | os.PathLike[str],
    tier: str,
    out_md: str | os.PathLike[str],
    replica_paths: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write `out_md` (e.g. reports/<paper>/report.md) and its PNGs under `<out_md dir>/figures/`. `replica_paths`:
    the compare.json of the same runs on other warm starts (`--config bases=<n>`): claims whose verdict differs
    between them are marked base-sensitive."""
    meta = load_paper_meta(paper_dir)
    compare_path, out = Path(compare_json_path), Path(out_md)
    result = read_json(compare_path)
    replicas = load_replicas([Path(p) for p in replica_paths], meta.id)
    mark_base_sensitive(result, replicas)
    label, tier = tier, tier_of(tier)  # `tier` may name a results folder of runs with overrides: <tier>@<...>
    if result.get("tier") != tier or result.get("label", tier) != label:
        raise ValueError(
            f"{compare_path} is for tier {result.get('tier')!r} (results folder {result.get('label')!r}), not {label!r}"
        )
    figures_dir = out.parent / "figures"
    curves = _curves_by_variant(result, compare_path.parent, meta.variants)
    curve_figures = plots.plot_training_curves(curves, figures_dir)
    info = result.get("ablation_meta") or {}
    ablation_figure = plots.plot_ablation(
        result.get("ablation") or [], tier, info.get("unit", "percent"), figures_dir / "ablation.png",
        info.get("metric", "published metric"), info.get("ours_metric", "our metric"),
    )  # fmt: skip
    fit_meta = result.get("scaling_fit_meta")
    fit_figure = None
    if fit_meta and result.get("scaling_fits"):
        fit_figure = plots.plot_scaling_fits(
            curves, result["scaling_fits"], fit_meta["metric"], figures_dir / "scaling_fit.png"
        )
    frontier = plots.plot_frontier(curves, result.get("alignment"), figures_dir / "frontier.png")
    parts = [
        header_section(meta, result, tier),
        settings_section(result),
        targets_section(result),
        claims_section(result),
        warm_start_section(result, replicas),
        ablation_section(result, tier, ablation_figure, out.parent),
        scaling_fit_section(result, fit_figure, out.parent),
        alignment_section(result.get("alignment"), frontier, out.parent),
        results_table_section(result.get("results_table")),
        curves_section(curve_figures, out.parent),
        divergence_section(result, meta.variants),
        samples_section(result, out.parent),
        provenance_section(result),
    ]
    write_text(out, "\n\n".join(p.strip() for p in parts if p) + "\n")
    return out


# --- sections ------------------------------------------------------------------------------


def header_section(meta: PaperMeta, result: dict[str, Any], tier: str) -> str:
    link = f"[{f'arXiv {meta.arxiv}' if meta.arxiv else meta.link}]({meta.link})"
    targets = result.get("targets") or []
    at_tier = [t for t in targets if t.get("tier") == tier]
    scale = TIER_SCALE.get(tier, f"the {tier} tier")
    if not targets:
        comparable = "The paper publishes no absolute target numbers; only claims are checked."
    elif not at_tier:
        comparable = (
            f"The paper's published numbers are **not comparable** at this scale (0 of {len(targets)} "
            f"targets are set at the {tier} tier); the claims below are directional checks meant to "
            "survive scale-down."
        )
    else:
        comparable = (
            f"{len(at_tier)} of {len(targets)} published targets are set at this tier and are compared "
            "against our numbers; claims are checked as well."
        )
    ran = scale_line(result.get("scale"), tier)
    lines = [
        f"# {meta.title} — {REPORT_KIND.get(tier, 'report')}",
        f"Paper: {link} · paper id `{meta.id}` · family {meta.family} · tier **{tier}**",
        f"**Scale:** the **{tier}** tier's recipe ({scale}); what ran: {ran}. {comparable}",
    ]
    warnings = result.get("warnings") or []
    stale = stale_runs(result, meta.path)
    if stale:
        why = sorted({reason for reasons in stale.values() for reason in reasons})
        warnings = [
            *warnings,
            f"stale: {len(stale)} run(s) no longer match what this checkout would run ({'; '.join(why)}): "
            f"{', '.join(stale)}. Rerun them (snakemake reruns a changed config; after a code change delete the "
            "run dirs or use --forcerun train)",
        ]
    if warnings:
        lines.append("**Warnings**\n\n" + "\n".join(f"- {_escape(w)}" for w in warnings))
    return "\n\n".join(lines)


def settings_section(result: dict[str, Any]) -> str:
    rows = [
        [
            f"`{s['key']}`",
            fmt_setting(s.get("paper")),
            fmt_setting(s.get("ours")),
            s.get("deviation", "—"),
            s.get("source", ""),
        ]
        for s in result.get("settings") or []
    ]
    if not rows:
        return "## Settings (ours vs paper)\n\nNo settings table in paper.yaml."
    return (
        "## Settings (ours vs paper)\n\nOurs: the default variant's `config.resolved.yaml` at this tier.\n\n"
        + md_table(["Setting", "Paper", "Ours", "Deviation", "Source"], rows)
    )


def targets_section(result: dict[str, Any]) -> str:
    targets = result.get("targets") or []
    if not targets:
        return "## Published targets\n\nNone on our benchmark suites.\n\n" + references_section(result)
    rows = [
        [
            t["id"],
            t["variant"],
            t["benchmark"],
            fmt_with_ci(t.get("ours"), t.get("ci")),
            f"{fmt(t.get('published'))} {_unit(t.get('unit'))}".strip(),
            fmt(t.get("delta"), signed=True),
            fmt(t.get("tolerance")),
            f"**{t['status']}**",
            t.get("tier", ""),
        ]
        for t in targets
    ]
    table = md_table(
        ["Target", "Variant", "Benchmark", "Ours [95% CI]", "Published", "Δ", "Tolerance", "Status", "Tier"], rows
    )
    notes = [
        f"- `{t['id']}`: {t.get('model', '')}; source {t.get('source', '')}"
        + (f"; baseline {t['baseline']['name']} {fmt(t['baseline']['value'])}" if t.get("baseline") else "")
        + (f"; ours is {t['metric_name']} over {t.get('n_seeds', 0)} seed(s)" if t.get("metric_name") else "")
        + (f"; CI over {t['ci_kind']}" if t.get("ci_kind") else "")
        + (f"; evaluation-sampling CI {fmt_ci(t['eval_ci'])}" if t.get("eval_ci") else "")
        + (f"; {t['note']}" if t.get("note") else "")
        for t in targets
    ]
    return (
        "## Published targets\n\n" + table + "\n\n" + "\n".join(notes) + "\n\n" + protocol_section(targets)
        + "\n\n" + references_section(result)
    )  # fmt: skip


def scaling_fit_section(result: dict[str, Any], figure: Path | None, report_dir: Path) -> str:
    meta, rows = result.get("scaling_fit_meta"), result.get("scaling_fits") or []
    if not meta or not rows:
        return ""
    table = []
    for row in rows:
        for f in row["fits"]:
            if "A" in f:
                cells = [fmt(f["A"]), fmt(f["B"]), fmt(f["C_mid"]), fmt(f["R0"]), fmt(f["rmse"]), str(f["n_points"])]
            else:
                cells = ["—"] * 5 + [f"fit failed: {f['error']}"]
            table.append([row["variant"], str(f["seed"]), *cells])
    means = [f"- `{r['variant']}`: mean A = {fmt_with_ci(r['A_mean'], r['A_ci'])}" for r in rows]
    beyond = [f"{r['variant']}/seed{f['seed']}" for r in rows for f in r["fits"] if f.get("extrapolated")]
    if beyond:
        means.append(
            f"- **Caution:** {len(beyond)} fit(s) put C_mid beyond the last step ({', '.join(beyond)}): the curve has "
            "not bent yet, so their A is an extrapolation the data do not support (ScaleRL fits only curves "
            "past their warm-up that approach saturation)."
        )
    text = (
        f"## Compute–performance fit\n\nR(C) = R₀ + (A − R₀) / (1 + (C_mid / C)^B) fitted to each run's "
        f"`{meta['metric']}` per optimizer step ({meta['source']}); C = optimizer steps, the first "
        f"{meta['warmup_frac']:.0%} of steps are left out as warm-up and R₀ is their mean. A is the asymptote, "
        "B the exponent, C_mid the step at half the gain.\n\n"
        + md_table(["Variant", "Seed", "A", "B", "C_mid", "R₀", "RMSE", "Points"], table)
        + "\n\n" + "\n".join(means)
    )  # fmt: skip
    if figure is not None:
        text += f"\n\n![scaling fit]({figure.relative_to(report_dir).as_posix()})"
    return text


def references_section(result: dict[str, Any]) -> str:
    """Published numbers that no run here can be compared with, and why (targets.yaml `references`)."""
    refs = result.get("references") or []
    if not refs:
        return ""
    rows = [
        [r["id"], r["model"], r["metric"], r["value"], r.get("baseline") or "—", r["source"], r["why_not_run"]]
        for r in refs
    ]
    return "### Published numbers not run here\n\n" + md_table(
        ["Reference", "Model", "Metric", "Published", "Baseline", "Source", "Why not run"], rows
    )


def protocol_section(targets: Sequence[dict[str, Any]]) -> str:
    """The paper's evaluation protocol beside ours (where a benchmark result records one).

    Only the fields the paper states are compared; ours also lists what the paper leaves open.
    """
    rows = []
    for t in targets:
        paper, ours = t.get("protocol") or {}, t.get("ours_protocol") or {}
        differing = [d.split(":", 1)[0] for d in t.get("protocol_deviations") or []]  # computed by compare
        deviations = "—" if not ours else (", ".join(differing) or "none")
        rows.append([t["id"], _protocol_text(paper), _protocol_text(ours), deviations])
    if not rows:
        return ""
    return "### Evaluation protocol (paper vs ours)\n\n" + md_table(
        ["Target", "Paper", "Ours (benchmark result)", "Fields that differ"], rows
    )


def _protocol_text(protocol: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_setting(v)}" for k, v in protocol.items()) or "—"


def claims_section(result: dict[str, Any]) -> str:
    """Mechanism claims (the paper's effect against a control that lacks it) apart from premises (conditions
    under which those tests mean something), each beside its placebo: the control in the treatment's place."""
    claims = result.get("claims") or []
    if not claims:
        return "## Claims\n\nNo claims in targets.yaml."
    mechanism = [c for c in claims if c.get("kind", "mechanism") == "mechanism"]
    premises = [c for c in claims if c.get("kind") == "premise"]
    summary = result.get("mechanism") or {}
    parts = ["## Claims", CLAIMS_LEGEND]
    if summary.get("no_mechanism_test"):
        parts.append(f"**No mechanism test at this tier:** {_escape(summary['no_mechanism_test'])}")
    if mechanism:
        parts += ["### Mechanism claims", _claims_table(mechanism)]
    if premises:
        parts += ["### Premises", _claims_table(premises)]
    statements = [
        f"- **{c['id']}** ({c.get('kind', 'mechanism')}) — {c['statement']} ({c.get('source', '')})"
        + (f". Note: {c['note']}" if c.get("note") else "")
        for c in claims
    ]
    return "\n\n".join(parts) + "\n\n" + "\n".join(statements)


CLAIMS_LEGEND = (
    "A mechanism claim reads *reproduced* only when its test passes and its **placebo** fails: the placebo is "
    "the same test with the control's values in the treatment's place (a threshold claim: the control against "
    "the same threshold). A claim whose placebo passes too reads *does not discriminate*. A premise reads "
    "*holds* / *fails*; a mechanism claim whose premises do not hold is *not testable*."
)


def warm_start_section(result: dict[str, Any], replicas: list[dict[str, Any]]) -> str:
    """The claims × warm starts table (after `mark_base_sensitive`); empty with one warm start."""
    if not replicas:
        return ""
    claims = result.get("claims") or []
    sensitive = [c for c in claims if c.get("base_sensitive")]
    labels = [result.get("label") or result.get("tier")] + [r.get("label") or "?" for r in replicas]
    rows = [
        [c["id"], c.get("kind", "mechanism"), *[v or "—" for v in c["verdicts_by_base"]],
         f"**{BASE_SENSITIVE}**" if c["base_sensitive"] else "same"]
        for c in claims
    ]  # fmt: skip
    lead = (
        f"Every claim judged again on {len(replicas)} other warm start(s): the same base config and initial "
        "weights, warmed up on another draw of the SFT data (repro/warm_starts.py), every run of the paper repeated "
        f"on it. {len(sensitive)} of {len(claims)} "
        "claims change verdict with the warm start (**base-sensitive**): their verdict above holds for this base, "
        "not for the setting."
    )
    headers = ["Claim", "Kind", *[f"`{label}`" for label in labels], "Across warm starts"]
    return "\n\n".join(["## Warm starts", lead, md_table(headers, rows)])


def _claims_table(claims: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            c["id"],
            f"{c['treatment']} vs {c.get('control') or '—'}",
            c.get("metric", ""),
            _test_label(c),
            f"{c.get('n_treatment', 0)}/{c.get('n_control', 0)}",
            f"{fmt(c.get('treatment_mean'))} vs {fmt(c.get('control_mean'))}",
            fmt(c.get("effect"), signed=True),
            fmt_ci(c.get("ci")),
            fmt_p(c.get("p_value")),
            placebo_text(c.get("placebo")),
            f"**{c['verdict']}**" + (f" ({BASE_SENSITIVE})" if c.get("base_sensitive") else ""),
        ]
        for c in claims
    ]
    headers = ["Claim", "Treatment vs control", "Metric", "Test", "n (t/c)", "Means", "Effect", "95% CI", "p"]
    return md_table([*headers, "Placebo (control in place)", "Verdict"], rows)


def placebo_text(placebo: dict[str, Any] | None) -> str:
    if not placebo:
        return "— (no control)"
    if placebo.get("control_mean") is None:  # a threshold: the control's values against it
        numbers = f"control {fmt(placebo.get('treatment_mean'))}"
    else:
        numbers = f"effect {fmt(placebo.get('effect'), signed=True)}, p {fmt_p(placebo.get('p_value'))}"
    word = "passes" if placebo.get("passes") else ("fails" if placebo.get("test_verdict") else "—")
    if placebo.get("test_verdict") == "insufficient seeds":
        word = "insufficient seeds"
    return f"{word} ({numbers})"


def ablation_section(result: dict[str, Any], tier: str, figure: Path | None, report_dir: Path) -> str:
    meta = result.get("ablation_meta")
    rows = result.get("ablation") or []
    if not meta or not rows:
        return ""
    table = md_table(
        ["Variant", "Row", f"Published ({meta['metric']})", f"Ours [95% CI] ({tier})", "Seeds"],
        [
            [
                r["variant"],
                r["label"],
                fmt(r.get("published")),
                fmt_with_ci(r.get("ours_mean"), r.get("ours_ci")),
                str(r.get("n_seeds", 0)),
            ]
            for r in rows
        ],
    )
    text = (
        f"## Ablation: {meta['title']}\n\nSource: {meta['source']}. Ours: {meta['ours_metric']}, mean and "
        f"95% CI over seeds. Scales differ: the paper's numbers are at its own setting, ours at the {tier} "
        f"tier, so compare orderings, not values.\n\n{table}"
    )
    if figure is not None:
        text += f"\n\n![Ablation: paper vs ours]({_rel(figure, report_dir)})"
    return text


def curves_section(figures: dict[str, Path], report_dir: Path) -> str:
    if not figures:
        return "## Training curves\n\nNo metrics.jsonl data found."
    images = [f"![{stem}]({_rel(path, report_dir)})" for stem, path in figures.items()]
    return f"## Training curves\n\nOne line per variant; {plots.BAND_DESCRIPTION}.\n\n" + "\n\n".join(images)


# Why a trainer kind logs none of the online-RL signals, and where its drift is reported instead.
NO_DIVERGENCE_SIGNALS = {
    "preference": "an offline preference run samples nothing while it trains. Its drift from the reference is in "
    "the alignment section (KL, likelihood displacement).",
    "sft": "supervised fine-tuning samples nothing while it trains. Its drift is in the held-out loss curves.",
    "reward_model": "a reward model samples nothing while it trains. Its drift is in the held-out reward curves.",
    "distillation": "the student samples without a reward, so there are no groups to go degenerate and no "
    "sampler–trainer gap (the same model samples and trains). Its drift from the teacher is in the held-out "
    "divergence curves.",
}


def divergence_section(result: dict[str, Any], variants: Sequence[str]) -> str:
    divergence = result.get("divergence") or {}
    rows = [
        [v, *(fmt((divergence.get(v) or {}).get(k)) for k in DIVERGENCE_COLUMNS)] for v in variants if v in divergence
    ]
    if divergence and all(value is None for row in divergence.values() for value in (row or {}).values()):
        trainer = (result.get("results_table") or {}).get("trainer", "preference")
        return (
            "## Causes of silent divergence\n\nNone of the online-RL signals (truncation, zero-std groups, refills, "
            f"sampler–trainer gap) is logged by these runs: {NO_DIVERGENCE_SIGNALS.get(trainer, '')}"
        ).rstrip()
    return (
        "## Causes of silent divergence\n\nMeans over steps, then over seeds (— where the run does not log it).\n\n"
        + md_table(["Variant", *DIVERGENCE_COLUMNS.values()], rows)
    )


def provenance_section(result: dict[str, Any]) -> str:
    prov = result.get("provenance") or {}
    packages = prov.get("packages") or {}
    dirty = " (dirty working tree)" if prov.get("git_dirty") else ""
    cpu = f" ({prov['cpu']})" if prov.get("cpu") else ""  # model and vector extension: kernels round by them
    lines = [
        "## Provenance",
        (
            f"Report built from code `{_short_sha(prov.get('git_sha'))}`{dirty} at "
            f"{prov.get('timestamp_utc', '?')}; host {prov.get('hostname', '?')}, "
            f"{prov.get('cpu_count', '?')} CPUs{cpu}, GPU {prov.get('gpu') or 'none'}, "
            f"{prov.get('platform', '?')}, Python {prov.get('python', '?')}."
        ),
        md_table(["Package", "Version"], [[k, str(v)] for k, v in packages.items()]) if packages else "",
    ]
    if overrides := result.get("overrides"):
        from repro.overrides import Overrides

        lines.insert(
            2,
            f"**Overrides:** these runs were made with `{Overrides.from_record(overrides).describe()}` on top of the "
            f"paper folder's `{result.get('tier')}` config (results folder `{result.get('label')}`; each run's "
            "`config.resolved.yaml` holds the resolved values).",
        )
    run_rows = []
    for run in result.get("runs") or []:
        rp = run.get("provenance") or {}
        problems = [f"missing {m}" for m in run.get("missing") or []] + list(run.get("errors") or [])
        run_rows.append(
            [
                run["variant"],
                str(run["seed"]),
                fmt_seconds(run.get("wall_time_s")),
                fmt(run.get("steps")),
                f"`{_short_sha(rp.get('git_sha'))}`" + (" (dirty)" if rp.get("git_dirty") else ""),
                f"`{(rp.get('config_sha256') or '—')[:12]}`",
                _hardware(rp),
                "; ".join(problems) or "complete",
            ]
        )
    if run_rows:
        lines.append(
            md_table(
                ["Variant", "Seed", "Wall time", "Steps", "Git SHA", "Config sha256", "Hardware", "Files"], run_rows
            )
        )
        lines.append(determinism_note([run.get("provenance") or {} for run in result.get("runs") or []]))
    return "\n\n".join(x for x in lines if x)


def determinism_note(run_provenance: list[dict[str, Any]]) -> str:
    """Where a rerun with the same seed reproduces these numbers exactly, and where only statistically."""
    gpus = sorted({str(p["gpu"]) for p in run_provenance if p.get("gpu")})
    if gpus:
        return (
            f"**Determinism:** runs on GPU ({', '.join(gpus)}) used kernels that are not bit-deterministic "
            "(atomic adds, autotuned reductions): a rerun with the same seed matches these numbers statistically, "
            "not bit for bit. Runs on CPU are bit-identical for a seed on the same machine."
        )
    numerics = [p.get("numerics") for p in run_provenance if p.get("numerics")]
    if numerics and all(n.get("pinned") for n in numerics):
        return (
            "**Determinism:** every run ran on CPU with pinned numerics (ATen, MKL and oneDNN at AVX2; "
            "`repro/numerics.py`): a rerun with the same seed reproduces its metrics bit for bit on any x86-64 CPU "
            "with AVX2 and the same package versions (`requirements.lock`); GPU kernels are not bit-deterministic."
        )
    native = sorted({str(n.get("aten_capability")) for n in numerics if not n.get("pinned")})
    return (
        "**Determinism:** every run ran on CPU"
        + (f" with native numerics (kernels: {', '.join(native)}; `REPRO_NUMERICS=native`)" if native else "")
        + ": a rerun with the same seed on the same machine reproduces its metrics bit for bit "
        "(`tests/test_faults.py`); another CPU or library build may differ in the last bits, and GPU kernels are not "
        "bit-deterministic."
    )


# --- formatting ----------------------------------------------------------------------------


def fmt(value: Any, signed: bool = False) -> str:
    """Numbers at 3 significant digits, thousands separated, "—" for missing."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value).lower()
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    sign = "+" if signed and value > 0 else ""
    if isinstance(value, int):
        return f"{sign}{value:,}"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{sign}{value:,.0f}"
    if abs(value) < 1e-3:
        return f"{sign}{value:.2e}"
    return f"{sign}{value:.3g}"


def fmt_ci(ci: Sequence[float] | None) -> str:
    return "—" if not ci else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def fmt_with_ci(mean: float | None, ci: Sequence[float] | None) -> str:
    return fmt(mean) if not ci else f"{fmt(mean)} {fmt_ci(ci)}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 1e-3 else f"{p:.3f}"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_setting(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return fmt(value)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_escape(str(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --- helpers -------------------------------------------------------------------------------


def _curves_by_variant(result: dict[str, Any], tier_dir: Path, variants: Sequence[str]) -> dict[str, list[plots.Curve]]:
    curves: dict[str, list[plots.Curve]] = {}
    for run in result.get("runs") or []:
        path = Path(run["path"])
        if not path.is_dir():  # compare.json moved: fall back to its own tier dir
            path = tier_dir / run["variant"] / f"seed{run['seed']}"
        file = path / "metrics.jsonl"
        if file.is_file():
            curves.setdefault(run["variant"], []).append(read_jsonl_tolerant(file))
    return {v: curves[v] for v in variants if v in curves}


def _hardware(prov: dict[str, Any]) -> str:
    if not prov:
        return "—"
    if prov.get("gpu"):
        return str(prov["gpu"])
    return f"{prov['cpu_count']} CPUs" if prov.get("cpu_count") else "—"


def _test_label(claim: dict[str, Any]) -> str:
    if claim.get("test") == "max_equals" and claim.get("threshold"):
        op, value = claim["threshold"]
        return f"every seed {op} {fmt(value)}"
    direction = {"greater": ">", "less": "<"}.get(claim.get("direction") or "", "?")
    what = "margin" if claim.get("test") == "noninferiority_welch" else "min effect"
    extra = f", {what} {fmt(claim['min_effect'])}" if claim.get("min_effect") else ""
    return f"{claim.get('test')} (t {direction} c, α={claim.get('alpha')}{extra})"


def _short_sha(sha: str | None) -> str:
    return UNKNOWN if not sha else (sha if sha == UNKNOWN else sha[:10])


def _unit(unit: str | None) -> str:
    return {"percent": "%", "fraction": "", None: ""}.get(unit, unit or "")


def _rel(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
