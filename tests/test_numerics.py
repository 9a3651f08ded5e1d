"""Pinned CPU numerics (repro/numerics.py) and the fingerprints kept in results/fingerprints.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro.fingerprints import FILE, compare, metrics_sha256
from repro.numerics import PINNED, SWITCH, kernel_fingerprints, pin_environment, state

ROOT = Path(__file__).resolve().parents[1]


def in_fresh_process(code: str, **env: str) -> str:
    """`code` run by a new interpreter that imports repro first (as every job does), with `env` over a clean one."""
    clean = {k: v for k, v in os.environ.items() if k not in (*PINNED, SWITCH)}
    done = subprocess.run(
        [sys.executable, "-c", f"import repro, json\n{code}"], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_pinning_sets_what_the_user_left_unset_and_can_be_switched_off() -> None:
    environ: dict[str, str] = {"MKL_CBWR": "COMPATIBLE"}
    assert pin_environment(environ)
    assert environ == {**PINNED, "MKL_CBWR": "COMPATIBLE"}  # the user's own value is kept (and reported unpinned)
    off = {SWITCH: "native"}
    assert not pin_environment(off) and off == {SWITCH: "native"}
    with pytest.raises(ValueError, match="REPRO_NUMERICS='fastest': use pinned .* or native"):
        pin_environment({SWITCH: "fastest"})


def test_importing_repro_pins_the_kernels_aten_dispatches_to() -> None:
    pinned = json.loads(in_fresh_process("from repro.numerics import state; print(json.dumps(state()))"))
    assert pinned["pinned"] and pinned["aten_capability"] == "AVX2" and pinned["env"] == PINNED
    native = json.loads(
        in_fresh_process("from repro.numerics import state; print(json.dumps(state()))", **{SWITCH: "native"})
    )
    assert not native["pinned"] and native["env"] == {name: None for name in PINNED}


def test_this_process_is_pinned_and_its_kernels_match_the_recorded_fingerprints() -> None:
    """The cheap fingerprints: on any x86-64 CPU with AVX2, pinned, the kernels give the recorded bits."""
    from test_lockfile import unlocked_numerics_packages  # tests/ is on sys.path under pytest

    assert state()["pinned"] and torch.backends.cpu.get_cpu_capability() == "AVX2"
    if unlocked := unlocked_numerics_packages():
        pytest.skip(f"not the locked environment ({', '.join(unlocked)}): pip install -r requirements.lock")
    recorded = json.loads((ROOT / FILE).read_text(encoding="utf-8"))
    now = {f"kernel:{k}": v for k, v in kernel_fingerprints().items()}
    rows = compare({k: v for k, v in recorded.items() if k.startswith("kernel:")}, now)
    assert rows and all(status == "match" for _, status in rows), rows


def test_native_kernels_differ_where_the_cpu_has_wider_ones() -> None:
    """What the pinning buys: on an AVX-512 CPU the native log_softmax rounds differently from the AVX2 one."""
    code = "from repro.numerics import kernel_fingerprints, state; print(json.dumps([state()['aten_capability'], kernel_fingerprints()]))"
    capability, native = json.loads(in_fresh_process(code, **{SWITCH: "native"}))
    if capability == "AVX2":
        pytest.skip("this CPU's widest ATen kernels are AVX2: native and pinned are the same")
    assert native["log_softmax"] != kernel_fingerprints()["log_softmax"]


def test_the_metrics_fingerprint_leaves_out_wall_clock_fields(tmp_path: Path) -> None:
    rows = [{"step": 1, "loss": 0.5, "step_time": 0.12}, {"step": 2, "loss": 0.25, "wall_time_s": 3.0}]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    b.write_text("\n".join(json.dumps({**r, "step_time": 9.9}) for r in rows) + "\n")
    assert metrics_sha256(a) == metrics_sha256(b)
    b.write_text("\n".join(json.dumps({**r, "loss": r["loss"] + 1e-9}) for r in rows) + "\n")
    assert metrics_sha256(a) != metrics_sha256(b)


def test_provenance_records_the_numerics_of_the_run() -> None:
    from repro.provenance import collect_provenance

    numerics = collect_provenance()["numerics"]
    assert numerics["pinned"] is True and numerics["aten_capability"] == "AVX2"


@pytest.mark.parametrize(("recorded", "warns"), [(None, True), (False, True), (True, False)])
def test_a_base_built_with_other_numerics_is_named_with_the_fix(
    recorded: bool | None, warns: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import repro.runs as runs

    (tmp_path / "smoke").mkdir()
    summary = {} if recorded is None else {"numerics_pinned": recorded}
    (tmp_path / "smoke" / "prepare.json").write_text(json.dumps(summary), encoding="utf-8")
    monkeypatch.setattr(runs, "BASE_ROOT", tmp_path)
    assert runs.resolve_model_path("prepared:smoke") == str(tmp_path / "smoke" / "model")
    err = capsys.readouterr().err
    assert ("rm -r results/base/smoke && snakemake results/base/smoke/prepare.json" in err) is warns
