"""The procedural contextual-scenes benchmark: determinism, COCO format, context semantics."""

import json
from collections import Counter

import numpy as np
import pytest
from pycocotools.coco import COCO

from ctxfusion.errors import ConfigError
from ctxfusion.scenes.benchmark import (
    CLASS_NAMES,
    CLASS_SUPERCATEGORY,
    SCENE_NAMES,
    class_scene_preferences,
    generate_scenes,
    render_batch,
)
from ctxfusion.scenes.render import SCENES, SUPERCATEGORIES, paint_objects


def _all_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    paths = generate_scenes(root / "a", num_train=48, num_test=24, context_strength=0.8, seed=3)
    return root, paths


def test_same_seed_same_bytes_different_seed_differs(small_benchmark, tmp_path):
    root, _ = small_benchmark
    again = generate_scenes(tmp_path / "b", num_train=48, num_test=24, context_strength=0.8,
                            seed=3)
    other = generate_scenes(tmp_path / "c", num_train=48, num_test=24, context_strength=0.8,
                            seed=4)
    first = _all_bytes(root / "a")
    assert first == _all_bytes(again["root"])
    assert len(first) == 2 + 48 + 24
    changed = _all_bytes(other["root"])
    assert changed.keys() == first.keys()
    assert changed["instances_train.json"] != first["instances_train.json"]
    assert changed["train/000000.png"] != first["train/000000.png"]


def test_coco_format_is_valid(small_benchmark):
    _, paths = small_benchmark
    for split, count in (("train", 48), ("test", 24)):
        coco = COCO(str(paths[split]))
        assert len(coco.getImgIds()) == count
        cats = coco.loadCats(coco.getCatIds())
        assert [c["name"] for c in cats] == CLASS_NAMES
        supers = Counter(c["supercategory"] for c in cats)
        assert len(supers) >= 8 and max(supers.values()) >= 8
        for image in coco.loadImgs(coco.getImgIds()):
            assert (paths[f"{split}_images"] / image["file_name"]).is_file()
            assert image["scene"] in SCENE_NAMES
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
            assert 1 <= len(anns) <= 2
            assert len({a["category_id"] for a in anns}) == 1
            union = np.zeros((image["height"], image["width"]), bool)
            for a in anns:
                x, y, w, h = a["bbox"]
                assert 0 <= x and 0 <= y and w > 0 and h > 0
                assert x + w <= image["width"] and y + h <= image["height"]
                union[int(y):int(y + h), int(x):int(x + w)] = True
            assert union.mean() <= 0.5


def test_boxes_are_tight_around_drawn_pixels():
    rng = np.random.default_rng(0)
    canvas = np.full((200, 64, 64, 3), np.nan, np.float32)  # paint on NaN: drawn = not NaN
    boxes = paint_objects(rng, canvas, rng.integers(0, 24, 200))
    drawn = ~np.isnan(canvas[..., 0])
    for image_mask, image_boxes in zip(drawn, boxes, strict=True):
        covered = np.zeros_like(image_mask)
        for x0, y0, x1, y1 in image_boxes.astype(int):
            part = image_mask[y0:y1, x0:x1]
            assert part[0].any() and part[-1].any() and part[:, 0].any() and part[:, -1].any()
            covered[y0:y1, x0:x1] = True
        assert not (image_mask & ~covered).any()


def test_context_strength_controls_scene_choice():
    family_of_scene = [s[1] for s in SCENES]
    own_family = [SUPERCATEGORIES[s][0] for s in CLASS_SUPERCATEGORY]
    labels = np.arange(1200) % len(CLASS_NAMES)

    def in_family_share(strength):
        batch = render_batch(5, len(labels), strength, labels=labels, image_size=32)
        return np.mean([family_of_scene[s] == own_family[c]
                        for s, c in zip(batch.scenes, batch.labels, strict=True)])

    assert in_family_share(1.0) == 1.0
    assert abs(in_family_share(0.0) - 2 / len(SCENES)) < 0.05  # uniform: 2 of 16 scenes
    assert 0.75 < in_family_share(0.8) < 0.9


def test_preferences_strong_across_weak_within_supercategories():
    prefs = class_scene_preferences()
    np.testing.assert_allclose(prefs.sum(1), 1.0)
    striped = [i for i, s in enumerate(CLASS_SUPERCATEGORY) if s == "striped"]
    favourite = prefs.argmax(1)
    assert len(set(favourite[striped])) == 2  # classes of one family prefer different scenes
    first_of_each = [CLASS_SUPERCATEGORY.index(s) for s in dict.fromkeys(CLASS_SUPERCATEGORY)]
    assert (prefs[first_of_each] @ prefs[first_of_each].T - np.diag(
        (prefs[first_of_each] ** 2).sum(1))).max() == 0  # different families never share scenes


def test_render_batch_shapes_and_bare_scenes():
    batch = render_batch(np.random.default_rng(1), 10, 0.5)
    assert batch.images.shape == (10, 64, 64, 3) and batch.images.dtype == np.uint8
    assert batch.images.std() > 20  # textured, not flat colours
    bare = render_batch(1, 4, None, objects=False)
    assert all(len(b) == 0 for b in bare.boxes) and (bare.labels == -1).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"context_strength": 1.5}, "context_strength=1.5"),
    ({"num_train": 0}, "num_train=0"),
    ({"seed": -1}, "seed=-1"),
])
def test_bad_settings_raise(tmp_path, kwargs, match):
    settings = {"num_train": 2, "num_test": 2, "context_strength": 0.5, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=match):
        generate_scenes(tmp_path, **settings)


def test_scene_field_matches_info(small_benchmark):
    _, paths = small_benchmark
    doc = json.loads(paths["test"].read_text())
    assert doc["info"]["context_strength"] == 0.8 and doc["info"]["seed"] == 3
    assert [s["name"] for s in doc["scenes"]] == SCENE_NAMES


def test_image_ids_unique_across_splits(small_benchmark):
    _, paths = small_benchmark
    ids = [{image["id"] for image in json.loads(paths[split].read_text())["images"]}
           for split in ("train", "test")]
    assert len(ids[0]) == 48 and len(ids[1]) == 24 and not ids[0] & ids[1]


def test_large_splits_render_in_bounded_chunks(tmp_path, monkeypatch):
    """Generation holds one chunk of rendered images at a time, whatever the split's size
    (memory independent of num_train), and the chunks make one consistent COCO split."""
    import ctxfusion.scenes.benchmark as benchmark

    sizes = []
    real = benchmark.render_batch

    def spy(rng, n, *args, **kwargs):
        sizes.append(n)
        return real(rng, n, *args, **kwargs)

    monkeypatch.setattr(benchmark, "RENDER_CHUNK", 16)
    monkeypatch.setattr(benchmark, "render_batch", spy)
    paths = generate_scenes(tmp_path, num_train=40, num_test=10, context_strength=0.8, seed=3)
    assert sizes == [16, 16, 8, 10]
    coco = COCO(str(paths["train"]))
    assert sorted(coco.getImgIds()) == list(range(1, 41))
    assert len(list((tmp_path / "train").glob("*.png"))) == 40
    labels = Counter(coco.loadAnns(coco.getAnnIds())[i]["category_id"]
                     for i in range(len(coco.getAnnIds())))
    assert sum(labels.values()) >= 40  # every image has its object
