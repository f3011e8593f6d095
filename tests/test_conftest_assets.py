"""A missing ../shared asset skips a test, or fails it under ``CTXFUSION_REQUIRE_ASSETS=1``.

The check runs pytest in a subprocess on a generated test folder whose conftest loads this
repository's ``tests/conftest.py`` by path, with ``CTXFUSION_SHARED`` pointing to an empty
folder, so the real helper and fixtures decide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_CONFTEST = Path(__file__).resolve().with_name("conftest.py")

INNER_CONFTEST = f"""
import importlib.util

_spec = importlib.util.spec_from_file_location("_ctxfusion_repo_conftest", {str(REPO_CONFTEST)!r})
_repo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_repo)
shared_path = _repo.shared_path
coco_mini = _repo.coco_mini
"""

INNER_TEST = """
from conftest import shared_path


def test_helper_needs_an_asset():
    shared_path("data", "no-such-asset")


def test_fixture_needs_an_asset(coco_mini):
    pass
"""


@pytest.fixture(scope="module")
def inner_suite(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inner")
    (root / "conftest.py").write_text(INNER_CONFTEST)
    (root / "test_inner.py").write_text(INNER_TEST)
    empty = tmp_path_factory.mktemp("empty-shared")
    return root, empty


def _run_inner(root: Path, shared: Path, require: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CTXFUSION_REQUIRE_ASSETS", "PYTEST_ADDOPTS")}
    env["CTXFUSION_SHARED"] = str(shared)
    if require is not None:
        env["CTXFUSION_REQUIRE_ASSETS"] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "--rootdir",
         str(root), str(root / "test_inner.py")],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def test_missing_asset_skips_by_default(inner_suite):
    root, empty = inner_suite
    result = _run_inner(root, empty, require=None)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 skipped" in output and "real asset not available" in output
    assert str(empty) in output  # the reason names the missing path


def test_missing_asset_fails_when_assets_are_required(inner_suite):
    root, empty = inner_suite
    result = _run_inner(root, empty, require="1")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "skipped" not in output
    assert "CTXFUSION_REQUIRE_ASSETS=1" in output and "real asset not available" in output
    assert "1 failed" in output and "1 error" in output  # the fixture fails during setup
