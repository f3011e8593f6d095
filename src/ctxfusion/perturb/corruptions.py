"""Natural image corruptions (ImageNet-C style) through the ``imagecorruptions`` package.

``corrupt(images, name, severity)`` applies one corruption of Hendrycks & Dietterich's
ImageNet-C at severity 1..5 to a batch of [0,1] images; severity 0 is the identity (the
"clean" level of a sweep). The package is ``imagecorruptions-imaug`` (import name
``imagecorruptions``), the maintained fork; the original ``imagecorruptions`` needs
``pkg_resources``. Randomised corruptions (gaussian_noise, fog) are drawn under a local
seeded numpy state, so results are reproducible and the caller's numpy RNG is untouched.
The numpy global state is swapped for the duration of a call, so calls from several
threads at once are not reproducible.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch

from ..errors import ConfigError
from ..versioning import computation

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_blur",
    "gaussian_noise",
    "jpeg_compression",
    "contrast",
    "fog",
)
SEVERITIES: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
MIN_SIDE = 32  # imagecorruptions refuses images narrower or shorter than 32 pixels

#: the version of the corruptions (every name and severity, masks and seeding)
CORRUPTION = computation("corruptions", 1, "ImageNet-C corruptions inside a region "
                         "(perturb/corruptions.py)")


def _check_args(images: torch.Tensor, name: str, severity: int, seed: int) -> None:
    if name not in CORRUPTIONS:
        raise ConfigError(f"corruption {name!r} is unknown; valid: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, Integral) or (
        int(severity) not in SEVERITIES
    ):
        raise ConfigError(
            f"corruption severity must be an integer in {SEVERITIES[0]}..{SEVERITIES[-1]} "
            f"(valid: {', '.join(map(str, SEVERITIES))}), got {severity!r}"
        )
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError(
            f"corruption images must be a (N,3,H,W) tensor (3 RGB channels), got {shape}"
        )
    if not images.is_floating_point():
        raise ConfigError(
            f"corruption images must be floating point in [0,1], got dtype {images.dtype}"
        )
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0 or (
        int(seed) + images.shape[0] > 2**32
    ):
        raise ConfigError(
            f"corruption seed must be an integer >= 0 with seed + batch size <= 2**32, "
            f"got {seed!r}"
        )


def _check_mask(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Return ``mask`` as (N,1,H,W) bool on the images' device, or raise ConfigError."""
    n, _, h, w = images.shape
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        what = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ConfigError(f"corruption mask must be a bool tensor, got {what}")
    if tuple(mask.shape) == (n, h, w):
        mask = mask.unsqueeze(1)
    if tuple(mask.shape) != (n, 1, h, w):
        raise ConfigError(
            f"corruption mask must have shape (N,1,H,W) = {(n, 1, h, w)} or (N,H,W) = "
            f"{(n, h, w)} to match the images, got {tuple(mask.shape)}"
        )
    return mask.to(images.device)


def _to_hwc_uint8_range(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """The package's output as a float64 (H,W,3) array clipped to [0,255]."""
    out = np.asarray(array, dtype=np.float64)
    if out.ndim == 2:  # grayscale
        out = out[:, :, None]
    if out.ndim == 3 and out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    if out.shape != (height, width, 3):
        raise RuntimeError(
            f"imagecorruptions returned shape {out.shape} for a {height}x{width} RGB image"
        )
    return np.clip(out, 0.0, 255.0)


def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    mask: torch.Tensor | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Corrupt each image of a (N,3,H,W) [0,1] batch with ``name`` at ``severity`` (0..5).

    Severity 0 returns a clone of ``images``. Image ``i`` is corrupted with numpy's global
    RNG seeded to ``seed + i`` (restored afterwards), so the same (image, seed, index) always
    gives the same output. With ``mask`` ((N,1,H,W) or (N,H,W) bool, True where the
    corruption applies), pixels outside the mask keep exactly their input values. The result
    has the input's shape, dtype and device. H and W must be at least 32 pixels.
    """
    _check_args(images, name, severity, seed)
    severity = int(severity)
    seed = int(seed)
    checked_mask = _check_mask(mask, images) if mask is not None else None
    if severity == 0:
        return images.clone()
    n, _, h, w = images.shape
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ConfigError(
            f"corruption images must be at least {MIN_SIDE}x{MIN_SIDE} pixels "
            f"(imagecorruptions' limit), got {h}x{w}"
        )

    try:
        import imagecorruptions
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "natural corruptions need the package imagecorruptions-imaug "
            "(pip install imagecorruptions-imaug==1.1.5)"
        ) from exc

    # The package works on uint8 photos, as ImageNet-C did (its corruptions were defined
    # and calibrated on 8-bit JPEG images, and e.g. jpeg_compression goes through PIL, which
    # needs uint8): quantise to 0..255 with rounding, corrupt, and scale back to [0,1].
    # Values outside [0,1] are clamped first so they cannot wrap around in uint8.
    pixels = torch.round(images.detach().clamp(0.0, 1.0) * 255.0)
    hwc = pixels.to(device="cpu", dtype=torch.float64).permute(0, 2, 3, 1).numpy()
    hwc = hwc.astype(np.uint8)

    outputs = []
    for i in range(n):
        saved_state = np.random.get_state()
        try:
            np.random.seed(seed + i)
            result = imagecorruptions.corrupt(hwc[i], corruption_name=name, severity=severity)
        finally:
            np.random.set_state(saved_state)
        outputs.append(_to_hwc_uint8_range(result, h, w))

    stacked = np.stack(outputs) / 255.0  # (N,H,W,3) float64 in [0,1]
    corrupted = torch.from_numpy(stacked).permute(0, 3, 1, 2).to(
        device=images.device, dtype=images.dtype
    )
    if checked_mask is not None:
        return torch.where(checked_mask, corrupted, images)
    return corrupted.contiguous()
