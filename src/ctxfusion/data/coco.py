"""SPEC section 2: pruning COCO-format annotations into a manifest.

The rules, applied to each image of an annotation file in this order (``counts.pruning`` gives
the images left after each):

1. ``annotated``: the image has at least one annotation.
2. ``no_crowd``: with ``crowd="drop"`` (default) an image with any ``iscrowd`` annotation is
   dropped, since a crowd region means "many instances"; with ``crowd="ignore"`` crowd
   annotations are disregarded (neither counted nor kept as boxes).
3. ``valid_boxes``: boxes are clipped to the image; boxes with zero or negative width or height
   (after clipping) are dropped and counted (``counts.boxes_dropped``); an image left without
   boxes is dropped.
4. ``instances``: ``instance_rule="image"`` (default) keeps an image when all its annotations
   belong to one category and there are at most ``max_instances`` (2) of them. With
   ``instance_rule="category"`` the image's label is the category with the largest total box
   area (ties: lower category id), other categories are context, and the image is kept when
   the label has at most ``max_instances`` annotations; only the label's boxes are kept.
5. ``foreground``: the area of the union of the kept boxes (computed exactly, not the sum of
   box areas) is at most ``max_foreground`` (0.5) of the image area.
6. ``readable``: the image file decodes and has the size the JSON says (else ``bad_images``:
   ``skip`` lists it in ``skipped_images``, ``error`` raises).
7. ``selected_classes``: the image's label is one of the chosen classes (the ``num_classes``
   categories with the most surviving images of the train annotation file, ties broken by
   category id, or an explicit list).

Bad input (every annotation file is checked field by field before any work is done):

- A field of the wrong type or missing (``images`` not a list, an image's ``file_name`` null,
  ``id`` a string, ``width`` a string or <= 0, ``category_id`` missing, ``bbox`` not a list of
  4, ``iscrowd`` not 0/1, ...), an annotation whose ``image_id`` or ``category_id`` has no
  entry, two images or categories with the same id (or two categories with the same name:
  ambiguous input, both entries named): :class:`DataError`
  ``<file>: images[12].file_name = null: expected ...``.
- A bbox of 4 values that are not all finite numbers (NaN, Infinity, ``true``, ``"3"``,
  null): the annotation is skipped at rule 3, counted (``counts.boxes_invalid``) and listed
  with its file, image id and bbox in the manifest's ``skipped_annotations`` and in the
  ``ctxfusion prepare`` summary. Both appear only when some box was skipped.
- Every image file of an annotation file missing under its image folder: :class:`DataError`
  ``all N image files are missing under DIR (first: ...); check --images``; some missing:
  skipped and listed (``skipped_images``), the summary says "K of N image files missing".
- No image surviving, or a split left empty: the error gives the images left after each rule
  and the first boxes dropped (file, image id, file name, bbox) and files skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO
from tqdm import tqdm

from ctxfusion.containment import check_relative
from ctxfusion.data.images import check_image, resolve_image_path
from ctxfusion.data.manifest import Manifest, choose_subsets, save_manifest, stratified_split
from ctxfusion.data.validate import (
    INT,
    NAME,
    OPTIONAL_NAME,
    POSITIVE_INT,
    FileFields,
    is_real,
    show,
)
from ctxfusion.errors import ConfigError, DataError
from ctxfusion.io import sha256_file
from ctxfusion.vocabulary import BAD_IMAGE_POLICIES, CROWD_POLICIES, INSTANCE_RULES

#: the shape of a bbox (its values are checked at rule 3) and the values iscrowd may take
BBOX = (lambda v: isinstance(v, list) and len(v) == 4, "a list of 4 numbers")
CROWD = (lambda v: v in (0, 1) and not isinstance(v, float), "0 or 1")
#: how many dropped boxes an error message lists
LISTED = 5
#: the option each annotation file's image folder comes from (messages)
IMAGE_FLAGS = {"annotations": "--images", "test_annotations": "--test-images"}

RULES = ("images", "annotated", "no_crowd", "valid_boxes", "instances", "foreground",
         "readable", "selected_classes")


def load_coco(path: str | os.PathLike, images_flag: str = "--images") -> COCO:
    """Load and validate a COCO instances JSON; :class:`DataError` naming the file and key.

    ``images_flag`` names the setting the ``file_name`` entries are relative to (messages).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"annotation file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"annotation file {path} is not COCO format: the top level must be an "
                        f"object with images, annotations, categories, found {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DataError(f"annotation file {path} is not COCO format: it lacks the key {key!r} "
                            "(required: images, annotations, categories)")
    _validate_entries(path, data, images_flag)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        coco.createIndex()
    return coco


