"""TRL's `report_to`: every metrics.jsonl row streamed, as the run trains, to TensorBoard, Weights & Biases or Trackio.

`train.report_to` takes TRL's values: `none` (the default), `tensorboard`, `wandb`, `trackio`, a list of them, or
`all` (as transformers' `get_available_reporting_integrations`: every one of the three whose client library is
installed; none installed streams nothing). Each tracker gets, through its own client library,
- the run's identity (paper, tier, variant, seed, model, commit, run folder) and its resolved config, as the run's
  config (TensorBoard: `run` and `config` text plus HParams);
- every numeric column `k` (true/false as 1/0) of each metrics.jsonl row as `train/k` at the row's optimizer step
  (TRL's names), and `train/global_step`; a value metrics.jsonl records as null (NaN, ±inf) or text is not sent.

Nothing leaves the machine unless the user says so: TensorBoard writes `<run>/tensorboard/`, W&B runs offline into
`<run>/wandb/` (unless WANDB_MODE / WANDB_DIR are set), Trackio keeps its SQLite project under `<run>/trackio/`
(unless TRACKIO_DIR is set). metrics.jsonl stays the source of truth: each row is written and flushed there first;
a tracker that fails mid-run is reported on stderr once and switched off, and training goes on. A tracker that cannot
start is refused before the first step; a missing client library already in `repro check` / `train`'s preflight,
before any weights load (`require_installed`).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from repro.io import dotted
from repro.schema import ConfigError

KEY = "train.report_to"
NONE, ALL = "none", "all"
# tracker -> (the module its client needs, the install command)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "pip install tensorboard"),  # torch.utils.tensorboard writes through it
    "wandb": ("wandb", "pip install wandb"),
    "trackio": ("trackio", "pip install trackio"),
}
# transformers' other report_to integrations: TRL values this harness does not stream to
OTHER_INTEGRATIONS = (
    "azure_ml", "clearml", "codecarbon", "comet_ml", "dagshub", "dvclive", "flyte", "kubeflow", "mlflow", "neptune",
    "swanlab",
)  # fmt: skip
# config keys that change where metrics are shown, not what a run computes (repro/report/staleness.py skips them)
NO_EFFECT_ON_RESULTS = frozenset({KEY})
PREFIX = "train/"


# ----------------------------------------------------------------------------- the setting


def check_report_to(value: Any, where: str) -> None:
    """TRL's forms: a name, or a list of names; `none` and `all` alone. Unknown names get a did-you-mean."""
    from repro.registry import unknown_name_message

    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: {KEY}: is {value!r}; give a name or a list of names ({_valid()})")
    for name in names:
        if name in OTHER_INTEGRATIONS:
            raise ConfigError(
                f"{where}: {KEY}: {name!r} is a transformers integration this harness does not stream to; it streams "
                f"to {', '.join(TRACKERS)} (or {NONE}, {ALL})"
            )
        if name not in (*TRACKERS, NONE, ALL):
            raise ConfigError(f"{where}: {KEY}: " + unknown_name_message("report_to", name, [*TRACKERS, NONE, ALL]))
    if len(names) > 1 and {NONE, ALL} & set(names):
        raise ConfigError(f"{where}: {KEY}: {names!r}; `none` and `all` stand alone, not in a list with other names")


def _valid() -> str:
    return ", ".join([*TRACKERS, NONE, ALL])


def installed(name: str) -> bool:
    return importlib.util.find_spec(TRACKERS[name][0]) is not None


def chosen(value: str | list[str]) -> list[str]:
    """The trackers a (validated) report_to names: `none` none, `all` the installed ones, else the names, deduplicated."""
    names = [value] if isinstance(value, str) else list(value)
    if names in ([NONE], []):
        return []
    if names == [ALL]:
        return [name for name in TRACKERS if installed(name)]
    return list(dict.fromkeys(names))


