"""CIFAR-10: the real JPEG ImageFolder tree and official-format python batches made here."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ctxfusion.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    prepare_cifar10,
    require_boxes,
)
from ctxfusion.data.datasets import ManifestDataset
from ctxfusion.data.manifest import load_manifest
from ctxfusion.errors import DataError

OFFICIAL_ORDER = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                  "ship", "truck"]


def write_batches(root: Path, per_batch: int = 6) -> tuple[Path, dict]:
    """The official ``cifar-10-batches-py`` format: pickled dicts, written as Python 2 did."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    expected = {"train": Counter(), "test": Counter()}
    first_pixels = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        first_pixels = data[0] if first_pixels is None else first_pixels
        split = "test" if name == "test_batch" else "train"
        expected[split].update(OFFICIAL_ORDER[i] for i in labels)
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in OFFICIAL_ORDER],
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder, {"counts": expected, "first_pixels": first_pixels}


def test_constants():
    assert CIFAR10_CLASSES == OFFICIAL_ORDER
    assert CIFAR10_MEAN == (0.4914, 0.4822, 0.4465)
    assert CIFAR10_STD == (0.2470, 0.2435, 0.2616)


def test_python_batches(tmp_path):
    _, made = write_batches(tmp_path / "root")
    manifest = prepare_cifar10(tmp_path / "root", tmp_path / "out", progress=False)
    assert manifest.classes == OFFICIAL_ORDER and manifest.has_boxes is False
    assert manifest.counts["split"] == {"train": 30, "test": 6}
    for split in ("train", "test"):
        got = Counter(e["label"] for e in manifest.images if e["split"] == split)
        assert got == made["counts"][split]
    assert any("differ from the official CIFAR-10 md5" in note for note in manifest.notes)
    assert len(manifest.source_sha256) == 6
    assert not any(p.name.startswith("images.tmp") for p in (tmp_path / "out").iterdir())
    dataset = ManifestDataset(tmp_path / "out", "train", 32)
    first = min(range(len(dataset)), key=lambda i: dataset.entries[i]["file_name"][-9:])
    image, label, boxes, _ = dataset[first]  # 00000.png: the first image of data_batch_1
    expected = made["first_pixels"].reshape(3, 32, 32).astype(np.float32) / 255
    assert np.allclose(image.numpy(), expected, atol=1e-6)  # PNG is lossless
    assert boxes.shape == (0, 4)
    with pytest.raises(DataError, match="blur inside boxes needs object boxes.*cifar10"):
        require_boxes(load_manifest(tmp_path / "out"), "blur inside boxes")
    again = prepare_cifar10(tmp_path / "root", tmp_path / "out", progress=False)  # re-export
    assert again.images == manifest.images


def test_tampered_batch_is_refused_without_running_it(tmp_path):
    folder, _ = write_batches(tmp_path / "root", per_batch=2)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_3 is not a readable CIFAR-10 python batch"):
        prepare_cifar10(tmp_path / "root", tmp_path / "out", progress=False)
    assert not marker.exists()


def test_bad_batches_and_missing_data(tmp_path):
    folder, _ = write_batches(tmp_path / "root", per_batch=2)
    (folder / "test_batch").write_bytes(pickle.dumps({b"labels": [1]}, protocol=2))
    with pytest.raises(DataError, match=r"test_batch lacks the key 'data'"):
        prepare_cifar10(tmp_path / "root", tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="no CIFAR-10 data in .*--download"):
        prepare_cifar10(tmp_path / "empty", tmp_path / "out2", progress=False)


def test_imagefolder_with_wrong_classes(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for name in ("cat", "dog", "zebra"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / name / "a.png")
    with pytest.raises(DataError, match=r"missing \['airplane'.*unexpected \['zebra'\]"):
        prepare_cifar10(tmp_path, tmp_path / "out", progress=False)


def test_real_cifar10_jpeg_tree(cifar10_jpeg, tmp_path):
    manifest = prepare_cifar10(cifar10_jpeg, tmp_path, progress=False)
    assert manifest.classes == OFFICIAL_ORDER
    assert manifest.counts["split"] == {"train": 50000, "test": 10000}
    per_class = Counter((e["split"], e["label"]) for e in manifest.images)
    assert all(per_class[("train", c)] == 5000 and per_class[("test", c)] == 1000
               for c in OFFICIAL_ORDER)
    assert manifest.skipped_images == [] and manifest.has_boxes is False
    test = ManifestDataset(tmp_path, "test", 224)
    image, label, boxes, _ = test[len(test) - 1]
    assert image.shape == (3, 224, 224) and label == 9 and boxes.shape == (0, 4)
    assert test.classes[label] == "truck"


def test_download_offline_fails_at_once_with_the_file_to_place(tmp_path, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DataError, match=r"cannot download CIFAR-10 .*Network is unreachable.*"
                                        r"cifar-10-python\.tar\.gz and unpack it into"):
        prepare_cifar10(tmp_path / "empty", tmp_path / "out", download=True, progress=False)
