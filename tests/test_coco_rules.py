"""SPEC section 2 rules, one tiny image per rule edge, and each bad input (data made here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ctxfusion.data.coco import load_coco, prepare_coco, union_area
from ctxfusion.data.manifest import load_manifest
from ctxfusion.errors import ConfigError, DataError

W, H = 20, 10  # every test image: 200 px, so 50 % = 100 px
CATEGORIES = [{"id": 1, "name": "dog", "supercategory": "animal"},
              {"id": 2, "name": "cat", "supercategory": "animal"},
              {"id": 3, "name": "car", "supercategory": "vehicle"}]
# image id -> (annotations as (category, bbox, iscrowd), kept by the default rules?)
CASES = {
    1: ([(1, [0, 0, 4, 4], 0), (1, [10, 0, 4, 4], 0)], True),           # exactly 2 instances
    2: ([(1, [0, 0, 2, 2], 0), (1, [5, 0, 2, 2], 0), (1, [9, 0, 2, 2], 0)], False),  # 3
    3: ([(1, [0, 0, 4, 4], 0), (2, [10, 0, 2, 2], 0)], False),           # two categories
    4: ([(2, [0, 0, 10, 10], 0)], True),                                 # exactly 50 %
    5: ([(2, [0, 0, 17, 6], 0)], False),                                 # 51 %
    6: ([(1, [0, 0, 4, 4], 0), (1, [5, 5, 3, 3], 1)], False),            # crowd
    7: ([(3, [0, 0, 8, 10], 0), (3, [2, 0, 8, 10], 0)], True),           # union 50 %, sum 80 %
    8: ([(3, [15, 0, 10, 5], 0)], True),                                 # clipped to [15,0,5,5]
    9: ([(3, [0, 0, 0, 5], 0), (3, [2, 2, 3, 3], 0)], True),             # zero width dropped
    10: ([], False),                                                     # no annotation
    11: ([(1, [1, 1, 3, 3], 0)], True),
    12: ([(2, [1, 1, 3, 3], 0)], True),
}


def write_coco(root: Path, cases=CASES, categories=CATEGORIES, name="instances.json",
               folder="images") -> tuple[Path, Path]:
    """Tiny PNGs plus a COCO instances JSON describing them."""
    images_dir = root / folder
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, (anns, _) in cases.items():
        file_name = f"{image_id:04d}.png"
        Image.new("RGB", (W, H), (image_id * 20 % 255, 80, 160)).save(images_dir / file_name)
        images.append({"id": image_id, "file_name": file_name, "width": W, "height": H})
        for category, bbox, crowd in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category, "bbox": bbox, "iscrowd": crowd,
                                "area": bbox[2] * bbox[3]})
    path = root / name
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path, images_dir


def kept_ids(manifest) -> set[int]:
    return {entry["source_id"] for entry in manifest.images}


def test_each_rule_edge(tmp_path):
    ann, images = write_coco(tmp_path)
    manifest = prepare_coco(ann, images, tmp_path / "out", seed=0, progress=False)
    assert kept_ids(manifest) == {i for i, (_, keep) in CASES.items() if keep}
    assert manifest.counts["pruning"]["annotations"] == {
        "images": 12, "annotated": 11, "no_crowd": 10, "valid_boxes": 10, "instances": 8,
        "foreground": 7, "readable": 7, "selected_classes": 7}
    assert manifest.counts["boxes_dropped"] == 1 and manifest.counts["boxes_clipped"] == 1
    by_id = {entry["source_id"]: entry for entry in manifest.images}
    assert by_id[8]["boxes"] == [[15, 0, 5, 5]]
    assert by_id[9]["boxes"] == [[2, 2, 3, 3]]
    assert by_id[1]["boxes"] == [[0, 0, 4, 4], [10, 0, 4, 4]]  # unchanged numbers
    assert manifest.classes == ["car", "dog", "cat"]  # 3, 2, 2 images; tie by category id
    assert load_manifest(tmp_path / "out").to_dict() == manifest.to_dict()


def test_class_ranking_breaks_ties_by_category_id(tmp_path):
    # car: 3 images (7, 8, 9), cat: 2 (4, 12), dog: 2 (1, 11) -> car, then cat/dog by id: dog(1)
    ann, images = write_coco(tmp_path)
    manifest = prepare_coco(ann, images, tmp_path / "out", num_classes=2, progress=False)
    assert manifest.classes == ["car", "dog"]
    assert {e["label"] for e in manifest.images} == {"car", "dog"}
    assert manifest.counts["pruning"]["annotations"]["selected_classes"] == 5


def test_category_rule_and_crowd_ignore(tmp_path):
    ann, images = write_coco(tmp_path)
    manifest = prepare_coco(ann, images, tmp_path / "out", instance_rule="category",
                            crowd="ignore", progress=False)
    ids = kept_ids(manifest)
    assert 3 in ids and 6 in ids and 2 not in ids
    by_id = {entry["source_id"]: entry for entry in manifest.images}
    assert by_id[3]["label"] == "dog" and by_id[3]["boxes"] == [[0, 0, 4, 4]]  # larger area
    assert by_id[6]["boxes"] == [[0, 0, 4, 4]]  # the crowd box is not kept


def test_max_foreground_setting(tmp_path):
    ann, images = write_coco(tmp_path)
    manifest = prepare_coco(ann, images, tmp_path / "out", max_foreground=0.51,
                            progress=False)
    assert 5 in kept_ids(manifest)


def test_union_area_is_exact_not_the_sum():
    assert union_area([[0, 0, 8, 10], [2, 0, 8, 10]]) == 100
    assert union_area([[0, 0, 2, 2], [1, 1, 2, 2], [10, 10, 1, 1]]) == 8
    assert union_area([[0, 0, 4, 4], [1, 1, 1, 1]]) == 16  # nested
    assert union_area([[0.5, 0.5, 1.5, 1.0]]) == pytest.approx(1.5)


def test_split_is_stratified_seeded_and_warns_on_singletons(tmp_path):
    ann, images = write_coco(tmp_path)
    first = prepare_coco(ann, images, tmp_path / "a", seed=3, progress=False)
    again = prepare_coco(ann, images, tmp_path / "b", seed=3, progress=False)
    assert first.images == again.images
    for name in first.classes:
        splits = [e["split"] for e in first.images if e["label"] == name]
        assert splits.count("test") == max(1, round(len(splits) * 0.25))
    test_sets = {frozenset(e["source_id"] for e in prepare_coco(
        ann, images, tmp_path / f"s{seed}", seed=seed, progress=False).images
        if e["split"] == "test") for seed in range(6)}
    assert len(test_sets) > 1
    single = prepare_coco(ann, images, tmp_path / "c", classes=["car", "cat", "dog"],
                          max_foreground=0.49, progress=False)  # cat keeps only image 12
    assert [e["split"] for e in single.images if e["label"] == "cat"] == ["train"]
    assert any("'cat' has a single image" in note for note in single.notes)


def test_subsets_follow_supercategories(tmp_path):
    ann, images = write_coco(tmp_path)
    manifest = prepare_coco(ann, images, tmp_path / "out", subset_size=2, progress=False)
    assert manifest.subsets["all"] == manifest.classes
    assert sorted(manifest.subsets["similar"]) == ["cat", "dog"]  # the only 2-class group
    supers = [manifest.supercategories[n] for n in manifest.subsets["dissimilar"]]
    assert sorted(supers) == ["animal", "vehicle"]
    for entry in manifest.images:
        assert entry["subsets"] == [k for k, v in manifest.subsets.items() if entry["label"] in v]
    wide = prepare_coco(ann, images, tmp_path / "wide", progress=False)  # subset size 8
    assert any("similar: no supercategory has 8" in note for note in wide.notes)
    assert any("dissimilar: only 2 distinct" in note for note in wide.notes)


# ---------------------------------------------------------------- bad input


def test_not_json_and_not_coco(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json is not valid JSON"):
        load_coco(bad)
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError, match=r"bad\.json.*lacks the key 'categories'"):
        load_coco(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="not COCO format"):
        load_coco(bad)
    with pytest.raises(DataError, match="not found"):
        load_coco(tmp_path / "missing.json")


def test_category_without_entry(tmp_path):
    cases = {1: ([(99, [0, 0, 4, 4], 0)], False)}
    ann, _ = write_coco(tmp_path, cases)
    with pytest.raises(DataError, match=r"annotations\[0\]\.category_id = 99: expected the "
                       r"id of an entry of 'categories' \(valid ids: 1, 2, 3\)"):
        load_coco(ann)


def test_unknown_class_lists_valid_names(tmp_path):
    ann, images = write_coco(tmp_path)
    with pytest.raises(DataError, match=r"'horse' not in .*valid names: car, cat, dog"):
        prepare_coco(ann, images, tmp_path / "out", classes=["dog", "horse"], progress=False)


def test_split_that_ends_empty(tmp_path):
    cases = {1: ([(1, [0, 0, 4, 4], 0)], True)}
    ann, images = write_coco(tmp_path, cases)
    with pytest.raises(DataError, match="test split ends empty"):
        prepare_coco(ann, images, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_bad_settings(tmp_path):
    ann, images = write_coco(tmp_path)
    with pytest.raises(ConfigError, match="give both or neither"):
        prepare_coco(ann, images, tmp_path / "o", test_annotations=ann, progress=False)
    with pytest.raises(ConfigError, match="instance_rule 'x' is not valid; valid: image"):
        prepare_coco(ann, images, tmp_path / "o", instance_rule="x", progress=False)


def test_unreadable_images_skip_or_error(tmp_path):
    ann, images = write_coco(tmp_path)
    (images / "0001.png").write_bytes((images / "0001.png").read_bytes()[:40])  # truncated
    (images / "0004.png").unlink()                                              # missing
    (images / "0011.png").write_bytes(b"not an image at all")
    manifest = prepare_coco(ann, images, tmp_path / "out", progress=False)
    assert kept_ids(manifest) == {7, 8, 9, 12}
    assert manifest.counts["pruning"]["annotations"]["readable"] == 4
    skipped = {s["file_name"]: s["reason"] for s in manifest.skipped_images}
    assert set(skipped) == {"0001.png", "0004.png", "0011.png"}
    assert skipped["0004.png"] == "file not found"
    with pytest.raises(DataError, match=r"0001\.png.*unreadable image"):
        prepare_coco(ann, images, tmp_path / "out2", bad_images="error", progress=False)


def test_image_size_mismatch_is_skipped(tmp_path):
    ann, images = write_coco(tmp_path)
    Image.new("RGB", (30, 10)).save(images / "0001.png")
    manifest = prepare_coco(ann, images, tmp_path / "out", progress=False)
    assert 1 not in kept_ids(manifest)
    assert "differs from the JSON's 20x10" in manifest.skipped_images[0]["reason"]


def test_own_test_split_and_colliding_ids(tmp_path):
    train_ann, train_dir = write_coco(tmp_path, name="train.json", folder="train")
    test_cases = {1: ([(1, [0, 0, 4, 4], 0)], True), 2: ([(3, [0, 0, 2, 2], 0)], True),
                  3: ([(1, [0, 0, 4, 4], 0), (1, [1, 1, 4, 4], 0), (1, [0, 0, 1, 1], 0)], False)}
    test_ann, test_dir = write_coco(tmp_path, test_cases, name="val.json", folder="val")
    manifest = prepare_coco(train_ann, train_dir, tmp_path / "out", test_annotations=test_ann,
                            test_images=test_dir, progress=False)
    test = [e for e in manifest.images if e["split"] == "test"]
    assert sorted(e["source_id"] for e in test) == [1, 2]
    assert {e["id"] for e in test} == {101, 102}  # offset above every train id (12)
    assert len({e["id"] for e in manifest.images}) == len(manifest.images)
    assert manifest.test_images_dir == str(test_dir.resolve())
    assert manifest.counts["pruning"]["test_annotations"]["instances"] == 2
    assert set(manifest.source_sha256) == {"annotations", "test_annotations"}
    assert load_manifest(manifest.path).image_path(test[0]).is_file()