def _validate_entries(path: Path, data: dict[str, Any], images_flag: str) -> None:
    """Every field pruning reads, by type, before any work (see the module docstring)."""
    fields = FileFields(path)
    images = fields.records(data, "images", "image")
    for index, image in enumerate(images):
        where = f"images[{index}]"
        fields.get(image, where, "id", INT, "(the image's id)")
        name = fields.get(image, where, "file_name", NAME,
                          f"(the image's file name relative to {images_flag})")
        check_relative(name, f"{path}: {where}.file_name", images_flag, DataError)
        for name in ("width", "height"):
            fields.get(image, where, name, POSITIVE_INT, f"(the image's {name} in pixels)")
    fields.unique(images, "images", "id")
    categories = fields.records(data, "categories", "category")
    for index, category in enumerate(categories):
        where = f"categories[{index}]"
        fields.get(category, where, "id", INT, "(the category's id)")
        fields.get(category, where, "name", NAME, "(the class name)")
        fields.get(category, where, "supercategory", OPTIONAL_NAME, default=None)
    fields.unique(categories, "categories", "id")
    fields.unique(categories, "categories", "name")
    _validate_annotations(fields, fields.records(data, "annotations", "annotation"),
                          {image["id"] for image in images}, {cat["id"] for cat in categories})


def _validate_annotations(fields: FileFields, annotations: list[dict[str, Any]],
                          image_ids: set[int], category_ids: set[int]) -> None:
    """Ids, references and the bbox's shape; its values are checked at rule 3 (skipped)."""
    valid_categories = f"the id of an entry of 'categories' (valid ids: " \
                       f"{_preview(sorted(category_ids))})"
    for index, ann in enumerate(annotations):
        where = f"annotations[{index}]"
        fields.get(ann, where, "id", INT, "(the annotation's id)")
        image_id = fields.get(ann, where, "image_id", INT, "(the id of an entry of 'images')")
        if image_id not in image_ids:
            fields.fail(f"{where}.image_id", image_id, "the id of an entry of 'images'")
        category_id = fields.get(ann, where, "category_id", INT, "(" + valid_categories + ")")
        if category_id not in category_ids:
            fields.fail(f"{where}.category_id", category_id, valid_categories)
        fields.get(ann, where, "bbox", BBOX, "[x, y, width, height]")
        fields.get(ann, where, "iscrowd", CROWD, default=0)


def _preview(values: list[Any], limit: int = 12) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def union_area(boxes: list[list[float]]) -> float:
    """Exact area of the union of ``[x, y, w, h]`` boxes (coordinate compression).

    Hand-written: torchvision and pycocotools only rasterise boxes to masks (pixel-rounded),
    and the 50 % rule needs the exact area of overlapping boxes counted once.
    """
    xs = sorted({v for x, _, w, _ in boxes for v in (x, x + w)})
    area = 0.0
    for left, right in zip(xs, xs[1:], strict=False):
        spans = sorted((y, y + h) for x, y, w, h in boxes if x <= left and x + w >= right)
        covered, top, bottom = 0.0, None, None
        for y0, y1 in spans:
            if bottom is None or y0 > bottom:
                covered += 0.0 if bottom is None else bottom - top
                top, bottom = y0, y1
            else:
                bottom = max(bottom, y1)
        if bottom is not None:
            covered += bottom - top
        area += covered * (right - left)
    return area


def _clip_box(bbox: list[float], width: int, height: int) -> list[float]:
    """Clip ``[x, y, w, h]`` to the image; plain floats keep the JSON's numbers exact."""
    x0, y0 = max(bbox[0], 0), max(bbox[1], 0)
    x1, y1 = min(bbox[0] + bbox[2], width), min(bbox[1] + bbox[3], height)
    if [x0, y0, x1, y1] == [bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]:
        return list(bbox)
    return [x0, y0, x1 - x0, y1 - y0]


