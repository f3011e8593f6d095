"""The COCO pipeline on real files: COCO-mini (80 real images) and Tiny ImageNet boxes.

Expected counts are computed here from the raw JSON with plain ``json``, independently of
``ctxfusion.data.coco``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ctxfusion.data.coco import prepare_coco
from ctxfusion.data.datasets import ManifestDataset


def independent_counts(path: Path, rule: str = "image") -> tuple[dict, dict[int, str]]:
    """Images left after each rule and the label of each survivor, from the raw JSON."""
    data = json.loads(path.read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_image: dict[int, list] = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann)
    counts = Counter(images=len(data["images"]))
    survivors = {}
    for img in data["images"]:
        anns = by_image[img["id"]]
        if not anns:
            continue
        counts["annotated"] += 1
        if any(a["iscrowd"] for a in anns):
            continue
        counts["no_crowd"] += 1
        anns = [a for a in anns if a["bbox"][2] > 0 and a["bbox"][3] > 0]
        counts["valid_boxes"] += 1
        cats = Counter(a["category_id"] for a in anns)
        if rule == "image":
            if len(cats) != 1 or len(anns) > 2:
                continue
            label = next(iter(cats))
        else:
            area = Counter()
            for a in anns:
                area[a["category_id"]] += a["bbox"][2] * a["bbox"][3]
            label = min(area, key=lambda c: (-area[c], c))
            if cats[label] > 2:
                continue
        counts["instances"] += 1
        boxes = [a["bbox"] for a in anns if a["category_id"] == label]
        union = sum(b[2] * b[3] for b in boxes)
        if len(boxes) == 2:  # inclusion-exclusion for two boxes
            (x0, y0, w0, h0), (x1, y1, w1, h1) = boxes
            dx = max(0, min(x0 + w0, x1 + w1) - max(x0, x1))
            dy = max(0, min(y0 + h0, y1 + h1) - max(y0, y1))
            union -= dx * dy
        if union > 0.5 * img["width"] * img["height"]:
            continue
        counts["foreground"] += 1
        survivors[img["id"]] = names[label]
    return dict(counts), survivors


@pytest.mark.parametrize("rule", ["image", "category"])
def test_coco_mini_counts_match_independent_computation(coco_mini, tmp_path, rule):
    ann = coco_mini / "annotations" / "instances_train2017.json"
    expected, survivors = independent_counts(ann, rule)
    manifest = prepare_coco(ann, coco_mini / "train2017", tmp_path, num_classes=80,
                            instance_rule=rule, progress=False)
    pruning = manifest.counts["pruning"]["annotations"]
    assert {k: pruning[k] for k in expected} == expected
    assert pruning["readable"] == expected["foreground"]  # the real files all decode
    assert {e["source_id"]: e["label"] for e in manifest.images} == survivors
    for entry in manifest.images:
        (x, y, w, h), *rest = entry["boxes"]
        assert len(rest) <= 1
        assert w * h <= 0.5 * entry["width"] * entry["height"]


def test_coco_mini_subsets_and_split(coco_mini, tmp_path):
    ann = coco_mini / "annotations" / "instances_train2017.json"
    args = dict(num_classes=12, instance_rule="category", subset_size=4, progress=False)
    manifest = prepare_coco(ann, coco_mini / "train2017", tmp_path / "a", seed=0, **args)
    supers = manifest.supercategories
    similar = manifest.subsets["similar"]
    assert len(similar) >= 2 and len({supers[n] for n in similar}) == 1
    dissimilar = manifest.subsets["dissimilar"]
    assert len(dissimilar) == 4 and len({supers[n] for n in dissimilar}) == 4
    again = prepare_coco(ann, coco_mini / "train2017", tmp_path / "b", seed=0, **args)
    assert again.images == manifest.images and again.subsets == manifest.subsets
    per_class = Counter((e["label"], e["split"]) for e in manifest.images)
    for name in manifest.classes:  # stratified: every class with 2+ images has a test image
        total = per_class[(name, "train")] + per_class[(name, "test")]
        assert per_class[(name, "test")] == (max(1, round(total * 0.25)) if total > 1 else 0)
    tests = {frozenset(e["id"] for e in prepare_coco(
        ann, coco_mini / "train2017", tmp_path / f"s{seed}", seed=seed, **args).images
        if e["split"] == "test") for seed in range(1, 5)}
    assert len(tests) > 1
    dataset = ManifestDataset(manifest, "train", 96, subset="similar")
    image, label, boxes, image_id = dataset[0]
    assert image.shape == (3, 96, 96) and 0 <= label < len(similar) and boxes.shape[1] == 4


def test_tiny_imagenet_boxes_with_own_split(tiny_imagenet_boxes, tmp_path):
    root = tiny_imagenet_boxes
    expected_train, train_labels = independent_counts(root / "instances_train.json")
    expected_val, val_labels = independent_counts(root / "instances_val.json")
    assert expected_train["foreground"] == 9282 and expected_val["foreground"] == 918  # ASSETS.md
    manifest = prepare_coco(root / "instances_train.json", root / "train", tmp_path,
                            test_annotations=root / "instances_val.json",
                            test_images=root / "val", seed=0, progress=False)
    pruning = manifest.counts["pruning"]
    for role, expected in (("annotations", expected_train), ("test_annotations", expected_val)):
        assert {k: pruning[role][k] for k in expected} == expected
    ranked = Counter(train_labels.values())
    top = sorted(ranked, key=lambda n: -ranked[n])[:24]  # ties: check by count only
    assert len(manifest.classes) == 24
    assert sorted(ranked[n] for n in manifest.classes) == sorted(ranked[n] for n in top)
    per_split = Counter((e["split"], e["label"]) for e in manifest.images)
    val_ranked = Counter(val_labels.values())
    for name in manifest.classes:
        assert per_split[("train", name)] == ranked[name]
        assert per_split[("test", name)] == val_ranked[name]
    assert manifest.counts["split"]["test"] == sum(val_ranked[n] for n in manifest.classes)
    supers = manifest.supercategories
    assert {supers[n] for n in manifest.subsets["similar"]} == {"animal"}
    assert len({supers[n] for n in manifest.subsets["dissimilar"]}) == 8
    # file_name "train/<wnid>/x.JPEG" is stored relative to the given --images folder
    first = manifest.images[0]
    assert not first["file_name"].startswith("train/")
    assert manifest.image_path(first).is_file()
    test = ManifestDataset(manifest, "test", 64)
    image, _, boxes, _ = test[0]
    assert image.shape == (3, 64, 64) and boxes.shape == (1, 4)
