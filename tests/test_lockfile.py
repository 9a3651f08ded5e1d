"""requirements.lock pins every dependency of pyproject.toml (and its test extra) to one version its range allows,
and the environment running the tests is the locked one for the packages numerics depend on."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# what a run's numbers depend on: a different version of one of these changes results (issue 26)
NUMERICS_PACKAGES = ("torch", "transformers", "accelerate", "trl", "numpy", "safetensors", "tokenizers")


def locked() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, version = spec.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = locked()
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (text, str(pins[name]))


def unlocked_numerics_packages() -> list[str]:
    """The packages numerics depend on whose installed version is not the locked one (empty: a locked install)."""
    pins = locked()
    return [
        f"{name} {importlib.metadata.version(name)} (locked {pins[canonicalize_name(name)]})"
        for name in NUMERICS_PACKAGES
        if Version(importlib.metadata.version(name)).public != pins[canonicalize_name(name)].public
    ]


def test_ci_and_the_readme_install_from_the_lock() -> None:
    assert "-r requirements.lock" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    setup = (ROOT / "README.md").read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```", 1)[0]
    assert setup.count("pip install -r requirements.lock") == 2