@dataclass
class BoxIssues:
    """Boxes left out at rule 3 of one annotation file: every annotation skipped because its
    bbox holds something other than finite numbers (listed in the manifest), and the first
    :data:`LISTED` boxes dropped for their size (named by error messages)."""

    source: str
    invalid: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def record(self, kind: str, image: dict, ann: dict, reason: str) -> None:
        """Note the annotation ``ann`` of ``image`` as ``invalid`` or ``dropped``."""
        items = getattr(self, kind)
        if kind == "invalid" or len(items) < LISTED:
            items.append({"file": self.source, "image_id": image["id"],
                          "file_name": image["file_name"], "annotation_id": ann["id"],
                          "bbox": show(ann["bbox"]), "reason": reason})


def _valid_boxes(image: dict, anns: list[dict], box_counts: dict[str, int],
                 issues: BoxIssues) -> list[tuple[int, list[float]]]:
    """Rule 3: ``(category, clipped box)`` of the usable annotations of ``image``."""
    valid = []
    for ann in anns:
        if not all(is_real(v) for v in ann["bbox"]):
            box_counts["boxes_invalid"] += 1
            issues.record("invalid", image, ann, "bbox values must be finite numbers "
                          "(NaN, Infinity, true/false, strings and null are not)")
            continue
        box = _clip_box(ann["bbox"], image["width"], image["height"])
        if box[2] <= 0 or box[3] <= 0:
            box_counts["boxes_dropped"] += 1
            issues.record("dropped", image, ann, f"width or height <= 0 after clipping to the "
                          f"{image['width']}x{image['height']} image")
            continue
        box_counts["boxes_clipped"] += box != list(ann["bbox"])
        valid.append((ann["category_id"], box))
    return valid


def prune_images(coco: COCO, *, instance_rule: str = "image", max_instances: int = 2,
                 max_foreground: float = 0.5, crowd: str = "drop",
                 issues: BoxIssues | None = None) -> tuple[list[dict], dict]:
    """Apply rules 1-5 to every image; returns candidates and counts (rules and boxes).

    ``issues`` collects the boxes left out at rule 3 (``boxes_invalid`` counts those skipped).
    """
    issues = issues if issues is not None else BoxIssues("annotations")
    counts = dict.fromkeys(RULES[:6], 0)
    box_counts = {"boxes_clipped": 0, "boxes_dropped": 0, "boxes_invalid": 0}
    candidates = []
    for image_id in sorted(coco.imgs):
        image = coco.imgs[image_id]
        anns = coco.imgToAnns.get(image_id, [])
        counts["images"] += 1
        if not anns:
            continue
        counts["annotated"] += 1
        if any(ann.get("iscrowd", 0) for ann in anns):
            if crowd == "drop":
                continue
            anns = [ann for ann in anns if not ann.get("iscrowd", 0)]
        if not anns:
            continue
        counts["no_crowd"] += 1
        valid = _valid_boxes(image, anns, box_counts, issues)
        if not valid:
            continue
        counts["valid_boxes"] += 1
        category_ids = {cat for cat, _ in valid}
        if instance_rule == "image":
            if len(category_ids) != 1 or len(valid) > max_instances:
                continue
            label = category_ids.pop()
        else:
            label = min(category_ids, key=lambda c: (-sum(
                b[2] * b[3] for cat, b in valid if cat == c), c))
            if sum(cat == label for cat, _ in valid) > max_instances:
                continue
        boxes = [box for cat, box in valid if cat == label]
        counts["instances"] += 1
        if union_area(boxes) > max_foreground * image["width"] * image["height"]:
            continue
        counts["foreground"] += 1
        candidates.append({"source_id": image_id, "category_id": label, "boxes": boxes,
                           "file_name": image["file_name"], "width": image["width"],
                           "height": image["height"]})
    return candidates, {**counts, **box_counts}