def require_installed(value: str | list[str], where: str) -> None:
    """Refuse a tracker whose client library is missing, with the install command (before any weights load)."""
    missing = [name for name in chosen(value) if not installed(name)]
    if missing:
        commands = " and ".join(f"`{TRACKERS[name][1]}`" for name in missing)
        raise ConfigError(
            f"{where}: {KEY}: {', '.join(missing)} is not installed here; install it with {commands} (or "
            f"`pip install -e '.[trackers]'`), or remove it from {KEY}"
        )


# ----------------------------------------------------------------------------- the trackers


class Tracker(Protocol):
    name: str
    where: str  # what to tell the user: the folder it writes

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self, failed: bool) -> None: ...


class TensorBoard:
    name = "tensorboard"

    def __init__(self, out: Path, run: dict[str, Any], config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        folder = out / "tensorboard"
        self.where = f"{folder} (tensorboard --logdir {folder})"
        self.writer = SummaryWriter(log_dir=str(folder))
        self.writer.add_text("run", _code_block(json.dumps(run, indent=2)))
        self.writer.add_text("config", _code_block(json.dumps(config, indent=2)))
        # HParams: flat scalars and strings; run_name "." keeps them in this run's folder, beside the scalars
        self.writer.add_hparams(_flat({"run": run, "config": config}), {}, run_name=".")

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # live: a row is on disk when metrics.jsonl has it

    def close(self, failed: bool) -> None:
        self.writer.close()


class WandB:
    name = "wandb"

    def __init__(self, out: Path, run: dict[str, Any], config: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or f"repro-{run['paper']}",
            name=_run_name(run),
            group=f"{run['tier']}-{run['variant']}",
            config={"run": run, "config": config},
            dir=None if os.environ.get("WANDB_DIR") else str(out),  # wandb adds its own wandb/ folder
            mode=None if os.environ.get("WANDB_MODE") else "offline",  # nothing leaves the machine unless asked
        )
        folder = Path(self.run.dir).parent
        self.where = f"{folder} (wandb sync {folder})" if self.run.settings.mode == "offline" else self.run.url
        self.run.define_metric(PREFIX + "global_step")
        self.run.define_metric(PREFIX + "*", step_metric=PREFIX + "global_step")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class Trackio:
    name = "trackio"

    def __init__(self, out: Path, run: dict[str, Any], config: dict[str, Any]) -> None:
        chosen_dir = os.environ.get("TRACKIO_DIR")
        if not chosen_dir and "trackio" not in sys.modules:
            # trackio reads TRACKIO_DIR once, when it is first imported: point it at this run, then restore
            os.environ["TRACKIO_DIR"] = str(out / "trackio")
            try:
                importlib.import_module("trackio")
            finally:
                os.environ.pop("TRACKIO_DIR", None)
        import trackio
        import trackio.utils

        folder, project = trackio.utils.TRACKIO_DIR, f"repro-{run['paper']}"
        self.where = f"{folder} (TRACKIO_DIR={folder} trackio show --project {project})"
        if not chosen_dir and Path(folder).resolve() != (out / "trackio").resolve():
            print(
                f"warning: report_to trackio: trackio was imported earlier in this process and writes to {folder}, "
                f"not {out / 'trackio'}; set TRACKIO_DIR to choose its folder",
                file=sys.stderr,
            )
        self.run = trackio.init(
            project=project,
            name=_run_name(run),
            group=f"{run['tier']}-{run['variant']}",
            config={"run": run, "config": config},
            embed=False,
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self, failed: bool) -> None:
        import trackio

        trackio.finish()  # the current run, ours: init made it so (finishing the Run alone leaves it current)


BACKENDS: dict[str, type] = {"tensorboard": TensorBoard, "wandb": WandB, "trackio": Trackio}


def _run_name(run: dict[str, Any]) -> str:
    return f"{run['tier']}-{run['variant']}-seed{run['seed']}"


def _code_block(text: str) -> str:
    return "```\n" + text + "\n```"


def _flat(value: Any) -> dict[str, Any]:
    """Dotted keys; values TensorBoard's HParams take (number, text, bool), others as JSON."""
    return {k: v if isinstance(v, bool | int | float | str) else json.dumps(v) for k, v in dotted(value).items()}


def metric_columns(row: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl row's numeric columns (true/false as 1/0) as TRL names them (`train/<key>`); `step` is the
    x-axis, not a metric, and a value metrics.jsonl writes as null (NaN, ±inf) or text is left out."""
    out = {}
    for key, value in row.items():
        if key == "step" or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[PREFIX + key] = float(value)
    return out


# ----------------------------------------------------------------------------- one run's streams


class Streams:
    """The trackers of one run. A tracker that raises is reported once and dropped; metrics.jsonl already has the
    row (the caller writes it first), so nothing is lost but the live view."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers
        self.count = 0

    def log(self, row: dict[str, Any]) -> None:
        self.count += 1
        step = int(row.get("step", self.count))
        metrics = {**metric_columns(row), PREFIX + "global_step": float(step)}
        for tracker in list(self.trackers):
            try:
                tracker.log(metrics, step)
            except Exception as err:  # a dashboard must not end hours of training
                self.trackers.remove(tracker)
                print(
                    f"warning: report_to {tracker.name} failed at step {step} ({type(err).__name__}: {err}); it is "
                    "off for the rest of this run; metrics.jsonl keeps every row",
                    file=sys.stderr,
                )
                _close(tracker, failed=True)

    def close(self, failed: bool) -> None:
        for tracker in self.trackers:
            _close(tracker, failed)
        self.trackers = []


def _close(tracker: Tracker, failed: bool) -> None:
    try:
        tracker.close(failed)
    except Exception as err:
        print(f"warning: report_to {tracker.name} did not close cleanly ({err})", file=sys.stderr)


_ACTIVE: contextvars.ContextVar[Streams | None] = contextvars.ContextVar("report_to_streams", default=None)


def stream(row: dict[str, Any]) -> None:
    """Send one metrics row (already in metrics.jsonl) to the run's trackers; nothing when none are open."""
    streams = _ACTIVE.get()
    if streams is not None:
        streams.log(row)


def run_identity(cfg: Any, out: Path, **identity: Any) -> dict[str, Any]:
    """paper, tier, variant, seed (given), the model the config names, the commit and whether the tree was dirty."""
    from repro.provenance import REPO_ROOT, git_state

    commit, dirty = git_state(REPO_ROOT)
    return {**identity, "model": cfg.model.name_or_path, "commit": commit, "git_dirty": dirty, "run_dir": str(out)}


@contextlib.contextmanager
def reporting(cfg: Any, out: Path, main: bool = True, **identity: Any) -> Iterator[None]:
    """Open the trackers `cfg.train.report_to` names for the run in `out` (on the main rank only), stream every row
    `stream` is given inside the block, close them after (marked failed if the block raised)."""
    names = chosen(cfg.train.report_to) if main else []
    if not names:
        if main and cfg.train.report_to in (ALL, [ALL]):
            print(f"report_to all: none of {', '.join(TRACKERS)} is installed here; metrics go to metrics.jsonl only")
        yield
        return
    require_installed(cfg.train.report_to, str(out))
    from repro.schema import to_dict

    run, config = run_identity(cfg, out, **identity), to_dict(cfg)
    streams = Streams(_open(names, out, run, config))
    token = _ACTIVE.set(streams)
    failed = True
    try:
        yield
        failed = False
    finally:
        _ACTIVE.reset(token)
        streams.close(failed)


def _open(names: list[str], out: Path, run: dict[str, Any], config: dict[str, Any]) -> list[Tracker]:
    """Start each tracker; one that cannot start closes those already started and stops the run before its first
    step (it was asked for by name: a silent run without it would be a surprise hours later)."""
    opened: list[Tracker] = []
    for name in names:
        try:
            opened.append(BACKENDS[name](out, run, config))
        except Exception as err:
            for tracker in opened:
                _close(tracker, failed=True)
            raise RuntimeError(
                f"{out}: {KEY}: {name} could not start ({type(err).__name__}: {err}); fix it or remove {name} from "
                f"{KEY} (metrics.jsonl is written either way)"
            ) from err
    for tracker in opened:
        print(f"report_to {tracker.name}: {tracker.where}")
    return opened
