"""Gaussian blur of the pixels inside object boxes (SPEC §3, the natural-corruption sweep).

Written by hand rather than with ``torchvision.transforms.functional.gaussian_blur`` because
torchvision builds the full 2-D kernel (O(k^2) per pixel: about 500 ms per 224 px image at
sigma = 45) and pads with ``torch.nn.functional.pad(mode="reflect")``, which raises when the
kernel is wider than the image (sigma = 45 needs a 271-wide kernel on a 224 px image, and
any sigma needs more than a small box crop). Here: two 1-D convolutions (O(k) per pixel) and
padding by index mapping, which reflects as many times as needed, like scipy.ndimage.

Conventions
-----------
* Padding ``"reflect"`` (default) is scipy.ndimage's ``mode="reflect"`` (half-sample symmetric,
  the edge pixel repeated: ``d c b a | a b c d | d c b a``); ``"mirror"`` is scipy's
  ``mode="mirror"`` (whole-sample, edge not repeated: ``d c b | a b c d | c b a``, which is
  also torch's and torchvision's ``reflect``). Both repeat periodically for any kernel width.
* Box edge rule: pixel (row i, column j) has its centre at (x, y) = (j + 0.5, i + 0.5) and
  belongs to a box [x0, y0, x1, y1] (float XYXY pixels) when ``x0 <= x < x1`` and
  ``y0 <= y < y1``. A box covering pixels 10..19 is therefore [10, y0, 20, y1].
* ``sigma == 0`` returns the input unchanged (the "no blur" level of a sweep).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ..versioning import computation

PADDING_MODES = ("reflect", "mirror")
BLUR_MODES = ("image", "crop")

#: the version of the blur inside the boxes (kernel, padding, box masks, both modes)
BLUR = computation("blur", 1, "Gaussian blur inside the object boxes (perturb/blur.py)")


def gaussian_kernel1d(
    sigma: float,
    kernel_size: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Normalised 1-D Gaussian of std ``sigma``; size 2*ceil(3*sigma)+1 by default."""
    if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"blur sigma must be a finite number > 0, got {sigma!r}")
    if kernel_size is None:
        kernel_size = 2 * math.ceil(3 * sigma) + 1
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"blur kernel_size must be a positive odd integer, got {kernel_size!r}")
    radius = kernel_size // 2
    # Computed in float64 then cast, so float32 and float64 inputs see the same kernel values.
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def padding_indices(length: int, radius: int, mode: str = "reflect",
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Source index of each position of a signal of ``length`` padded by ``radius`` per side.

    Index mapping (not ``F.pad``) so the reflection repeats as often as the kernel needs.
    """
    if mode not in PADDING_MODES:
        raise ConfigError(
            f"blur padding mode {mode!r} is unknown; valid: {', '.join(PADDING_MODES)}"
        )
    idx = torch.arange(-radius, length + radius, device=device)
    if mode == "reflect":
        period = 2 * length
        idx = idx.remainder(period)
        return torch.where(idx >= length, period - 1 - idx, idx)
    if length == 1:
        return torch.zeros_like(idx)
    period = 2 * length - 2
    idx = idx.remainder(period)
    return torch.where(idx >= length, period - idx, idx)


def gaussian_blur_separable(
    images: torch.Tensor,
    sigma: float,
    *,
    kernel_size: int | None = None,
    padding: str = "reflect",
) -> torch.Tensor:
    """Blur (N,C,H,W) images with two 1-D Gaussian convolutions; differentiable, on their device."""
    if images.dim() != 4:
        raise DataError(f"images must have shape (N,C,H,W), got {tuple(images.shape)}")
    if sigma == 0:
        return images
    kernel = gaussian_kernel1d(sigma, kernel_size, dtype=images.dtype, device=images.device)
    height, width = images.shape[2:]
    radius = kernel.numel() // 2
    rows = padding_indices(height, radius, padding, images.device)
    cols = padding_indices(width, radius, padding, images.device)
    batch, channels = images.shape[:2]
    if images.device.type == "cpu" and images.dtype == torch.float32 and batch > 1 and channels:
        # oneDNN's depthwise convolution works on blocks of 16 channels, so 3 RGB channels
        # leave 13/16 of every block idle: folding the batch into the channels fills them
        # (2-3x faster on a 4-image batch here, benchmarks/bench_blur.py). Every output is
        # still the same sum of the same products in the same order, so the result is
        # bit-identical to the unfolded passes (checked by tests/test_blur.py).
        folded = images.reshape(1, batch * channels, height, width)
        return _separable_passes(folded, kernel, rows, cols).reshape(images.shape)
    return _separable_passes(images, kernel, rows, cols)


def _separable_passes(images: torch.Tensor, kernel: torch.Tensor, rows: torch.Tensor,
                      cols: torch.Tensor) -> torch.Tensor:
    """Horizontal then vertical 1-D pass over padded indices; groups=C applies the same
    kernel to every channel."""
    channels = images.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(images.index_select(3, cols), horizontal, groups=channels)
    return F.conv2d(out.index_select(2, rows), vertical, groups=channels)


def _check_boxes(images: torch.Tensor, boxes: Sequence[torch.Tensor]) -> None:
    if images.dim() != 4:
        raise DataError(f"images must have shape (N,C,H,W), got {tuple(images.shape)}")
    if len(boxes) != images.shape[0]:
        raise DataError(f"got {len(boxes)} box tensors for a batch of {images.shape[0]} images")
    for i, b in enumerate(boxes):
        if b.dim() != 2 or b.shape[1] != 4:
            raise DataError(f"boxes[{i}] must have shape (K,4) XYXY pixels, got {tuple(b.shape)}")


def pixel_ranges(box: torch.Tensor, height: int, width: int) -> tuple[int, int, int, int]:
    """Rows r0:r1 and columns c0:c1 of the pixels whose centres lie in the box (edge rule above)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    c0 = min(max(math.ceil(x0 - 0.5), 0), width)
    c1 = min(max(math.ceil(x1 - 0.5), 0), width)
    r0 = min(max(math.ceil(y0 - 0.5), 0), height)
    r1 = min(max(math.ceil(y1 - 0.5), 0), height)
    return r0, max(r1, r0), c0, max(c1, c0)


def boxes_mask(boxes: Sequence[torch.Tensor], height: int, width: int,
               device: torch.device | str | None = None) -> torch.Tensor:
    """(N,1,H,W) bool mask of the union of each image's boxes (pixel centres, half-open)."""
    mask = torch.zeros(len(boxes), 1, height, width, dtype=torch.bool, device=device)
    counts = [int(b.shape[0]) for b in boxes]
    if sum(counts) == 0:
        return mask
    flat = torch.cat([b.to(device=device, dtype=torch.float64) for b in boxes])
    owner = torch.repeat_interleave(torch.arange(len(boxes), device=device),
                                    torch.tensor(counts, device=device))
    xs = torch.arange(width, device=device, dtype=torch.float64) + 0.5
    ys = torch.arange(height, device=device, dtype=torch.float64) + 0.5
    in_x = (xs[None] >= flat[:, 0:1]) & (xs[None] < flat[:, 2:3])  # (B, W)
    in_y = (ys[None] >= flat[:, 1:2]) & (ys[None] < flat[:, 3:4])  # (B, H)
    per_box = (in_y[:, :, None] & in_x[:, None, :]).to(torch.int32)  # (B, H, W)
    hits = torch.zeros(len(boxes), height, width, dtype=torch.int32, device=device)
    hits.index_add_(0, owner, per_box)
    return (hits > 0).unsqueeze(1)


def blur_inside_boxes(
    images: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    sigma: float,
    mode: str = "image",
    *,
    padding: str = "reflect",
    blur: Callable[[torch.Tensor, float], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Gaussian-blur the pixels inside each image's boxes; pixels outside stay bit-identical.

    ``mode="image"`` (default): blur every whole image (one call for the batch) and keep the
    blurred values inside the union of the boxes, so context pixels near a box edge enter the
    blur of the object, as a camera defocus would.
    ``mode="crop"``: blur each box crop alone (padding reflects the crop itself) and paste it
    back, so nothing from the context leaks into the object. Overlapping boxes: every crop is
    blurred from the original image and, where crops overlap, their blurred values are averaged
    (order-independent).
    ``blur``: another whole-image ``blur(images, sigma)`` in place of
    :func:`gaussian_blur_separable` with ``padding`` (the benchmark compares others' blurs).
    """
    _check_boxes(images, boxes)
    if mode not in BLUR_MODES:
        raise ConfigError(f"blur mode {mode!r} is unknown; valid: {', '.join(BLUR_MODES)}")
    if isinstance(sigma, bool) or not (isinstance(sigma, int | float) and math.isfinite(sigma)
                                       and sigma >= 0):
        raise ConfigError(f"blur sigma must be a finite number >= 0, got {sigma!r}")
    if sigma == 0:
        return images
    if blur is None:
        blur = functools.partial(gaussian_blur_separable, padding=padding)
    height, width = images.shape[-2:]
    if mode == "image":
        mask = boxes_mask(boxes, height, width, images.device)
        if not bool(mask.any()):
            return images
        return torch.where(mask, blur(images, sigma), images)
    total = torch.zeros_like(images)
    count = torch.zeros(images.shape[0], 1, height, width, dtype=images.dtype,
                        device=images.device)
    for n, image_boxes in enumerate(boxes):
        for box in image_boxes:
            r0, r1, c0, c1 = pixel_ranges(box, height, width)
            if r1 <= r0 or c1 <= c0:
                continue
            crop = images[n : n + 1, :, r0:r1, c0:c1]
            total[n : n + 1, :, r0:r1, c0:c1] += blur(crop, sigma)
            count[n : n + 1, :, r0:r1, c0:c1] += 1
    covered = count > 0
    return torch.where(covered, total / count.clamp_min(1), images)
