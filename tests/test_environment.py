"""The environment is the locked one: a dependency release cannot change the numbers unnoticed."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "requirements-lock.txt"
PYPROJECT = LOCK.with_name("pyproject.toml")


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_every_installed_dependency_has_its_locked_version() -> None:
    wrong = {name: (version, metadata.version(name)) for name, version in _locked().items()
             if metadata.version(name) != version}
    assert not wrong, f"installed versions differ from requirements-lock.txt: {wrong}"


def test_every_declared_dependency_is_locked() -> None:
    text = PYPROJECT.read_text()
    declared = re.findall(r'^\s*"([A-Za-z0-9_.-]+)', text.split("dependencies = [", 1)[1]
                          .split("]", 1)[0], flags=re.M)
    declared += ["pytest", "ruff"]  # the test extra
    missing = [name for name in declared if name.lower().replace("_", "-") not in _locked()]
    assert not missing, f"not in requirements-lock.txt: {missing}"
