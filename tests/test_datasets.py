"""ManifestDataset, box-aware transforms, robust image reading, ImageFolder manifests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ctxfusion.data.coco import prepare_coco
from ctxfusion.data.datasets import ManifestDataset, collate_with_boxes
from ctxfusion.data.imagefolder import prepare_imagefolder
from ctxfusion.data.images import check_image, read_rgb
from ctxfusion.data.manifest import load_manifest
from ctxfusion.data.transforms import box_aware_resize
from ctxfusion.errors import ConfigError, DataError
from test_coco_rules import write_coco


def test_stretch_moves_boxes_with_pixels():
    image = torch.zeros(3, 100, 200, dtype=torch.uint8)
    image[:, 20:60, 40:80] = 255  # the object: x 40..80, y 20..60
    out, boxes = box_aware_resize(image, [[40, 20, 40, 40]], 50)
    assert out.shape == (3, 50, 50) and out.dtype == torch.float32
    assert torch.allclose(boxes, torch.tensor([[10.0, 10.0, 20.0, 30.0]]))
    x0, y0, x1, y1 = boxes[0].int().tolist()
    assert out[0, y0 + 1:y1 - 1, x0 + 1:x1 - 1].min() > 0.99  # white inside the moved box
    assert out[0, :, :x0 - 1].max() < 0.01


def test_center_crop_clips_and_drops_boxes():
    image = Image.new("RGB", (200, 100))
    boxes = [[10, 10, 20, 40], [95, 0, 10, 10], [80, 50, 60, 40]]
    out, got = box_aware_resize(image, boxes, 50, resize="center_crop")
    # resize to 100x50 (scale 0.5), crop x 25..75: box 1 is cut off, box 3 is clipped
    assert out.shape == (3, 50, 50)
    assert torch.allclose(got, torch.tensor([[22.5, 0.0, 27.5, 5.0], [15.0, 25.0, 45.0, 45.0]]))
    with pytest.raises(ConfigError, match="resize policy 'zoom' is not valid"):
        box_aware_resize(image, boxes, 50, resize="zoom")


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "LA", "I;16", "1"])
def test_any_mode_reads_as_rgb(tmp_path, mode):
    path = tmp_path / f"x.{'tif' if mode == 'CMYK' else 'png'}"
    image = Image.new("RGB", (9, 7), (200, 100, 50)).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.full((7, 9), 40000, dtype=np.uint16))
    if mode == "P":
        image.info["transparency"] = 0
    image.save(path)
    assert check_image(path).ok
    rgb = read_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (9, 7)
    if mode == "I;16":
        assert np.asarray(rgb)[0, 0, 0] == round(40000 / 65535 * 255)


def test_read_rgb_names_the_bad_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match=r"cannot read image .*broken\.jpg"):
        read_rgb(bad)
    with pytest.raises(DataError, match="image file not found"):
        read_rgb(tmp_path / "nope.png")


@pytest.fixture()
def coco_manifest(tmp_path):
    ann, images = write_coco(tmp_path)
    return prepare_coco(ann, images, tmp_path / "out", subset_size=2, progress=False)


def test_manifest_dataset_items_and_accessors(coco_manifest):
    for source in (coco_manifest, coco_manifest.path, coco_manifest.path.parent):
        dataset = ManifestDataset(source, "train", 40)
        assert dataset.classes == coco_manifest.classes
    train = ManifestDataset(coco_manifest, "train", 40)
    test = ManifestDataset(coco_manifest, "test", 40)
    assert len(train) + len(test) == len(coco_manifest.images)
    assert train.labels.tolist() == [coco_manifest.classes.index(e["label"])
                                     for e in train.entries]
    assert set(train.image_ids.tolist()).isdisjoint(test.image_ids.tolist())
    by_id = {e["id"]: e for e in coco_manifest.images}
    for index in range(len(train)):
        image, label, boxes, image_id = train[index]
        assert image.shape == (3, 40, 40) and 0.0 <= image.min() and image.max() <= 1.0
        entry = by_id[image_id]
        assert train.classes[label] == entry["label"]
        expected = torch.tensor([[x * 2, y * 4, (x + w) * 2, (y + h) * 4]  # 20x10 -> 40x40
                                 for x, y, w, h in entry["boxes"]], dtype=torch.float32)
        assert torch.allclose(boxes, expected)
    images, labels, boxes, ids = next(iter(DataLoader(train, batch_size=3,
                                                      collate_fn=collate_with_boxes)))
    assert images.shape == (3, 3, 40, 40) and labels.dtype == torch.int64
    assert isinstance(boxes, list) and len(boxes) == 3 and ids.shape == (3,)


def test_subset_reindexes_labels(coco_manifest):
    similar = ManifestDataset(coco_manifest, "all", 16, subset="similar")
    assert similar.classes == [c for c in coco_manifest.classes
                               if c in coco_manifest.subsets["similar"]]
    assert set(similar.labels.tolist()) == set(range(similar.num_classes))
    assert {e["label"] for e in similar.entries} == set(similar.classes)
    with pytest.raises(DataError, match="subset 'nope' is not in manifest.*valid: all, "):
        ManifestDataset(coco_manifest, "train", 16, subset="nope")
    with pytest.raises(DataError, match="split 'val' is not valid"):
        ManifestDataset(coco_manifest, "val", 16)


def test_load_manifest_errors(tmp_path, coco_manifest):
    with pytest.raises(DataError, match="no manifest at .*ctxfusion prepare"):
        load_manifest(tmp_path / "missing")
    bad = tmp_path / "bad.json"
    bad.write_text("[")
    with pytest.raises(DataError, match="not valid JSON"):
        load_manifest(bad)
    data = json.loads(coco_manifest.path.read_text())
    del data["classes"]
    bad.write_text(json.dumps(data))
    with pytest.raises(DataError, match="lacks the key 'classes'"):
        load_manifest(bad)


def test_unreadable_image_at_training_time_names_it(coco_manifest):
    entry = coco_manifest.images[0]
    coco_manifest.image_path(entry).write_bytes(b"broken")
    dataset = ManifestDataset(coco_manifest, entry["split"], 16)
    index = [e["id"] for e in dataset.entries].index(entry["id"])
    with pytest.raises(DataError, match=entry["file_name"]):
        dataset[index]


def make_tree(root, layout):
    for rel, size in layout.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (10, 20, 30)).save(root / rel)


def test_imagefolder_random_split_and_own_split(tmp_path):
    layout = {f"{c}/{i}.png": (8 + i, 6) for c in ("b_cls", "a_cls") for i in range(4)}
    make_tree(tmp_path / "flat", {**layout, "single/0.jpg": (5, 5)})
    (tmp_path / "flat" / "a_cls" / "3.png").write_bytes(b"truncated")
    manifest = prepare_imagefolder(tmp_path / "flat", tmp_path / "o1", seed=1, progress=False)
    assert manifest.classes == ["a_cls", "b_cls", "single"] and not manifest.has_boxes
    splits = [(e["label"], e["split"]) for e in manifest.images]
    assert splits.count(("a_cls", "test")) == 1 and splits.count(("b_cls", "test")) == 1
    assert ("single", "train") in splits and any("'single'" in n for n in manifest.notes)
    assert manifest.skipped_images[0]["file_name"] == "a_cls/3.png"
    assert {e["width"] for e in manifest.images if e["label"] == "b_cls"} == {8, 9, 10, 11}
    make_tree(tmp_path / "split", {"train/x/0.png": (4, 4), "train/y/0.png": (4, 4),
                                   "test/x/1.png": (4, 4)})
    own = prepare_imagefolder(tmp_path / "split", tmp_path / "o2", progress=False)
    assert [(e["file_name"], e["split"]) for e in own.images] == [
        ("train/x/0.png", "train"), ("train/y/0.png", "train"), ("test/x/1.png", "test")]
    dataset = ManifestDataset(own, "test", 8)
    assert dataset[0][0].shape == (3, 8, 8) and dataset[0][2].shape == (0, 4)
    make_tree(tmp_path / "bad", {"train/x/0.png": (4, 4), "test/z/0.png": (4, 4)})
    with pytest.raises(DataError, match=r"class folders \['z'\] that the train folder lacks"):
        prepare_imagefolder(tmp_path / "bad", tmp_path / "o3", progress=False)
    make_tree(tmp_path / "onlytrain", {"train/x/0.png": (4, 4)})
    (tmp_path / "onlytrain" / "test" / "x").mkdir(parents=True)
    (tmp_path / "onlytrain" / "test" / "x" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="test split of .* ends empty"):
        prepare_imagefolder(tmp_path / "onlytrain", tmp_path / "o4", progress=False)
