"""The golden rule itself: a changed output under an unchanged version fails, naming the
version to bump; a bumped version asks for ``make golden``; regeneration never rewrites a
reference whose version is unchanged."""

from __future__ import annotations

import json

import pytest
import torch
from tests.golden import golden, test_computations_golden

import ctxfusion.perturb.blur as blur


def test_a_changed_output_under_the_same_version_fails_naming_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(golden, "REFERENCES", tmp_path)
    monkeypatch.setattr(golden, "MODE", "regenerate")
    golden.check("toy", "ctxfusion.toy.TOY", 1, {"x": [1.0, 2.0]})
    monkeypatch.setattr(golden, "MODE", "check")
    golden.check("toy", "ctxfusion.toy.TOY", 1, {"x": [1.0, 2.0]})  # equal: passes
    with pytest.raises(AssertionError, match=r"changed but ctxfusion.toy.TOY is still 1: bump"):
        golden.check("toy", "ctxfusion.toy.TOY", 1, {"x": [1.0, 2.5]})
    with pytest.raises(AssertionError, match="regenerate it with `make golden`"):
        golden.check("toy", "ctxfusion.toy.TOY", 2, {"x": [1.0, 2.5]})
    monkeypatch.setattr(golden, "MODE", "regenerate")
    with pytest.raises(AssertionError, match="still 1: bump"):  # same version: not rewritten
        golden.check("toy", "ctxfusion.toy.TOY", 1, {"x": [9.0]})
    assert json.loads((tmp_path / "toy.json").read_text())["output"] == {"x": [1.0, 2.0]}
    golden.check("toy", "ctxfusion.toy.TOY", 2, {"x": [1.0, 2.5]})  # bumped: rewritten
    monkeypatch.setattr(golden, "MODE", "check")
    golden.check("toy", "ctxfusion.toy.TOY", 2, {"x": [1.0, 2.5]})


def test_a_real_change_to_the_blur_is_caught(monkeypatch) -> None:
    """A slightly wider Gaussian kernel (a plausible slip in a refactor) fails the blur's
    golden test and names ctxfusion.perturb.blur.BLUR."""
    monkeypatch.setattr(golden, "MODE", "check")
    original = blur.gaussian_kernel1d

    def wider(sigma, *args, **kwargs):
        return original(sigma * 1.01, *args, **kwargs)

    monkeypatch.setattr(blur, "gaussian_kernel1d", wider)
    scenes = test_computations_golden.scenes.__wrapped__()
    with pytest.raises(AssertionError, match=r"ctxfusion.perturb.blur.BLUR is still 1: bump"):
        test_computations_golden.test_blur(scenes)


def test_the_tolerance_is_stated_and_used(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(golden, "REFERENCES", tmp_path)
    monkeypatch.setattr(golden, "MODE", "regenerate")
    golden.check("close", "X", 1, golden.summarise(torch.ones(3)), rtol=1e-6)
    monkeypatch.setattr(golden, "MODE", "check")
    golden.check("close", "X", 1, golden.summarise(torch.ones(3) * (1 + 1e-8)), rtol=1e-6)
    with pytest.raises(AssertionError):
        golden.check("close", "X", 1, golden.summarise(torch.ones(3) * 1.001), rtol=1e-6)
