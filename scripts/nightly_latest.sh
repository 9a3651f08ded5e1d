#!/usr/bin/env bash
# The nightly regression run on the newest packages that pyproject.toml's ranges allow, instead of the locked ones
# (requirements.lock). A metric that moves is reported with the packages whose versions differ from the ones its
# baseline was recorded with (reports/nightly.md, "Packages moved since the baselines"), and those comparisons
# are statistical: exact comparisons need the baseline's packages (those requirements.lock names; torch stays at
# the CPU build).
#
#   scripts/nightly_latest.sh            # a virtual environment in .venv-latest, then `snakemake nightly` with it
#   VENV=/tmp/v scripts/nightly_latest.sh --config papers=dapo,dpo
#
# The warm starts (results/base) are reused as the locked environment built them; add `-R prepare_base` to
# rebuild them with the newest packages too. The nightly runs are retrained (-R train), so this run's results
# replace the locked nightly's under results/<paper>/nightly/.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-latest}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
"$VENV/bin/python" -m pip install --quiet torch==2.13.0  # the CPU build; a bare `torch` pulls CUDA's
# everything at the newest version its range allows, except torch: the newest on the index may be a CUDA build
# (gigabytes of GPU libraries on a CPU machine), so the CPU build installed above stays
TORCH=$("$VENV/bin/python" -c "import torch; print(torch.__version__)")
"$VENV/bin/python" -m pip install --quiet --upgrade --upgrade-strategy eager -e . "torch==$TORCH"
echo "packages that differ from requirements.lock:"
"$VENV/bin/python" - <<'PY'
import re
from importlib import metadata

for line in open("requirements.lock", encoding="utf-8"):
    match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;]+)", line)
    if match:
        name, locked = match.groups()
        try:
            now = metadata.version(name)
        except metadata.PackageNotFoundError:
            now = "not installed"
        if now.split("+")[0] != locked.split("+")[0]:
            print(f"  {name} {locked} -> {now}")
PY
# every job's `python` is the environment's (the Snakefile runs `python` from PATH unless --config python=...)
export PATH="$VENV/bin:$PATH"
exec python -m snakemake nightly -R train "$@"
