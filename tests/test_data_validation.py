"""Bad input files through the real CLI: one ``error:`` naming the culprit, exit 2, no
traceback, no partial output; listed skips; valid inputs give the manifests they gave before.

The golden manifests in ``tests/data/valid_manifests`` were written by the code before field
validation existed (the same inputs, built by :func:`valid_manifest_texts`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_in_process import run_ctxfusion
from ctxfusion.data import validate
from ctxfusion.data.cifar import prepare_cifar10
from ctxfusion.data.coco import load_coco, prepare_coco
from ctxfusion.data.imagefolder import prepare_imagefolder
from ctxfusion.data.manifest import format_summary, load_manifest
from ctxfusion.errors import DataError
from test_cifar import write_batches
from test_coco_rules import CASES, write_coco

GOLDEN = Path(__file__).parent / "data" / "valid_manifests"
ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    """``python -m ctxfusion.cli ARGS`` with ``CTXFUSION_HOME=home``, a real subprocess."""
    env = {**os.environ, "CTXFUSION_HOME": str(home), "CTXFUSION_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "ctxfusion.cli", *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)


def assert_refused(result: subprocess.CompletedProcess, out: Path | None, *parts: str) -> None:
    """Exit 2, one ``error:`` line holding every part, no traceback, nothing left in ``out``."""
    text = result.stdout + result.stderr
    assert result.returncode == 2, text
    assert "Traceback" not in text
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.count("error:") == 1, text
    for part in parts:
        assert part in errors[0], f"{part!r} not in {errors[0]!r}"
    if out is not None:
        left = [p for p in out.rglob("*")] if out.exists() else []
        assert not any(p.name == "manifest.json" or ".tmp-" in p.name for p in left), left


def coco_with(tmp_path: Path, change: Callable[[dict], None], cases: dict = CASES
              ) -> tuple[Path, Path]:
    """The tiny COCO of test_coco_rules with ``change`` applied to its JSON."""
    ann, images = write_coco(tmp_path, cases)
    data = json.loads(ann.read_text())
    change(data)
    ann.write_text(json.dumps(data))  # NaN and Infinity are written as Python's json does
    return ann, images


def prepare_coco_cli(tmp_path: Path, ann: Path, images: Path, *extra: str
                     ) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    return run_ctxfusion("prepare", "coco", "--annotations", str(ann), "--images", str(images),
                         "--out", str(out), "--quiet", *extra, home=tmp_path / "home"), out


def _set(path: str, value: object) -> Callable[[dict], None]:
    """A change setting ``data[k0][i][k1] = value`` (``"images.2.file_name"``)."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def change(data: dict) -> None:
        for key in parents:
            data = data[key]
        data[last] = value

    return change


def _drop(path: str) -> Callable[[dict], None]:
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def change(data: dict) -> None:
        for key in parents:
            data = data[key]
        del data[last]

    return change


def _duplicate_id(data: dict) -> None:
    data["images"][5]["id"] = data["images"][4]["id"]


# ---------------------------------------------------------------- COCO: wrong types -> error

COCO_TYPE_CASES = [
    (_set("images.2.file_name", None),
     "images[2].file_name = null: expected a non-empty string (the image's file name "
     "relative to --images)"),
    (_set("annotations.0.bbox", "0,0,4,4"),
     'annotations[0].bbox = "0,0,4,4": expected a list of 4 numbers [x, y, width, height]'),
    (_set("images.0.id", "1"), 'images[0].id = "1": expected an integer'),
    (_set("images.0.id", True), "images[0].id = true: expected an integer"),
    (_drop("annotations.1.category_id"), "annotations[1].category_id is missing: expected"),
    (_set("images.3.width", "20"), 'images[3].width = "20": expected a positive integer'),
    (_set("images.3.height", 0), "images[3].height = 0: expected a positive integer"),
    (_set("images", {"id": 1}), 'images = {"id": 1}: expected a list of image objects'),
    (_set("images.1", [1, 2]), "images[1] = [1, 2]: expected an object (one image)"),
    (_set("categories.0.name", 3), "categories[0].name = 3: expected a non-empty string"),
    (_set("annotations.2.iscrowd", "no"), 'annotations[2].iscrowd = "no": expected 0 or 1'),
    (_set("annotations.2.image_id", 99),
     "annotations[2].image_id = 99: expected the id of an entry of 'images'"),
    (_duplicate_id, "images[4] and images[5] both have id 5: each id must be unique"),
    (_set("images.2.file_name", "../../escape.png"),
     "images[2].file_name = '../../escape.png': climbs out with '..', so it would be used "
     "outside --images"),
    (_set("images.2.file_name", "/etc/hostname"),
     "images[2].file_name = '/etc/hostname': an absolute path"),
]


