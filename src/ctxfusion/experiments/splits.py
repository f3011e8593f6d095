"""From a dataset config to prepared manifests and per-split loaders.

``prepare_dataset`` is the dispatcher of :mod:`ctxfusion.data.kinds`: prepared datasets live in
``$CTXFUSION_HOME/datasets/<name>-<settings hash>/`` and are reused while their settings are
unchanged; a manifest is written last (atomically), so a folder without one is rebuilt.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from ctxfusion.config import DatasetConfig, ExperimentConfig
from ctxfusion.data.datasets import ManifestDataset, collate_with_boxes
from ctxfusion.data.kinds import prepare_dataset
from ctxfusion.data.manifest import Manifest
from ctxfusion.errors import DataError
from ctxfusion.execution import default_num_workers
from ctxfusion.experiments.sweeps import SplitData
from ctxfusion.io import sha256_file

__all__ = ["load_split", "prepare_dataset"]


def _limit_per_class(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Indices keeping at most ``limit`` images per class (seeded, order preserved)."""
    if limit is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) > limit:
            members = np.sort(rng.choice(members, size=limit, replace=False))
        keep.append(members)
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


def load_split(
    config: ExperimentConfig, dataset: DatasetConfig, manifest: Manifest, split: str,
    image_size: int, device: torch.device | None = None,
) -> SplitData:
    """The (limited) split as a loader plus its labels, ids and a content digest; batches are
    pinned in memory for a CUDA ``device``."""
    full = ManifestDataset(manifest, split, image_size)
    labels = np.asarray(full.labels, dtype=np.int64)
    ids = np.asarray(full.image_ids, dtype=np.int64)
    if len(labels) == 0:
        raise DataError(f"dataset {dataset.name}: the {split} split is empty")
    limit = dataset.max_train_per_class if split == "train" else dataset.max_test_per_class
    keep = _limit_per_class(labels, limit, dataset.seed + (split == "test"))
    device = device or torch.device("cpu")
    workers = config.num_workers
    loader = DataLoader(  # workers decode while the model runs; batches keep their order
        Subset(full, keep.tolist()), batch_size=config.batch_size, shuffle=False,
        collate_fn=collate_with_boxes,
        num_workers=default_num_workers(device) if workers is None else workers,
        pin_memory=device.type == "cuda",
    )
    digest = hashlib.sha256(
        json.dumps({
            "manifest": sha256_file(manifest.path) if manifest.path else manifest.dataset,
            "split": split, "image_size": image_size,
        }).encode() + ids[keep].tobytes()
    ).hexdigest()
    return SplitData(
        name=split, loader=loader, labels=torch.from_numpy(labels[keep]),
        ids=torch.from_numpy(ids[keep]), digest=digest,
    )
