"""The prepared-dataset manifest (``manifest.json``), written by ``ctxfusion prepare``.

One format serves every dataset (COCO-format with boxes, CIFAR-10, any ImageFolder tree); the
fields are fixed in ``docs/architecture.md``. Boxes are stored as COCO ``[x, y, w, h]`` in the
pixel coordinates of the original file; ``file_name`` is relative to ``images_dir`` (train
split) or ``test_images_dir`` (test split, when it has its own folder). Image ``id`` values are
unique within a manifest (``source_id`` keeps the id in the source annotation file).

:func:`load_manifest` checks every field by type before anything uses it (``classes`` a list
of distinct names, each image's ``id`` an integer, ``file_name`` a string, ``label`` one of
the classes, ``boxes`` finite ``[x, y, w, h]`` with w, h > 0, ``split`` train or test, ids
unique, ...): one :class:`DataError` per problem, ``<file>: images[3].boxes = "...": expected
...``. ``skipped_annotations`` (boxes that were not 4 finite numbers) is written only when
some annotation was skipped, so manifests of clean data keep their exact bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctxfusion.containment import check_relative, relative_name_problem
from ctxfusion.data.validate import (
    BOOL,
    INT,
    NAME,
    OBJECT,
    OBJECTS,
    OPTIONAL_NAME,
    POSITIVE_INT,
    STRINGS,
    TEXTS,
    Check,
    FileFields,
    is_box,
    is_int,
    is_name,
    is_string_list,
    show,
)
from ctxfusion.errors import DataError
from ctxfusion.io import atomic_write_text

FORMAT = "ctxfusion-manifest/1"
MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "test")
_REQUIRED = ("format", "dataset", "images_dir", "classes", "subsets", "images")

#: the class subsets a manifest defines (SPEC §2): every class, and two of 4 classes
SUBSETS = ("all", "dissimilar", "similar")


@dataclass
class Manifest:
    """A loaded manifest: classes (label index = position), subsets, image entries, provenance."""

    dataset: str
    images_dir: str
    classes: list[str]
    images: list[dict[str, Any]]
    subsets: dict[str, list[str]] = field(default_factory=dict)
    supercategories: dict[str, str] = field(default_factory=dict)
    test_images_dir: str | None = None
    has_boxes: bool = True
    counts: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    source_sha256: dict[str, str] = field(default_factory=dict)
    skipped_images: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: annotations skipped for a box that is not 4 finite numbers (saved only when some were)
    skipped_annotations: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None  # where it was loaded from (not saved)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json``."""
        data = {
            "format": FORMAT,
            "dataset": self.dataset,
            "images_dir": self.images_dir,
            "test_images_dir": self.test_images_dir,
            "has_boxes": self.has_boxes,
            "classes": self.classes,
            "supercategories": self.supercategories,
            "subsets": self.subsets,
            "counts": self.counts,
            "settings": self.settings,
            "source_sha256": self.source_sha256,
            "skipped_images": self.skipped_images,
            "notes": self.notes,
        }
        if self.skipped_annotations:
            data["skipped_annotations"] = self.skipped_annotations
        return {**data, "images": self.images}

    def image_path(self, entry: dict[str, Any]) -> Path:
        """Absolute path of an image entry's file."""
        folder = self.images_dir
        if entry["split"] == "test" and self.test_images_dir:
            folder = self.test_images_dir
        return Path(folder) / entry["file_name"]

    def subset_classes(self, subset: str | None) -> list[str]:
        """Class names of ``subset`` (``None`` or ``"all"``: every class), in manifest order."""
        if subset is None:
            return list(self.classes)
        key = subset.lower()
        if key == "all" and key not in self.subsets:
            return list(self.classes)
        if key not in self.subsets:
            raise DataError(
                f"subset {subset!r} is not in manifest {self.path or ''}; "
                f"valid: {', '.join(sorted(set(self.subsets) | {'all'}))}"
            )
        members = set(self.subsets[key])
        return [name for name in self.classes if name in members]

    def entries(self, split: str, subset: str | None = None) -> list[dict[str, Any]]:
        """Entries of ``split`` (``train``, ``test`` or ``all``) whose label is in ``subset``."""
        if split not in (*SPLITS, "all"):
            raise DataError(f"split {split!r} is not valid; valid: train, test, all")
        members = set(self.subset_classes(subset))
        return [
            entry for entry in self.images
            if (split == "all" or entry["split"] == split) and entry["label"] in members
        ]


