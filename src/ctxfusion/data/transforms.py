"""Box-aware geometry: resize/crop an image to a stream's square input, boxes following.

All geometry goes through ``torchvision.transforms.v2`` with ``tv_tensors.BoundingBoxes``, so
the boxes get exactly the transform the pixels get. Two policies:

- ``"stretch"`` (default): resize the whole image to S x S. The aspect ratio is not kept, but
  no object is ever cut off, and every box is kept (even one smaller than a pixel after
  resizing), inside the image (needed by blur-in-box).
- ``"center_crop"``: resize the shorter side to S, then centre-crop S x S (the usual ImageNet
  evaluation geometry). Boxes are clipped to the crop; boxes left smaller than 1 pixel
  (fully cropped out) are dropped.
"""

from __future__ import annotations

import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from ctxfusion.errors import ConfigError

RESIZE_POLICIES = ("stretch", "center_crop")


def _pipeline(size: int, resize: str) -> v2.Compose:
    if resize == "stretch":
        steps = [v2.Resize((size, size), antialias=True)]
    elif resize == "center_crop":
        steps = [v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.ClampBoundingBoxes(),
                 v2.SanitizeBoundingBoxes(min_size=1.0, min_area=1.0, labels_getter=None)]
    else:
        raise ConfigError(f"resize policy {resize!r} is not valid; valid: "
                          f"{', '.join(RESIZE_POLICIES)}")
    return v2.Compose([
        v2.ToImage(), *steps, v2.ToDtype(torch.float32, scale=True)])


def box_aware_resize(
    image: Image.Image | torch.Tensor,
    boxes_xywh: torch.Tensor | list[list[float]],
    size: int,
    resize: str = "stretch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize (and for ``center_crop`` crop) ``image`` to ``size`` x ``size``, boxes following.

    ``image``: a PIL RGB image or a (3,H,W) uint8/float tensor. ``boxes_xywh``: COCO
    ``[x, y, w, h]`` boxes in the image's pixels. Returns the (3,S,S) float image in [0,1] and
    the (K,4) float XYXY boxes in the S x S image.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"image size must be a positive integer, got {size!r}")
    height, width = (image.height, image.width) if isinstance(image, Image.Image) \
        else tuple(image.shape[-2:])
    boxes = torch.as_tensor(boxes_xywh, dtype=torch.float32).reshape(-1, 4)
    boxes = tv_tensors.BoundingBoxes(boxes, format="XYWH", canvas_size=(height, width))
    boxes = v2.ConvertBoundingBoxFormat("XYXY")(boxes)
    out_image, out_boxes = _pipeline(size, resize)(image, boxes)
    return out_image.as_subclass(torch.Tensor), out_boxes.as_subclass(torch.Tensor)
