"""From a dataset config to prepared manifests and per-split loaders.

Prepared datasets live in ``$CTXFUSION_HOME/datasets/<name>-<settings hash>/`` and are reused
while their settings are unchanged; a manifest is written last (atomically), so a folder
without one is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from ctxfusion.config import DatasetConfig, ExperimentConfig
from ctxfusion.data.archives import archive_cache_name, unpack_once
from ctxfusion.data.cifar import prepare_cifar10
from ctxfusion.data.coco import prepare_coco
from ctxfusion.data.datasets import ManifestDataset, collate_with_boxes
from ctxfusion.data.imagefolder import prepare_imagefolder
from ctxfusion.data.manifest import MANIFEST_NAME, Manifest, load_manifest
from ctxfusion.errors import DataError
from ctxfusion.experiments.sweeps import SplitData
from ctxfusion.io import sha256_file
from ctxfusion.paths import expand_path, home_dir


def _settings_key(dataset: DatasetConfig) -> str:
    settings = {k: v for k, v in vars(dataset).items()
                if k not in ("max_train_per_class", "max_test_per_class", "subsets", "steps",
                             "image_size")}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def unpack_archive(archive: Path) -> Path:
    """Unpack a dataset archive once into ``$CTXFUSION_HOME/archives``."""
    return unpack_once(archive, home_dir() / "archives" / archive_cache_name(archive))


def _source_path(value: str | None, base: Path | None) -> Path | None:
    if value is None:
        return None
    path = expand_path(value)
    return base / path if base is not None and not path.is_absolute() else path


def prepare_dataset(dataset: DatasetConfig) -> Manifest:
    """Build (or reuse) the manifest of ``dataset``."""
    if dataset.kind == "manifest":
        return load_manifest(expand_path(dataset.manifest))
    out = home_dir() / "datasets" / f"{dataset.name}-{_settings_key(dataset)}"
    if (out / MANIFEST_NAME).is_file():
        return load_manifest(out)
    base = unpack_archive(expand_path(dataset.archive)) if dataset.archive else None
    if dataset.kind == "scenes":
        from ctxfusion.scenes.benchmark import generate_scenes

        raw = out / "raw"
        generate_scenes(
            raw, num_train=dataset.num_train, num_test=dataset.num_test,
            context_strength=dataset.context_strength, seed=dataset.seed,
        )
        return prepare_coco(
            annotations=raw / "instances_train.json", images=raw / "train",
            test_annotations=raw / "instances_test.json", test_images=raw / "test",
            out=out, num_classes=dataset.num_classes, classes=dataset.classes,
            seed=dataset.seed, instance_rule=dataset.instance_rule, dataset=dataset.name,
        )
    if dataset.kind == "coco":
        return prepare_coco(
            annotations=_source_path(dataset.annotations, base),
            images=_source_path(dataset.images, base),
            test_annotations=_source_path(dataset.test_annotations, base),
            test_images=_source_path(dataset.test_images, base),
            out=out, num_classes=dataset.num_classes, classes=dataset.classes,
            seed=dataset.seed, instance_rule=dataset.instance_rule, dataset=dataset.name,
        )
    if dataset.kind == "cifar10":
        root = _source_path(dataset.root, base) if dataset.root else base
        return prepare_cifar10(root=root, out=out)
    root = _source_path(dataset.root, base)
    return prepare_imagefolder(root=root, out=out, seed=dataset.seed, dataset=dataset.name)


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
    image_size: int,
) -> SplitData:
    """The (limited) split as a loader plus its labels, ids and a content digest."""
    full = ManifestDataset(manifest, split, image_size)
    labels = np.asarray(full.labels, dtype=np.int64)
    ids = np.asarray(full.image_ids, dtype=np.int64)
    if len(labels) == 0:
        raise DataError(f"dataset {dataset.name}: the {split} split is empty")
    limit = dataset.max_train_per_class if split == "train" else dataset.max_test_per_class
    keep = _limit_per_class(labels, limit, dataset.seed + (split == "test"))
    loader = DataLoader(
        Subset(full, keep.tolist()), batch_size=config.batch_size, shuffle=False,
        collate_fn=collate_with_boxes, num_workers=0,
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