def require_boxes(manifest: Manifest, what: str) -> None:
    """Refuse a box-dependent step (``what``, e.g. "blur inside boxes") on a box-free dataset."""
    if not manifest.has_boxes:
        raise DataError(
            f"{what} needs object boxes, but dataset {manifest.dataset!r} "
            f"({manifest.path or 'manifest'}) has none (has_boxes: false); use a COCO-format "
            "dataset with boxes, or an experiment that does not use boxes"
        )


def save_manifest(manifest: Manifest, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/manifest.json`` atomically; returns its path."""
    path = Path(out_dir) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest.to_dict(), indent=1) + "\n")
    manifest.path = path
    return path


def load_manifest(path: str | os.PathLike | Manifest) -> Manifest:
    """Load a manifest from ``manifest.json``, its folder, or return a loaded one unchanged."""
    if isinstance(path, Manifest):
        return path
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise DataError(
            f"no manifest at {path}; create one with `ctxfusion prepare coco|cifar10|imagefolder`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"manifest {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"manifest {path} must hold a JSON object, found {type(data).__name__}")
    for key in _REQUIRED:
        if key not in data:
            raise DataError(f"manifest {path} lacks the key {key!r} "
                            f"(required: {', '.join(_REQUIRED)})")
    if data["format"] != FORMAT:
        raise DataError(f"manifest {path} has format {data['format']!r}; "
                        f"this version reads {FORMAT!r}")
    _validate_top(FileFields(path), data)
    _validate_images(FileFields(path), data)
    known = {name for name in Manifest.__dataclass_fields__ if name != "path"}
    manifest = Manifest(**{key: value for key, value in data.items() if key in known})
    manifest.path = path
    return manifest


_CLASSES: Check = (lambda v: is_string_list(v) and len(v) > 0 and len(set(v)) == len(v),
                   "a non-empty list of distinct class names (strings)")
_NAME_MAP: Check = (lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
                    "an object mapping class names to supercategory names (strings)")
_SUBSET_MAP: Check = (lambda v: isinstance(v, dict) and all(is_string_list(x) for x in v.values()),
                      "an object mapping subset names to lists of class names")


def _validate_top(fields: FileFields, data: dict[str, Any]) -> None:
    """The manifest's fields other than ``images``, by type (one error per problem)."""
    fields.get(data, "", "dataset", NAME, "(the dataset's name)")
    fields.get(data, "", "images_dir", NAME, "(the folder of the train images)")
    fields.get(data, "", "test_images_dir", OPTIONAL_NAME, "(the folder of the test images)",
               default=None)
    fields.get(data, "", "has_boxes", BOOL, default=True)
    classes = fields.get(data, "", "classes", _CLASSES)
    fields.get(data, "", "supercategories", _NAME_MAP, default={})
    for name, members in fields.get(data, "", "subsets", _SUBSET_MAP).items():
        unknown = [member for member in members if member not in set(classes)]
        if unknown:
            fields.fail(f"subsets.{name}", members,
                        f"names from classes ({show(unknown[0])} is not one)")
    for key in ("counts", "settings", "source_sha256"):
        fields.get(data, "", key, OBJECT, default={})
    for key in ("skipped_images", "skipped_annotations"):
        fields.get(data, "", key, OBJECTS, default=[])
    fields.get(data, "", "notes", TEXTS, default=[])


def _validate_images(fields: FileFields, data: dict[str, Any]) -> None:
    """Every field of every image entry, by type; ids unique."""
    classes = set(data["classes"])
    box_check: Check = (lambda v: isinstance(v, list) and all(
        is_box(b) and b[2] > 0 and b[3] > 0 for b in v),
        "a list of [x, y, width, height] boxes (finite numbers, width and height > 0)")
    shown = ", ".join(data["classes"][:8]) + (", ..." if len(classes) > 8 else "")
    label_check: Check = (lambda v: v in classes, f"one of the manifest's classes ({shown})")
    split_check: Check = (lambda v: v in SPLITS, "train or test")
    images = fields.records(data, "images", "image")
    for index, entry in enumerate(images):
        if _entry_ok(entry, classes):
            if relative_name_problem(entry["file_name"]) is None:
                continue  # the common case, fast; else the field at fault is found below
            check_relative(entry["file_name"], f"{fields.path}: images[{index}].file_name",
                           "images_dir", DataError)
        where = f"images[{index}]"
        fields.get(entry, where, "id", INT, "(unique within the manifest)")
        fields.get(entry, where, "file_name", NAME,
                   "(the image's file name relative to images_dir or test_images_dir)")
        fields.get(entry, where, "label", NAME)
        fields.get(entry, where, "label", label_check)
        fields.get(entry, where, "boxes", box_check)
        fields.get(entry, where, "split", split_check)
        for name in ("width", "height"):
            fields.get(entry, where, name, POSITIVE_INT, f"(the image's {name} in pixels)",
                       default=None)
        fields.get(entry, where, "source_id", INT, default=None)
        fields.get(entry, where, "subsets", STRINGS, default=None)
    fields.unique(images, "images", "id")


def _entry_ok(entry: dict[str, Any], classes: set[str]) -> bool:
    """Whether an image entry is valid (the checks of :func:`_validate_images`, at once)."""
    boxes = entry.get("boxes")
    return (is_int(entry.get("id")) and is_name(entry.get("file_name"))
            and isinstance(entry.get("label"), str) and entry["label"] in classes
            and entry.get("split") in SPLITS and isinstance(boxes, list)
            and all(is_box(b) and b[2] > 0 and b[3] > 0 for b in boxes)
            and all(k not in entry or (is_int(entry[k]) and entry[k] > 0)
                    for k in ("width", "height"))
            and ("source_id" not in entry or is_int(entry["source_id"]))
            and ("subsets" not in entry or is_string_list(entry["subsets"])))


def stratified_split(
    labels: list[str], test_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Seeded per-class split; returns each item's split (``train``/``test``) and warnings.

    Per class of n items, round(n * test_fraction) go to test, at least 1 and at most n - 1
    when n >= 2; a class with a single item keeps it in train (warned, not an error).
    Hand-written because scikit-learn's ``train_test_split(stratify=...)`` refuses classes with
    one member and rounds globally, not per class.
    """
    by_class: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    splits = ["train"] * len(labels)
    warnings: list[str] = []
    rng = np.random.default_rng([seed, 0])
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < 2:
            warnings.append(f"class {label!r} has a single image: kept in train, none in test")
            continue
        n_test = min(max(int(len(members) * test_fraction + 0.5), 1), len(members) - 1)
        for position in rng.permutation(len(members))[:n_test]:
            splits[members[int(position)]] = "test"
    return splits, warnings


def per_class_counts(manifest: Manifest) -> dict[str, dict[str, int]]:
    """``{class: {"train": n, "test": n}}`` over the manifest's images."""
    counts = {name: {"train": 0, "test": 0} for name in manifest.classes}
    for entry in manifest.images:
        counts[entry["label"]][entry["split"]] += 1
    return counts


def format_summary(manifest: Manifest) -> str:
    """A short plain-text summary: images left after each pruning rule, per-class counts, notes."""
    lines = [f"dataset {manifest.dataset}: {len(manifest.classes)} classes, "
             f"{len(manifest.images)} images -> {manifest.path or '(not saved)'}"]
    pruning = manifest.counts.get("pruning", {})
    if pruning:
        roles = list(pruning)
        rules = list(pruning[roles[0]])
        lines.append("images left after each rule:")
        lines.append(f"  {'rule':<28}" + "".join(f"{role:>18}" for role in roles))
        for rule in rules:
            lines.append(f"  {rule:<28}" + "".join(
                f"{pruning[role].get(rule, ''):>18}" for role in roles))
    for key in ("boxes_clipped", "boxes_dropped", "boxes_invalid"):
        if key in manifest.counts:
            lines.append(f"{key.replace('_', ' ')}: {manifest.counts[key]}")
    width = max([5, *(len(name) for name in manifest.classes)])
    lines.append(f"  {'class':<{width}} {'train':>7} {'test':>7}  supercategory / subsets")
    per_class = per_class_counts(manifest)
    for name in manifest.classes:
        member_of = [key for key, names in manifest.subsets.items()
                     if name in names and key != "all"]
        extra = " ".join(filter(None, [manifest.supercategories.get(name, ""), *member_of]))
        lines.append(f"  {name:<{width}} {per_class[name]['train']:>7} "
                     f"{per_class[name]['test']:>7}  {extra}")
    total = {split: sum(c[split] for c in per_class.values()) for split in SPLITS}
    lines.append(f"  {'total':<{width}} {total['train']:>7} {total['test']:>7}")
    for name, members in manifest.subsets.items():
        lines.append(f"subset {name} ({len(members)}): {', '.join(members)}")
    lines.extend(_skip_lines(manifest))
    lines.extend(f"note: {note}" for note in manifest.notes)
    return "\n".join(lines)


def _skip_lines(manifest: Manifest, listed: int = 3) -> list[str]:
    """What was skipped: missing and unreadable files, annotations with invalid boxes."""
    lines = []
    skipped = manifest.skipped_images
    missing = [s for s in skipped if s.get("reason") == "file not found"]
    if missing:
        roles = {s.get("role") for s in missing}
        checked = sum(manifest.counts.get("pruning", {}).get(role, {}).get("foreground", 0)
                      for role in roles)
        total = f" of {checked}" if checked else ""
        lines.append(f"{len(missing)}{total} image files missing (first: "
                     + ", ".join(str(manifest.image_path({**s, "split": _split_of(s)}))
                                 for s in missing[:listed]) + ")")
    if len(skipped) > len(missing):
        lines.append(f"skipped {len(skipped) - len(missing)} unreadable image(s)")
    if skipped:
        lines.append("skipped files are listed in the manifest's skipped_images")
    bad_boxes = manifest.skipped_annotations
    if bad_boxes:
        lines.append(f"skipped {len(bad_boxes)} annotation(s) whose bbox is not 4 finite "
                     "numbers, listed in the manifest's skipped_annotations; first: " + "; ".join(
                         f"{a['file']}: image {a['image_id']}, annotation {a['annotation_id']}, "
                         f"bbox {a['bbox']}" for a in bad_boxes[:listed]))
    return lines


def _split_of(skipped: dict[str, Any]) -> str:
    """The split whose folder a skipped file was looked up in (its role)."""
    return "test" if skipped.get("role") in ("test", "test_annotations") else "train"


def choose_subsets(classes: list[str], supercategories: dict[str, str], size: int,
                   seed: int) -> tuple[dict[str, list[str]], list[str]]:
    """The All / Dissimilar / Similar class subsets (seeded), and notes on any shortfall.

    Dissimilar: ``size`` supercategories drawn at random, one class drawn from each.
    Similar: one supercategory drawn among those with at least ``size`` classes, then ``size``
    of its classes; when none has enough, every class of the largest (ties by name).
    """
    groups: dict[str, list[str]] = {}
    for name in classes:
        groups.setdefault(supercategories[name], []).append(name)
    notes = []
    rng = np.random.default_rng([seed, 1])
    names = sorted(groups)
    if len(names) < size:
        notes.append(f"dissimilar: only {len(names)} distinct supercategories among the "
                     f"{len(classes)} classes, so {len(names)} classes instead of {size}")
    picked = rng.choice(len(names), size=min(size, len(names)), replace=False)
    dissimilar = {groups[names[i]][int(rng.integers(len(groups[names[i]])))] for i in picked}
    rng = np.random.default_rng([seed, 2])
    eligible = [name for name in names if len(groups[name]) >= size]
    if eligible:
        group = groups[eligible[int(rng.integers(len(eligible)))]]
        similar = {group[i] for i in rng.choice(len(group), size=size, replace=False)}
    else:
        largest = min(names, key=lambda n: (-len(groups[n]), n))
        similar = set(groups[largest])
        notes.append(f"similar: no supercategory has {size} of the selected classes; using the "
                     f"largest, {largest!r}, with {len(similar)}")
    order = {name: i for i, name in enumerate(classes)}
    members = (list(classes), sorted(dissimilar, key=order.get), sorted(similar, key=order.get))
    return dict(zip(SUBSETS, members, strict=True)), notes