def check_readable(candidates: list[dict], images_dir: Path, bad_images: str, role: str,
                   progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Rule 6: keep candidates whose file decodes at the JSON's size; the rest are skipped.

    When every file is missing the image folder is wrong: a :class:`DataError` says so.
    """
    resolved = [resolve_image_path(images_dir, cand["file_name"]) for cand in candidates]
    if resolved and not any(path.exists() for path, _ in resolved):
        raise DataError(f"all {len(resolved)} image files are missing under {images_dir} "
                        f"(first: {resolved[0][0]}); check {IMAGE_FLAGS.get(role, role)}")
    kept, skipped = [], []
    for cand, (path, rel) in tqdm(zip(candidates, resolved, strict=True),
                                  total=len(candidates), desc=f"checking {role} images",
                                  disable=not progress, leave=False):
        result = check_image(path)
        reason = result.error
        if result.ok and (result.width, result.height) != (cand["width"], cand["height"]):
            reason = (f"size {result.width}x{result.height} differs from the JSON's "
                      f"{cand['width']}x{cand['height']}")
        if reason is None:
            kept.append({**cand, "file_name": rel})
        elif bad_images == "error":
            raise DataError(f"image {path} (id {cand['source_id']}, {role}): {reason} "
                            "(use --bad-images skip to skip such files)")
        else:
            skipped.append({"file_name": rel, "source_id": cand["source_id"], "role": role,
                            "reason": reason})
    return kept, skipped



def _select_classes(counts: dict[int, int], coco: COCO, num_classes: int,
                    classes: list[str] | None, path: Path) -> tuple[list[int], list[str]]:
    """Category ids of the chosen classes, in label order, and notes."""
    by_name = {cat["name"]: cat["id"] for cat in coco.cats.values()}
    if classes:
        unknown = [name for name in classes if name not in by_name]
        if unknown:
            raise DataError(f"class(es) {', '.join(repr(n) for n in unknown)} not in {path}; "
                            f"valid names: {', '.join(sorted(by_name))}")
        if len(set(classes)) != len(classes):
            raise ConfigError(f"--classes lists a class twice: {classes}")
        empty = [name for name in classes if counts.get(by_name[name], 0) == 0]
        if empty:
            surviving = {coco.cats[c]["name"]: n for c, n in counts.items() if n}
            raise DataError(f"class(es) {', '.join(repr(n) for n in empty)} have no image left "
                            f"after pruning {path}; classes with images left: {surviving}")
        return [by_name[name] for name in classes], []
    ranked = sorted((cat for cat, n in counts.items() if n), key=lambda c: (-counts[c], c))
    if not ranked:
        raise DataError(f"no image of {path} survives the pruning rules; nothing to prepare")
    notes = []
    if len(ranked) < num_classes:
        notes.append(f"only {len(ranked)} categories have images left after pruning; "
                     f"using all of them instead of {num_classes}")
    return ranked[:num_classes], notes


def prepare_coco(annotations: str | os.PathLike, images: str | os.PathLike,
                 out: str | os.PathLike, *, num_classes: int = 24,
                 classes: list[str] | None = None, seed: int = 0, instance_rule: str = "image",
                 max_instances: int = 2, max_foreground: float = 0.5, crowd: str = "drop",
                 test_annotations: str | os.PathLike | None = None,
                 test_images: str | os.PathLike | None = None, bad_images: str = "skip",
                 test_fraction: float = 0.25, subset_size: int = 8, dataset: str = "coco",
                 progress: bool = True) -> Manifest:
    """Prune a COCO-format dataset (SPEC section 2), split it, choose subsets, write the manifest.

    With ``test_annotations``/``test_images`` the dataset's own split replaces the seeded
    stratified ``test_fraction`` split, and class selection counts the train file only.
    """
    _check_settings(num_classes, instance_rule, max_instances, max_foreground, crowd,
                    bad_images, test_fraction, subset_size, test_annotations, test_images)
    sources = [("annotations", Path(annotations), Path(images))]
    if test_annotations is not None:
        sources.append(("test_annotations", Path(test_annotations), Path(test_images)))
    rules = {"instance_rule": instance_rule, "max_instances": max_instances,
             "max_foreground": max_foreground, "crowd": crowd}
    cocos, kept, skipped, pruning, boxes, issues = _prune_sources(sources, rules, bad_images,
                                                                  progress)
    if not kept["annotations"]:
        raise DataError(f"no image of {annotations} survives the pruning rules; nothing to "
                        f"prepare. {_diagnosis(pruning, issues, skipped)}")
    names, supercategories, entries, notes = _labelled_entries(
        kept["annotations"], cocos["annotations"], num_classes, classes, sources[0][1])
    pruning["annotations"]["selected_classes"] = len(entries)
    if test_annotations is None:
        splits, warnings = stratified_split([e["label"] for e in entries], test_fraction, seed)
        notes.extend(warnings)
        for entry, split in zip(entries, splits, strict=True):
            entry["split"], entry["id"] = split, entry["source_id"]
    else:
        entries += _own_test_split(entries, kept["test_annotations"], cocos["test_annotations"],
                                   supercategories, pruning, notes, sources)
    _check_splits(entries, pruning, issues, skipped)
    subsets, subset_notes = choose_subsets(names, supercategories, subset_size, seed)
    notes.extend(subset_notes)
    label_order = {name: i for i, name in enumerate(names)}
    entries.sort(key=lambda e: (e["split"] != "train", label_order[e["label"]], e["id"]))
    paths = {"annotations": annotations, "images": images, "test_annotations": test_annotations,
             "test_images": test_images}
    manifest = Manifest(
        dataset=dataset, images_dir=str(Path(images).resolve()), classes=names,
        test_images_dir=str(Path(test_images).resolve()) if test_images else None,
        images=[_entry(e, subsets) for e in entries], subsets=subsets,
        supercategories=supercategories, has_boxes=True,
        counts={"pruning": pruning, **boxes,
                "split": {s: sum(e["split"] == s for e in entries) for s in ("train", "test")}},
        settings={**{key: str(Path(p).resolve()) if p else None for key, p in paths.items()},
                  "num_classes": num_classes, "classes": classes, "seed": seed, **rules,
                  "bad_images": bad_images,
                  "test_fraction": None if test_annotations else test_fraction,
                  "subset_size": subset_size},
        source_sha256={role: sha256_file(path) for role, path, _ in sources},
        skipped_images=skipped, notes=notes,
        skipped_annotations=[item for issue in issues for item in issue.invalid])
    save_manifest(manifest, out)
    return manifest


def _labelled_entries(kept: list[dict], coco: COCO, num_classes: int,
                      classes: list[str] | None, path: Path
                      ) -> tuple[list[str], dict[str, str], list[dict], list[str]]:
    """Rule 7 on the train file: class names, supercategories, labelled entries, notes."""
    per_category: dict[int, int] = {}
    for cand in kept:
        per_category[cand["category_id"]] = per_category.get(cand["category_id"], 0) + 1
    chosen, notes = _select_classes(per_category, coco, num_classes, classes, path)
    names = [coco.cats[c]["name"] for c in chosen]
    supercategories = {coco.cats[c]["name"]: coco.cats[c].get("supercategory") or "(none)"
                       for c in chosen}
    entries = [{**c, "label": coco.cats[c["category_id"]]["name"]}
               for c in kept if c["category_id"] in chosen]
    return names, supercategories, entries, notes


def _prune_sources(sources: list[tuple[str, Path, Path]], rules: dict[str, Any],
                   bad_images: str, progress: bool
                   ) -> tuple[dict, dict, list, dict, dict, list[BoxIssues]]:
    """Rules 1-6 on each annotation file: its COCO, kept candidates, skipped files, counts
    (``boxes_invalid`` only when some box was skipped) and the boxes left out at rule 3."""
    for role, ann_path, img_dir in sources:  # every file is validated before any work
        if not img_dir.is_dir():
            raise DataError(f"image folder not found: {img_dir} (given for {ann_path} with "
                            f"{IMAGE_FLAGS[role]})")
    cocos = {role: load_coco(path, IMAGE_FLAGS[role]) for role, path, _ in sources}
    kept, skipped, pruning, issues = {}, [], {}, []
    boxes = {"boxes_clipped": 0, "boxes_dropped": 0, "boxes_invalid": 0}
    for role, ann_path, img_dir in sources:
        issues.append(BoxIssues(str(ann_path)))
        candidates, counts = prune_images(cocos[role], **rules, issues=issues[-1])
        for key in boxes:
            boxes[key] += counts.pop(key)
        kept[role], bad = check_readable(candidates, img_dir, bad_images, role, progress)
        skipped.extend(bad)
        pruning[role] = {**counts, "readable": len(kept[role])}
    if not boxes["boxes_invalid"]:
        del boxes["boxes_invalid"]  # manifests of valid files stay as they were
    return cocos, kept, skipped, pruning, boxes, issues


def _diagnosis(pruning: dict[str, dict[str, int]], issues: list[BoxIssues],
               skipped: list[dict]) -> str:
    """Why images were lost: the counts after each rule, the first boxes dropped or skipped
    at rule 3 (file, image id, file name, bbox), the first image files skipped."""
    parts = [f"Images left after each rule ({role}): "
             + ", ".join(f"{rule} {n}" for rule, n in counts.items())
             for role, counts in pruning.items()]
    for kind, what in (("dropped", "box(es) dropped for zero or negative size"),
                       ("invalid", "annotation(s) skipped for a bbox that is not 4 finite "
                                   "numbers")):
        items = [item for issue in issues for item in getattr(issue, kind)][:LISTED]
        if items:
            parts.append(f"{what}, first: " + "; ".join(
                f"{i['file']}: image {i['image_id']} ({i['file_name']}), annotation "
                f"{i['annotation_id']}, bbox {i['bbox']}" for i in items))
    if skipped:
        parts.append(f"{len(skipped)} image file(s) skipped, first: " + "; ".join(
            f"{s['file_name']} ({s['reason']})" for s in skipped[:LISTED]))
    return ". ".join(parts)


def _own_test_split(entries: list[dict], candidates: list[dict], test_coco: COCO,
                    supercategories: dict[str, str], pruning: dict, notes: list[str],
                    sources: list[tuple[str, Path, Path]]) -> list[dict]:
    """The test entries of the dataset's own test file (chosen classes); ids kept apart."""
    test_entries = [{**c, "label": test_coco.cats[c["category_id"]]["name"], "split": "test"}
                    for c in candidates
                    if test_coco.cats[c["category_id"]]["name"] in supercategories]
    pruning["test_annotations"]["selected_classes"] = len(test_entries)
    offset = _id_offset(entries, test_entries)
    if offset:
        notes.append(f"image ids of {sources[1][1]} overlap those of {sources[0][1]}: "
                     f"test ids are source_id + {offset}")
    for entry in entries:
        entry["split"], entry["id"] = "train", entry["source_id"]
    for entry in test_entries:
        entry["id"] = entry["source_id"] + offset
    return test_entries


def _check_splits(entries: list[dict], pruning: dict[str, dict[str, int]],
                  issues: list[BoxIssues], skipped: list[dict]) -> None:
    for split in ("train", "test"):
        if not any(e["split"] == split for e in entries):
            raise DataError(f"the {split} split ends empty after pruning and class selection "
                            f"({len(entries)} images in all); use more data, other --classes, "
                            "or a looser rule (--instance-rule category, --max-foreground). "
                            + _diagnosis(pruning, issues, skipped))


def _entry(cand: dict, subsets: dict[str, list[str]]) -> dict:
    return {"id": cand["id"], "source_id": cand["source_id"], "file_name": cand["file_name"],
            "label": cand["label"], "boxes": cand["boxes"], "width": cand["width"],
            "height": cand["height"], "split": cand["split"],
            "subsets": [name for name, members in subsets.items() if cand["label"] in members]}


def _id_offset(train: list[dict], test: list[dict]) -> int:
    """0 when ids do not collide, else a power of ten above every train id."""
    train_ids = {e["source_id"] for e in train}
    if not train_ids.intersection(e["source_id"] for e in test):
        return 0
    return 10 ** len(str(max(train_ids)))


def _check_settings(num_classes: int, instance_rule: str, max_instances: int,
                    max_foreground: float, crowd: str, bad_images: str, test_fraction: float,
                    subset_size: int, test_annotations: Any, test_images: Any) -> None:
    checks = [
        (num_classes >= 1, f"num_classes must be >= 1, got {num_classes}"),
        (instance_rule in INSTANCE_RULES,
         f"instance_rule {instance_rule!r} is not valid; valid: {', '.join(INSTANCE_RULES)}"),
        (max_instances >= 1, f"max_instances must be >= 1, got {max_instances}"),
        (0 < max_foreground <= 1, f"max_foreground must be in (0, 1], got {max_foreground}"),
        (crowd in CROWD_POLICIES,
         f"crowd {crowd!r} is not valid; valid: {', '.join(CROWD_POLICIES)}"),
        (bad_images in BAD_IMAGE_POLICIES,
         f"bad_images {bad_images!r} is not valid; valid: {', '.join(BAD_IMAGE_POLICIES)}"),
        (0 < test_fraction < 1, f"test_fraction must be in (0, 1), got {test_fraction}"),
        (subset_size >= 1, f"subset_size must be >= 1, got {subset_size}"),
        ((test_annotations is None) == (test_images is None),
         "--test-annotations and --test-images go together: give both or neither"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
