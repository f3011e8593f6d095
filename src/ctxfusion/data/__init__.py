"""The data layer: prepare datasets into a manifest, then read them as a torch ``Dataset``.

Names are imported lazily so that ``ctxfusion <command>`` does not pay for torchvision and
pycocotools unless it uses them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Manifest": "manifest", "load_manifest": "manifest", "save_manifest": "manifest",
    "require_boxes": "manifest", "format_summary": "manifest",
    "prepare_coco": "coco", "load_coco": "coco", "union_area": "coco",
    "prepare_cifar10": "cifar", "CIFAR10_CLASSES": "cifar", "CIFAR10_MEAN": "cifar",
    "CIFAR10_STD": "cifar",
    "prepare_imagefolder": "imagefolder",
    "box_aware_resize": "transforms",
    "ManifestDataset": "datasets", "collate_with_boxes": "datasets",
    "read_rgb": "images",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ctxfusion.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ctxfusion.data.{_EXPORTS[name]}"), name)
