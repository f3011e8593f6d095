"""CIFAR-10 as a box-free manifest, from the official python batches or an ImageFolder tree.

The official ``cifar-10-batches-py`` files are pickles. torchvision's ``CIFAR10`` reader opens
them with plain ``pickle.load``, which can run code from a tampered file; here the same files
(torchvision's file list, its download URL and checksums) are read with a restricted
unpickler that admits only numpy array reconstruction. Their images are exported once as PNGs
into ``<out>/images/{train,test}/<class>/`` (written into a temporary folder, then renamed, so
an interrupted export leaves nothing half-written), and one code path then reads every dataset.

Every batch is checked before anything is written: a file that is not a pickle of arrays, a
missing key, ``data`` not a uint8 array of shape (N, 3072), ``labels`` not N integers in 0..9,
``label_names`` other than the ten classes: :class:`DataError` naming the file and the field.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity, download_and_extract_archive
from tqdm import tqdm

from ctxfusion.data.imagefolder import prepare_imagefolder
from ctxfusion.data.manifest import Manifest, require_boxes, save_manifest
from ctxfusion.data.validate import show
from ctxfusion.errors import DataError
from ctxfusion.io import sha256_file
from ctxfusion.numpy_pickle import load_numpy_pickle

__all__ = ["CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "prepare_cifar10", "require_boxes"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
#: Per-channel statistics of the CIFAR-10 training images in [0,1] (the paper normalises both
#: datasets with them; the experiment config decides).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

def _read_batch(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch file not found: {path}")
    try:
        data = load_numpy_pickle(io.BytesIO(path.read_bytes()))
    except Exception as exc:  # any unpickling failure means: not a CIFAR-10 batch
        raise DataError(f"{path} is not a readable CIFAR-10 python batch: "
                        f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch: expected a dict, "
                        f"found {type(data).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in data.items()}


def _batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N,32,32,3) uint8 images and (N,) labels of one batch, validated."""
    batch = _read_batch(path)
    for key in ("data", "labels"):
        if key not in batch:
            raise DataError(f"CIFAR-10 batch {path} lacks the key {key!r} "
                            f"(found: {', '.join(map(str, batch))})")
    data, labels = batch["data"], batch["labels"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3072):
        found = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                 else type(data).__name__)
        raise DataError(f"{path}: data = {found}: expected a uint8 array of shape (N, 3072) "
                        "(N images, 3 x 32 x 32 values each)")
    if not (isinstance(labels, list | np.ndarray) and len(labels) == len(data)):
        found = f"{type(labels).__name__} of length {len(labels)}" if hasattr(
            labels, "__len__") else type(labels).__name__
        raise DataError(f"{path}: labels = {found}: expected a list of {len(data)} integers "
                        "(one per image of data)")
    for index, label in enumerate(labels):
        if not (isinstance(label, int | np.integer) and not isinstance(label, bool | np.bool_)
                and 0 <= label < len(CIFAR10_CLASSES)):
            raise DataError(f"{path}: labels[{index}] = {show(label)}: expected an integer "
                            f"in 0..{len(CIFAR10_CLASSES) - 1} (the class index)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int64)


def _find_batches(root: Path) -> Path | None:
    for folder in (root / CIFAR10.base_folder, root):
        if (folder / CIFAR10.meta["filename"]).is_file():
            return folder
    return None


def _export_pngs(batches: Path, out: Path, progress: bool) -> tuple[Path, bool]:
    """Write every image as PNG under ``out/images``; returns it and whether md5s matched."""
    meta = _read_batch(batches / CIFAR10.meta["filename"])
    raw = meta.get("label_names")
    names = ([n.decode("latin1") if isinstance(n, bytes) else n for n in raw]
             if isinstance(raw, list) else raw)
    if names != CIFAR10_CLASSES:
        raise DataError(f"{batches / CIFAR10.meta['filename']}: label_names {names} differ from "
                        f"the CIFAR-10 classes {CIFAR10_CLASSES}")
    files = [*CIFAR10.train_list, *CIFAR10.test_list]
    for file_name, _ in files:  # every batch is validated before anything is written
        _batch_arrays(batches / file_name)
    official = all(check_integrity(str(batches / name), md5) for name, md5 in files)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "images"
    tmp = out / f"images.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for split, file_list in (("train", CIFAR10.train_list), ("test", CIFAR10.test_list)):
        for name in CIFAR10_CLASSES:
            (tmp / split / name).mkdir(parents=True)
        count = 0
        for file_name, _ in file_list:
            images, labels = _batch_arrays(batches / file_name)
            for image, label in tqdm(zip(images, labels, strict=True), total=len(labels),
                                     desc=f"exporting {file_name}", disable=not progress,
                                     leave=False):
                path = tmp / split / CIFAR10_CLASSES[label] / f"{count:05d}.png"
                Image.fromarray(image).save(path, compress_level=1)
                count += 1
    old = out / f"images.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target, official


def prepare_cifar10(root: str | os.PathLike, out: str | os.PathLike, *, download: bool = False,
                    bad_images: str = "skip", progress: bool = True) -> Manifest:
    """Write a CIFAR-10 manifest (classes in the official order, ``has_boxes: false``).

    ``root`` holds the official python batches (``root/cifar-10-batches-py/`` or the batch files
    themselves; ``download=True`` fetches them when online) or an ImageFolder tree
    ``root/train/<class>/*`` and ``root/test/<class>/*``.
    """
    root, out = Path(root), Path(out)
    if download and _find_batches(root) is None:
        from ctxfusion.network import unreachable_reason

        if (reason := unreachable_reason(CIFAR10.url)) is not None:
            raise DataError(f"cannot download CIFAR-10 ({reason}): download {CIFAR10.url} and "
                            f"unpack it into {root} (giving {root}/{CIFAR10.base_folder}/)")
        try:
            download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename,
                                         md5=CIFAR10.tgz_md5)
        except Exception as exc:  # network errors come in many types; all mean "not fetched"
            raise DataError(f"could not download CIFAR-10 from {CIFAR10.url} into {root}: "
                            f"{type(exc).__name__}: {exc}") from exc
    batches = _find_batches(root)
    if batches is None:
        if (root / "train").is_dir() and (root / "test").is_dir():
            return prepare_imagefolder(root, out, class_order=CIFAR10_CLASSES, dataset="cifar10",
                                       bad_images=bad_images, progress=progress)
        raise DataError(f"no CIFAR-10 data in {root}: expected {root}/{CIFAR10.base_folder}/ "
                        f"(the official python batches; add --download when online) or "
                        f"{root}/train/<class>/ and {root}/test/<class>/ image folders")
    images_dir, official = _export_pngs(batches, out, progress)
    manifest = prepare_imagefolder(images_dir, out, class_order=CIFAR10_CLASSES,
                                   dataset="cifar10", bad_images="error", progress=progress,
                                   decode_images=False, keep_empty_classes=True)
    manifest.settings.update({"root": str(root.resolve()), "source": "python-batches"})
    manifest.source_sha256 = {name: sha256_file(batches / name) for name, _ in
                              [*CIFAR10.train_list, *CIFAR10.test_list]}
    manifest.notes.append(
        f"images exported as PNG from {batches}" + ("" if official else
        " (files differ from the official CIFAR-10 md5 checksums: not the official release)"))
    save_manifest(manifest, out)
    return manifest
