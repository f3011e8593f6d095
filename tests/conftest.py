"""Shared fixtures: the real assets in ../shared (skipped with a reason where absent).

With ``CTXFUSION_REQUIRE_ASSETS=1`` (set by ``.ci/run``) a missing asset fails the test
instead, so CI cannot go green by skipping every test that needs the real data.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ctxfusion.data.archives import unpack_once
from ctxfusion.paths import shared_dir

# No test may start a download (the project's machines are offline; CI must be hermetic).
os.environ.setdefault("CTXFUSION_OFFLINE", "1")

SHARED = shared_dir()
# Archives from ../shared are unpacked once per machine here (../shared is read-only in CI).
UNPACK_CACHE = Path(
    os.environ.get("CTXFUSION_TEST_CACHE", Path.home() / ".cache" / "ctxfusion-tests")
)

# Tests use tiny tensors: one thread avoids oversubscription on small shared machines.
torch.set_num_threads(1)


def assets_required() -> bool:
    """Whether ``$CTXFUSION_REQUIRE_ASSETS`` asks for missing assets to fail tests."""
    return os.environ.get("CTXFUSION_REQUIRE_ASSETS", "").strip().lower() in {
        "1", "true", "yes", "on",
    }


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason (fail it instead when
    ``CTXFUSION_REQUIRE_ASSETS=1``)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f"real asset not available: {path} (set CTXFUSION_SHARED)"
        if assets_required():
            pytest.fail(f"{reason}; CTXFUSION_REQUIRE_ASSETS=1 makes this a failure")
        pytest.skip(reason)
    return path


def unpacked(archive_name: str, top_dir: str) -> Path:
    """Unpack ``../shared/data/<archive_name>`` once into the test cache; return ``top_dir``."""
    archive = shared_path("data", archive_name)
    target = unpack_once(archive, UNPACK_CACHE / archive_name.replace(".tar.gz", ""))
    return target / top_dir


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def coco_mini() -> Path:
    """``../shared/data/coco-mini`` (80 real COCO images with instances annotations)."""
    return shared_path("data", "coco-mini")


@pytest.fixture(scope="session")
def tiny_imagenet_boxes() -> Path:
    """The unpacked Tiny ImageNet box subset (real photos, boxes, own train/val split)."""
    return unpacked("tiny-imagenet-boxes.tar.gz", "tiny-imagenet-boxes")


@pytest.fixture(scope="session")
def cifar10_jpeg() -> Path:
    """The unpacked CIFAR-10 JPEG ImageFolder tree (train/<class>, test/<class>)."""
    return unpacked("cifar10-jpeg.tar.gz", "")


def run_demo_variant(tmp_path_factory, overrides: list[str],
                     name: str) -> tuple[Path, list[dict]]:
    """Run configs/demo-full.yaml with ``overrides`` in a fresh ``CTXFUSION_HOME``, without
    the figures and report.html (its callers read the tables); returns the run directory and
    the rows of its results.csv."""
    import csv

    from ctxfusion.config import load_config
    from ctxfusion.experiments import run_experiment

    patch = pytest.MonkeyPatch()
    patch.setenv("CTXFUSION_HOME", str(tmp_path_factory.mktemp("home")))
    try:
        out = tmp_path_factory.mktemp(name)
        demo_full = Path(__file__).resolve().parents[1] / "configs" / "demo-full.yaml"
        run_experiment(load_config(demo_full, overrides), out, report=False)
    finally:
        patch.undo()
    with open(out / "results.csv", newline="") as handle:
        return out, list(csv.DictReader(handle))