@pytest.mark.parametrize("change, message", COCO_TYPE_CASES)
def test_coco_field_of_wrong_type_is_one_error(tmp_path, change, message):
    ann, images = coco_with(tmp_path, change)
    result, out = prepare_coco_cli(tmp_path, ann, images)
    assert_refused(result, out, f"error: {ann}: {message}")


def test_coco_test_file_names_its_own_option(tmp_path):
    ann, images = write_coco(tmp_path)
    val, val_images = coco_with(tmp_path / "val", _set("images.0.file_name", ""))
    result, out = prepare_coco_cli(tmp_path, ann, images, "--test-annotations", str(val),
                                   "--test-images", str(val_images))
    assert_refused(result, out, f"{val}: images[0].file_name = \"\"",
                   "relative to --test-images")


# ---------------------------------------------------------------- COCO: listed skips


def test_nan_infinite_and_non_numeric_boxes_are_skipped_and_listed(tmp_path):
    def change(data: dict) -> None:
        by_image = {a["image_id"]: a for a in data["annotations"]}
        by_image[11]["bbox"] = [float("nan"), 1, 3, 3]  # image 11's only box
        by_image[12]["bbox"] = [1, 1, float("inf"), 3]  # image 12's only box
        data["annotations"][0]["bbox"] = [True, 0, 4, 4]  # image 1 keeps its other box
        by_image[8]["bbox"] = [15, 0, "10", 5]  # image 8's only box

    ann, images = coco_with(tmp_path, change)
    result, out = prepare_coco_cli(tmp_path, ann, images)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    text = (out / "manifest.json").read_text()
    manifest = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the manifest"))
    assert manifest["counts"]["boxes_invalid"] == 4
    assert manifest["counts"]["boxes_clipped"] == 0  # image 8's box was the clipped one
    listed = {(a["image_id"], a["bbox"]) for a in manifest["skipped_annotations"]}
    assert listed == {(11, "[NaN, 1, 3, 3]"), (12, "[1, 1, Infinity, 3]"),
                      (1, "[true, 0, 4, 4]"), (8, '[15, 0, "10", 5]')}
    assert all(a["file"] == str(ann) for a in manifest["skipped_annotations"])
    kept = {e["source_id"]: e["boxes"] for e in manifest["images"]}
    assert kept[1] == [[10, 0, 4, 4]] and not {8, 11, 12} & set(kept)
    assert "skipped 4 annotation(s) whose bbox is not 4 finite numbers" in result.stdout
    assert f"{ann}: image 11, annotation" in result.stdout and "[NaN, 1, 3, 3]" in result.stdout
    assert "boxes invalid: 4" in result.stdout


def test_all_image_files_missing_is_one_error(tmp_path):
    ann, images = write_coco(tmp_path)
    wrong = tmp_path / "elsewhere"
    wrong.mkdir()
    result, out = prepare_coco_cli(tmp_path, ann, wrong)
    assert_refused(result, out, f"all 7 image files are missing under {wrong} "
                   f"(first: {wrong / '0001.png'}); check --images")


