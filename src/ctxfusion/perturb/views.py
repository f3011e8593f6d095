"""What part of the image a stream sees: ``full``, ``context`` or ``object`` (DESIGN: views).

Views are registered by name with ``@register_view(name, needs_boxes=...)``; ``make_view``
looks them up and ``VIEWS`` lists them (the config accepts any registered view).

A view is applied inside the model, before its stream, so attacks still see one
differentiable module (``FusionClassifier(views=[make_view("context"), None])``).

* ``full``: the image itself (the paper).
* ``context``: the union of the boxes filled with the image's mean colour over the pixels
  outside the boxes, so the output does not depend on any pixel inside a box. When the boxes
  cover the whole image there is no context to average: the fill is ``CONTEXT_FALLBACK_FILL``
  (0.5 gray).
* ``object``: the boxes' enclosing rectangle, cropped and resized to the input size with
  ``torchvision.ops.roi_align`` (bilinear, differentiable). Without boxes: the whole image.

Boxes follow the pixel-centre rule of :mod:`ctxfusion.perturb.blur`.
"""

from __future__ import annotations

from collections.abc import Callable, KeysView, Sequence

import torch

from ..errors import ConfigError
from ..versioning import computation
from .blur import _check_boxes, boxes_mask

CONTEXT_FALLBACK_FILL = 0.5

#: the version of the stream views (what part of the image each stream sees)
STREAM_VIEWS = computation("views", 1, "stream views: full, context, object (perturb/views.py)")

View = Callable[[torch.Tensor, Sequence[torch.Tensor] | None], torch.Tensor]

_VIEWS: dict[str, View] = {}
#: the registered view names (a live view of the registry, in registration order)
VIEWS: KeysView[str] = _VIEWS.keys()


def register_view(name: str, *, needs_boxes: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(images, boxes) -> images`` as the view ``name``.

    ``needs_boxes``: the view reads the batch's boxes; without them it raises a ConfigError
    saying how to bind them. Returns ``fn`` unchanged.
    """

    def decorate(fn: Callable) -> Callable:
        if name in _VIEWS:
            raise ValueError(f"view {name!r} is already registered")
        _VIEWS[name] = _needs_boxes(name, fn) if needs_boxes else fn
        return fn

    return decorate


def _needs_boxes(name: str, fn: Callable) -> View:
    def view(images: torch.Tensor, boxes: Sequence[torch.Tensor] | None) -> torch.Tensor:
        if boxes is None:
            raise ConfigError(
                f"view {name!r} needs the batch's boxes; bind them with "
                "FusionClassifier.with_boxes(boxes) (a list of (K,4) tensors, empty for none)"
            )
        return fn(images, boxes)

    view.__name__ = f"{name}_view"
    view.__doc__ = fn.__doc__
    return view


def unregister_view(name: str) -> None:
    """Remove a registered view (tests register toy ones)."""
    _VIEWS.pop(name, None)


@register_view("full")
def _full(images: torch.Tensor, boxes: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """The image itself."""
    return images


@register_view("context", needs_boxes=True)
def context_view(images: torch.Tensor, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Fill the boxes with the mean colour of the pixels outside them (per image, per channel)."""
    _check_boxes(images, boxes)
    inside = boxes_mask(boxes, *images.shape[-2:], device=images.device)
    outside = (~inside).to(images.dtype)
    n_outside = outside.sum(dim=(2, 3), keepdim=True)
    # torch.where, not a product with the mask: the inside pixels must not reach the mean
    # even as 0 * inf = nan.
    mean = torch.where(inside, torch.zeros_like(images), images).sum(dim=(2, 3), keepdim=True)
    mean = mean / n_outside.clamp_min(1)
    fill = torch.where(n_outside > 0, mean, torch.full_like(mean, CONTEXT_FALLBACK_FILL))
    return torch.where(inside, fill.expand_as(images), images)


def enclosing_boxes(boxes: Sequence[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """(N,4) XYXY rectangle enclosing each image's boxes, clipped; the whole image if none."""
    rects = []
    for b in boxes:
        b = b.to(torch.float32).cpu()
        if b.shape[0]:
            x0, y0 = b[:, 0].min().clamp(0, width), b[:, 1].min().clamp(0, height)
            x1, y1 = b[:, 2].max().clamp(0, width), b[:, 3].max().clamp(0, height)
            if x1 > x0 and y1 > y0:
                rects.append(torch.stack([x0, y0, x1, y1]))
                continue
        rects.append(torch.tensor([0.0, 0.0, float(width), float(height)]))
    return torch.stack(rects) if rects else torch.zeros(0, 4)


@register_view("object", needs_boxes=True)
def object_view(images: torch.Tensor, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Crop each image to its boxes' enclosing rectangle and resize it to the input size."""
    from torchvision.ops import roi_align  # deferred: torchvision takes 2 s to import

    _check_boxes(images, boxes)
    height, width = images.shape[-2:]
    rects = enclosing_boxes(boxes, height, width).to(device=images.device, dtype=images.dtype)
    index = torch.arange(images.shape[0], device=images.device, dtype=images.dtype)[:, None]
    # aligned=True: box coordinates are continuous pixel coordinates with pixel centres at
    # +0.5, the convention of our boxes; the whole-image box then maps every pixel to itself.
    return roi_align(images, torch.cat([index, rects], dim=1), output_size=(height, width),
                     spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def make_view(name: str) -> View:
    """The view ``name`` as a callable ``(images, boxes) -> images`` for ``FusionClassifier``."""
    if name not in _VIEWS:
        raise ConfigError(f"unknown view {name!r}; valid views: {', '.join(_VIEWS)}")
    return _VIEWS[name]
