"""Natural corruptions (ImageNet-C style): ctxfusion.perturb.corruptions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctxfusion.errors import ConfigError
from ctxfusion.perturb.corruptions import CORRUPTIONS, SEVERITIES, corrupt

pytest.importorskip("imagecorruptions")


def _images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Smooth RGB gradients plus seeded noise, so blur, contrast and fog change them visibly."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h).view(1, 1, h, 1).expand(1, 1, h, w)
    x = torch.linspace(0, 1, w).view(1, 1, 1, w).expand(1, 1, h, w)
    base = torch.cat([0.2 + 0.6 * x, 0.2 + 0.6 * y, 0.5 * (x + y)], dim=1)
    return (0.7 * base + 0.3 * torch.rand(n, 3, h, w, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module", params=["square", "non_square"])
def images(request: pytest.FixtureRequest) -> torch.Tensor:
    # imagecorruptions needs H and W >= 32, so the non-square batch is 48x36, not smaller.
    return _images(2, 32, 32, seed=0) if request.param == "square" else _images(1, 48, 36, seed=1)


def _mean_change(images: torch.Tensor, name: str, severity: int) -> float:
    return (corrupt(images, name, severity) - images).abs().mean().item()


def test_constants() -> None:
    assert CORRUPTIONS == ("gaussian_blur", "gaussian_noise", "jpeg_compression", "contrast", "fog")
    assert SEVERITIES == (0, 1, 2, 3, 4, 5)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_zero_is_identity(images: torch.Tensor, name: str) -> None:
    out = corrupt(images, name, 0)
    assert torch.equal(out, images)
    assert out is not images and out.data_ptr() != images.data_ptr()


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_corruption_changes_image_in_range(images: torch.Tensor, name: str, severity: int) -> None:
    out = corrupt(images, name, severity)
    assert out.shape == images.shape
    assert out.dtype == images.dtype
    assert out.device == images.device
    assert out.min() >= 0 and out.max() <= 1
    assert (out - images).abs().mean() > 0.01  # visibly changed, not just uint8 rounding


def test_keeps_float64_dtype() -> None:
    imgs = _images(1, 32, 32, seed=2).double()
    out = corrupt(imgs, "contrast", 3)
    assert out.dtype == torch.float64
    assert out.shape == imgs.shape


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_change_grows_with_severity(images: torch.Tensor, name: str) -> None:
    changes = [_mean_change(images, name, s) for s in range(1, 6)]
    assert changes[-1] > changes[0], changes
    # jpeg quality steps and fog's random fractal are not exactly monotone on tiny images.
    slack = 0.005 if name in ("jpeg_compression", "fog") else 0.0
    for lower, higher in zip(changes, changes[1:], strict=False):
        assert higher >= lower - slack, changes


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("squeeze", [False, True], ids=["N1HW", "NHW"])
def test_mask_limits_corruption_to_box(name: str, squeeze: bool) -> None:
    imgs = _images(2, 32, 32, seed=3)
    mask = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    mask[:, :, 8:24, 10:26] = True
    out = corrupt(imgs, name, 4, mask=mask[:, 0] if squeeze else mask)
    outside = ~mask.expand_as(imgs)
    assert torch.equal(out[outside], imgs[outside])  # exact: no uint8 round trip outside
    inside = mask.expand_as(imgs)
    assert (out[inside] - imgs[inside]).abs().mean() > 0.01


@pytest.mark.parametrize("name", ["gaussian_noise", "fog"])
def test_same_seed_reproducible(name: str) -> None:
    imgs = _images(2, 32, 32, seed=4)
    assert torch.equal(corrupt(imgs, name, 3, seed=7), corrupt(imgs, name, 3, seed=7))
    np.random.seed(123)  # the caller's numpy state must not matter
    a = corrupt(imgs, name, 3, seed=7)
    np.random.seed(999)
    assert torch.equal(a, corrupt(imgs, name, 3, seed=7))


def test_image_seeded_by_seed_plus_index() -> None:
    imgs = _images(2, 32, 32, seed=5)
    batch = corrupt(imgs, "gaussian_noise", 2, seed=10)
    alone = corrupt(imgs[1:2], "gaussian_noise", 2, seed=11)
    assert torch.equal(batch[1:2], alone)


def test_different_seeds_give_different_noise() -> None:
    imgs = _images(2, 32, 32, seed=6)
    a = corrupt(imgs, "gaussian_noise", 3, seed=0)
    b = corrupt(imgs, "gaussian_noise", 3, seed=1000)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_numpy_global_state_unchanged(name: str) -> None:
    imgs = _images(1, 32, 32, seed=7)
    np.random.seed(2024)
    before = np.random.get_state()
    corrupt(imgs, name, 5, seed=3)
    after = np.random.get_state()
    assert before[0] == after[0]
    assert np.array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_unknown_name_lists_valid() -> None:
    with pytest.raises(ConfigError, match="unknown") as info:
        corrupt(_images(1, 32, 32, seed=0), "snowstorm", 1)
    for name in CORRUPTIONS:
        assert name in str(info.value)


@pytest.mark.parametrize("severity", [6, -1, 1.5, True, "3"])
def test_bad_severity(severity: object) -> None:
    with pytest.raises(ConfigError, match=r"0\.\.5") as info:
        corrupt(_images(1, 32, 32, seed=0), "contrast", severity)  # type: ignore[arg-type]
    assert "0, 1, 2, 3, 4, 5" in str(info.value)


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (3, 32, 32), (1, 4, 32, 32)])
def test_bad_image_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match=r"\(N,3,H,W\)"):
        corrupt(torch.rand(*shape), "contrast", 1)


def test_integer_images_rejected() -> None:
    with pytest.raises(ConfigError, match="floating point"):
        corrupt(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "contrast", 1)


def test_too_small_images_rejected() -> None:
    with pytest.raises(ConfigError, match="at least 32x32"):
        corrupt(torch.rand(1, 3, 40, 24), "contrast", 1)


@pytest.mark.parametrize(
    "mask",
    [
        torch.ones(1, 1, 16, 16, dtype=torch.bool),
        torch.ones(2, 1, 32, 32, dtype=torch.bool),
        torch.ones(1, 3, 32, 32, dtype=torch.bool),
    ],
)
def test_bad_mask_shape(mask: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="mask must have shape"):
        corrupt(_images(1, 32, 32, seed=0), "contrast", 1, mask=mask)


def test_non_bool_mask_rejected() -> None:
    with pytest.raises(ConfigError, match="bool"):
        corrupt(_images(1, 32, 32, seed=0), "contrast", 1, mask=torch.ones(1, 1, 32, 32))