def test_some_image_files_missing_are_counted_in_the_summary(tmp_path):
    ann, images = write_coco(tmp_path)
    (images / "0004.png").unlink()
    (images / "0011.png").unlink()
    result, out = prepare_coco_cli(tmp_path, ann, images)
    assert result.returncode == 0, result.stderr
    assert f"2 of 7 image files missing (first: {(images / '0004.png').resolve()}, " \
           f"{(images / '0011.png').resolve()})" in result.stdout
    assert "listed in the manifest's skipped_images" in result.stdout


def test_dropped_box_that_empties_a_split_is_named(tmp_path):
    cases = {1: ([(1, [0, 0, 4, 4], 0)], True), 2: ([(1, [2, 2, -3, 4], 0)], False)}
    ann, images = write_coco(tmp_path, cases)
    result, out = prepare_coco_cli(tmp_path, ann, images)
    assert_refused(result, out, "the test split ends empty",
                   "valid_boxes 1", f"{ann}: image 2 (0002.png), annotation 2, bbox [2, 2, -3, 4]")


def test_no_survivor_gives_the_counts_and_the_boxes(tmp_path):
    cases = {1: ([(1, [0, 0, -4, 4], 0)], False), 2: ([(1, [30, 0, 4, 4], 0)], False)}
    ann, images = write_coco(tmp_path, cases)
    result, out = prepare_coco_cli(tmp_path, ann, images)
    assert_refused(result, out, "survives the pruning rules",
                   "images 2, annotated 2, no_crowd 2, valid_boxes 0",
                   "image 1 (0001.png), annotation 1, bbox [0, 0, -4, 4]",
                   "image 2 (0002.png), annotation 2, bbox [30, 0, 4, 4]")
    assert "see the counts above" not in result.stderr


# ---------------------------------------------------------------- manifests


def _manifest_json(tmp_path: Path) -> dict:
    ann, images = write_coco(tmp_path / "src")
    prepare_coco(ann, images, tmp_path / "good", progress=False)
    return json.loads((tmp_path / "good" / "manifest.json").read_text())


MANIFEST_CASES = [
    (_set("classes", "dog"),
     'classes = "dog": expected a non-empty list of distinct class names'),
    (_set("classes", ["car", "car", "dog"]), "classes = [\"car\", \"car\", \"dog\"]: expected"),
    (_set("images", None), "images = null: expected a list of image objects"),
    (_set("images.0.file_name", None), "images[0].file_name = null: expected a non-empty"),
    (_set("images.1.boxes", "1,2,3,4"), 'images[1].boxes = "1,2,3,4": expected a list of'),
    (_set("images.1.boxes", [[0, 0, float("nan"), 2]]), "images[1].boxes = [[0, 0, NaN, 2]]"),
    (_set("images.0.id", "7"), 'images[0].id = "7": expected an integer'),
    (_set("images.2.label", "horse"), 'images[2].label = "horse": expected one of the'),
    (_set("images.2.split", "val"), 'images[2].split = "val": expected train or test'),
    (_set("images.2.width", -1), "images[2].width = -1: expected a positive integer"),
    (_set("subsets.similar", ["dog", "zebra"]), 'subsets.similar = ["dog", "zebra"]: '
     'expected names from classes ("zebra" is not one)'),
    (_set("has_boxes", "yes"), 'has_boxes = "yes": expected true or false'),
    (_set("images_dir", 5), "images_dir = 5: expected a non-empty string"),
    (_set("notes", "x"), 'notes = "x": expected a list of strings'),
    (_drop("images.0.label"), "images[0].label is missing"),
]


@pytest.mark.parametrize("change, message", MANIFEST_CASES)
def test_manifest_field_of_wrong_type_is_one_error(tmp_path, change, message):
    data = _manifest_json(tmp_path)
    change(data)
    path = tmp_path / "bad" / "manifest.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as info:
        load_manifest(path.parent)
    assert str(info.value).startswith(f"{path}: {message}")


def test_manifest_duplicated_id_names_both_entries(tmp_path):
    data = _manifest_json(tmp_path)
    data["images"][3]["id"] = data["images"][1]["id"]
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"images\[1\] and images\[3\] both have id"):
        load_manifest(tmp_path / "m.json")


