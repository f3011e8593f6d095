"""A torch ``Dataset`` over a manifest: images, labels, boxes and ids for one split/subset.

Labels are re-indexed to the chosen subset: ``dataset.classes`` lists the subset's class
names in manifest order and label ``i`` means ``dataset.classes[i]`` (for ``subset=None`` or
``"all"`` these are the manifest's classes and labels equal manifest label indices).
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import Dataset

from ctxfusion.data.images import read_rgb
from ctxfusion.data.manifest import Manifest, load_manifest
from ctxfusion.data.transforms import RESIZE_POLICIES, box_aware_resize
from ctxfusion.errors import ConfigError, DataError

Sample = tuple[torch.Tensor, int, torch.Tensor, int]


class ManifestDataset(Dataset):
    """``(image (3,S,S) float [0,1], label int, boxes (K,4) XYXY in the S x S image, id int)``.

    ``manifest``: a ``Manifest``, a ``manifest.json`` path or its folder. ``split``: ``train``,
    ``test`` or ``all``. ``subset``: ``None``/``"all"``, ``"dissimilar"``, ``"similar"`` (any
    subset the manifest defines). ``resize``: ``"stretch"`` or ``"center_crop"`` (see
    :mod:`ctxfusion.data.transforms`).
    """

    def __init__(self, manifest: Manifest | str | os.PathLike, split: str, image_size: int,
                 subset: str | None = None, resize: str = "stretch") -> None:
        if resize not in RESIZE_POLICIES:
            raise ConfigError(f"resize policy {resize!r} is not valid; valid: "
                              f"{', '.join(RESIZE_POLICIES)}")
        self.manifest = load_manifest(manifest)
        self.split, self.subset, self.image_size, self.resize = split, subset, image_size, resize
        self.classes: list[str] = self.manifest.subset_classes(subset)
        self.class_to_idx: dict[str, int] = {name: i for i, name in enumerate(self.classes)}
        self.entries = self.manifest.entries(split, subset)
        if not self.entries:
            raise DataError(f"manifest {self.manifest.path}: no image in split {split!r}"
                            f"{f' and subset {subset!r}' if subset else ''}")

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def labels(self) -> torch.Tensor:
        """(N,) int64 labels of every item, in dataset order (no image is read)."""
        return torch.tensor([self.class_to_idx[e["label"]] for e in self.entries],
                            dtype=torch.int64)

    @property
    def image_ids(self) -> torch.Tensor:
        """(N,) int64 image ids (unique within the manifest), in dataset order."""
        return torch.tensor([e["id"] for e in self.entries], dtype=torch.int64)

    @property
    def has_boxes(self) -> bool:
        return self.manifest.has_boxes

    def __getitem__(self, index: int) -> Sample:
        entry = self.entries[index]
        image = read_rgb(self.manifest.image_path(entry))
        image, boxes = box_aware_resize(image, entry["boxes"], self.image_size, self.resize)
        return image, self.class_to_idx[entry["label"]], boxes, int(entry["id"])

    def __repr__(self) -> str:
        return (f"ManifestDataset({self.manifest.dataset!r}, split={self.split!r}, "
                f"subset={self.subset!r}, n={len(self)}, classes={self.num_classes}, "
                f"size={self.image_size}, resize={self.resize!r})")


def collate_with_boxes(
    batch: list[Sample],
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Batch samples into ``(images (N,3,S,S), labels (N,), list of (K_i,4) boxes, ids (N,))``."""
    images, labels, boxes, ids = zip(*batch, strict=True)
    return (torch.stack(images), torch.tensor(labels, dtype=torch.int64), list(boxes),
            torch.tensor(ids, dtype=torch.int64))