RUN_CONFIG = """experiment: bad-manifest
seed: 0
device: cpu
steps: []
streams:
  fg: {{name: scenes-object-resnet18}}
  bg: {{name: scenes-scene-resnet18}}
datasets:
  - {{name: mine, kind: manifest, manifest: {manifest}}}
"""


def test_run_with_a_bad_manifest_exits_2(tmp_path):
    data = _manifest_json(tmp_path)
    data["classes"] = {"dog": 0}
    path = tmp_path / "bad" / "manifest.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    config = tmp_path / "config.yaml"
    config.write_text(RUN_CONFIG.format(manifest=path))
    result = run_cli("run", str(config), "--out", str(tmp_path / "run"), home=tmp_path / "home")
    assert_refused(result, None, f'{path}: classes = {{"dog": 0}}: expected a non-empty list')


# ---------------------------------------------------------------- CIFAR batches


def _rewrite_batch(folder: Path, name: str, **values: object) -> None:
    batch = pickle.loads((folder / name).read_bytes())
    batch.update({key.encode(): value for key, value in values.items()})
    (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


@pytest.mark.parametrize("values, message", [
    ({"labels": ["cat", "dog"]}, 'labels[0] = "cat": expected an integer in 0..9'),
    ({"labels": [3, 10]}, "labels[1] = 10: expected an integer in 0..9"),
    ({"labels": [1.0, 2.0]}, "labels[0] = 1.0: expected an integer in 0..9"),
    ({"labels": [1]}, "labels = list of length 1: expected a list of 2 integers"),
    ({"data": np.zeros((2, 3072), dtype=np.float32)},
     "data = float32 array of shape (2, 3072): expected a uint8 array of shape (N, 3072)"),
    ({"data": np.zeros((2, 32, 32, 3), dtype=np.uint8)}, "data = uint8 array of shape (2, 32"),
    ({"data": [[0] * 3072] * 2}, "data = list: expected a uint8 array"),
])
def test_cifar_batch_fields(tmp_path, values, message):
    folder, _ = write_batches(tmp_path / "root", per_batch=2)
    _rewrite_batch(folder, "data_batch_4", **values)
    out = tmp_path / "out"
    result = run_ctxfusion("prepare", "cifar10", "--root", str(tmp_path / "root"), "--out",
                           str(out), "--quiet", home=tmp_path / "home")
    assert_refused(result, out, f"{folder / 'data_batch_4'}: {message}")
    assert not out.exists()  # validated before anything is exported


# ---------------------------------------------------------------- ImageFolder trees


def _tree(root: Path, counts: dict[str, int]) -> Path:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (6, 5), (i * 40, 9, 9)).save(root / name / f"{i}.png")
    return root


def test_empty_class_folder_is_skipped_with_a_note(tmp_path):
    root = _tree(tmp_path / "tree", {"ant": 4, "bee": 4, "cow": 0, "doe": 0})
    (root / "doe" / "readme.txt").write_text("no images here")
    out = tmp_path / "out"
    result = run_cli("prepare", "imagefolder", "--root", str(root), "--out", str(out), "--quiet",
                     home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(out)
    assert manifest.classes == ["ant", "bee"]
    assert manifest.counts["skipped_classes"] == ["cow", "doe"]
    assert "note: class folder(s) without a readable image file skipped: " \
           f"{root / 'cow'}/ (empty), {root / 'doe'}/ (1 file(s), 0 with an image extension)" \
           in result.stdout


def test_names_that_are_not_utf8_are_refused_by_prepare(tmp_path):
    """A file or class folder whose name is not valid UTF-8 (here Latin-1 bytes) is refused
    by ``prepare`` (exit 2, the name's bytes shown), never a crash later in the run."""
    for case in ("file", "class"):
        root = _tree(tmp_path / case, {"ant": 3, "bee": 3})
        if case == "file":
            os.rename(root / "ant" / "0.png", os.fsencode(root / "ant") + b"/caf\xe9.png")
        else:
            os.rename(root / "bee", os.fsencode(root) + b"/b\xe9e")
        out = tmp_path / f"out-{case}"
        result = run_cli("prepare", "imagefolder", "--root", str(root), "--out", str(out),
                         "--quiet", home=tmp_path / "home")
        assert_refused(result, out, "is not valid UTF-8", "\\xe9", "rename")


def test_empty_class_folder_leaving_one_class_is_an_error(tmp_path):
    root = _tree(tmp_path / "tree", {"ant": 4, "bee": 0})
    out = tmp_path / "out"
    result = run_ctxfusion("prepare", "imagefolder", "--root", str(root), "--out", str(out),
                           "--quiet", home=tmp_path / "home")
    assert_refused(result, out, f"without a readable image file: {root / 'bee'}/ (empty)",
                   "1 class(es) left, a dataset needs at least 2 classes with images")


def test_test_folder_without_class_folders_is_an_error(tmp_path):
    root = _tree(tmp_path / "tree" / "train", {"ant": 2, "bee": 2}).parent
    (root / "test").mkdir()
    Image.new("RGB", (4, 4)).save(root / "test" / "loose.png")
    with pytest.raises(DataError, match=r"no class folders in .*test: expected"):
        prepare_imagefolder(root, tmp_path / "out", progress=False)


def test_cifar_tree_with_an_empty_class_is_an_error(tmp_path):
    from ctxfusion.data.cifar import CIFAR10_CLASSES

    for split in ("train", "test"):
        _tree(tmp_path / "root" / split, {c: int(c != "frog") for c in CIFAR10_CLASSES})
    with pytest.raises(DataError, match=r"frog/ \(empty\).*needs every class of airplane"):
        prepare_cifar10(tmp_path / "root", tmp_path / "out", progress=False)


# ---------------------------------------------------------------- validators


def test_validators_refuse_what_python_counts_as_numbers():
    assert validate.is_int(3) and not validate.is_int(True) and not validate.is_int(3.0)
    assert validate.is_real(2.5) and validate.is_real(-1)
    for value in (float("nan"), float("inf"), True, "3", None):
        assert not validate.is_real(value)
    assert validate.is_box([0, 0, 1.5, 2]) and not validate.is_box([0, 0, 1])
    assert validate.show(None) == "null" and validate.show("a") == '"a"'
    assert validate.show(float("nan")) == "NaN" and validate.show(list(range(40))).endswith("...")


def test_file_fields_messages(tmp_path):
    fields = validate.FileFields(tmp_path / "f.json")
    record = {"n": "x"}
    with pytest.raises(DataError, match=r'f\.json: items\[3\]\.n = "x": expected an integer '
                                        r"\(a count\)$"):
        fields.get(record, "items[3]", "n", validate.INT, "(a count)")
    with pytest.raises(DataError, match=r"items\[3\]\.m is missing: expected an integer"):
        fields.get(record, "items[3]", "m", validate.INT)
    assert fields.get(record, "items[3]", "m", validate.INT, default=7) == 7
    with pytest.raises(DataError, match=r"rows\[0\] and rows\[2\] both have id 1"):
        fields.unique([{"id": 1}, {"id": 2}, {"id": 1}], "rows", "id")


def test_load_coco_checks_before_indexing(tmp_path):
    ann, _ = coco_with(tmp_path, _set("annotations.0.id", None))
    with pytest.raises(DataError, match=r"annotations\[0\]\.id = null: expected an integer"):
        load_coco(ann)


def test_summary_lists_missing_and_invalid(tmp_path):
    ann, images = coco_with(tmp_path, _set("annotations.0.bbox", [0, 0, None, 4]))
    (images / "0007.png").unlink()
    manifest = prepare_coco(ann, images, tmp_path / "out", progress=False)
    text = format_summary(manifest)
    assert "1 of 7 image files missing" in text and "0007.png" in text
    assert 'bbox [0, 0, null, 4]' in text
    assert load_manifest(tmp_path / "out").skipped_annotations == manifest.skipped_annotations


# ---------------------------------------------------------------- valid input is unchanged


def normalized(manifest_path: Path, root: Path) -> str:
    """The manifest's text with the temporary root replaced by ``<ROOT>``."""
    return manifest_path.read_text().replace(str(root.resolve()), "<ROOT>")


def _imagefolder_tree(root: Path, splits: tuple[str, ...]) -> Path:
    for s, split in enumerate(splits):
        for c, name in enumerate(("ant", "bee", "cow")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(3 + c):
                Image.new("RGB", (6 + i, 5), (c * 60, i * 30, s * 90)).save(folder / f"{i}.png")
    return root


def valid_manifest_texts(root: Path) -> dict[str, str]:
    """Manifests of small valid inputs (COCO, ImageFolder, CIFAR batches), paths normalised."""
    ann, images = write_coco(root / "coco")
    val_cases = {1: ([(1, [0, 0, 4, 4], 0)], True), 2: ([(3, [0, 0, 2, 2], 0)], True)}
    val_ann, val_images = write_coco(root / "coco", val_cases, name="val.json", folder="val")
    runs = {
        "coco_default": lambda out: prepare_coco(ann, images, out, progress=False),
        "coco_category": lambda out: prepare_coco(
            ann, images, out, instance_rule="category", crowd="ignore", num_classes=2,
            subset_size=2, seed=3, progress=False),
        "coco_own_split": lambda out: prepare_coco(
            ann, images, out, test_annotations=val_ann, test_images=val_images,
            progress=False),
        "imagefolder_random": lambda out: prepare_imagefolder(
            _imagefolder_tree(root / "if1", ("",)), out, seed=2, progress=False),
        "imagefolder_own_split": lambda out: prepare_imagefolder(
            _imagefolder_tree(root / "if2", ("train", "test")), out, progress=False),
    }
    texts = {}
    for name, run in runs.items():
        manifest = run(root / "out" / name)
        texts[name] = normalized(manifest.path, root)
    write_batches(root / "cifar", per_batch=3)
    manifest = prepare_cifar10(root / "cifar", root / "out" / "cifar", progress=False)
    texts["cifar_batches"] = normalized(manifest.path, root)
    return texts


def test_valid_inputs_give_the_same_manifests_as_before(tmp_path):
    texts = valid_manifest_texts(tmp_path)
    assert sorted(texts) == sorted(p.stem for p in GOLDEN.glob("*.json"))
    for name, text in texts.items():
        assert text == (GOLDEN / f"{name}.json").read_text(), name
        assert load_manifest(tmp_path / "out" / name.replace("_batches", "")
                             if name == "cifar_batches" else tmp_path / "out" / name).images


#: sha256 of the normalised manifests written by the code before field validation
REAL_DIGESTS = {
    "coco-mini": "bd4a4f6a3d4537fb4067765ccf102825f06bea86e4e11148d869f7bb03873135",
    "tiny-imagenet-boxes": "a9337454dbb748687e2e97ca1bfd9e1518b0d5e6cfbc61cac6478839bb0a1122",
}


def test_real_assets_give_the_same_manifests_as_before(coco_mini, tiny_imagenet_boxes, tmp_path):
    mini = prepare_coco(coco_mini / "annotations" / "instances_train2017.json",
                        coco_mini / "train2017", tmp_path / "a", num_classes=80,
                        instance_rule="category", progress=False)
    root = tiny_imagenet_boxes
    tiny = prepare_coco(root / "instances_train.json", root / "train", tmp_path / "b",
                        test_annotations=root / "instances_val.json", test_images=root / "val",
                        seed=0, progress=False)
    for name, manifest, base in (("coco-mini", mini, coco_mini), ("tiny-imagenet-boxes", tiny,
                                                                  root)):
        text = normalized(manifest.path, base)
        assert hashlib.sha256(text.encode()).hexdigest() == REAL_DIGESTS[name], name
