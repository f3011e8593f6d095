"""Any ImageFolder tree (``<class>/<image>``) as a box-free manifest.

Layouts: ``root/train/<class>/*`` plus ``root/test/<class>/*`` (or ``root/val``) keep their
split; otherwise ``root/<class>/*`` (or ``root/train`` alone) gets a seeded stratified split
(``test_fraction`` per class). Classes are the train folder's sorted names (torchvision's
``find_classes``) unless ``class_order`` fixes them (e.g. CIFAR-10's official order).

Bad trees: a missing root, no class folders (in the train or the test folder), test class
folders the train folder lacks, class folders other than ``class_order``'s: :class:`DataError`.
A class folder without a readable image file (empty, or only other files or unreadable ones)
is skipped: the class is left out (with its test images), named in ``counts.skipped_classes``
and in a note, which the ``ctxfusion prepare`` summary prints; it is an error when that leaves
fewer than 2 classes, or when ``class_order`` fixes the classes. Unreadable image files are
skipped and listed (``skipped_images``) or fatal (``bad_images="error"``).
"""

from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from tqdm import tqdm

from ctxfusion.data.images import check_image
from ctxfusion.data.manifest import Manifest, save_manifest, stratified_split
from ctxfusion.errors import ConfigError, DataError
from ctxfusion.vocabulary import BAD_IMAGE_POLICIES


def _class_names(folder: Path, class_order: list[str] | None) -> list[str]:
    try:
        found, _ = find_classes(str(folder))
    except FileNotFoundError as exc:
        raise DataError(f"no class folders in {folder}: expected {folder}/<class>/<image> "
                        f"({exc})") from exc
    for name in found:
        _check_utf8_name(folder, name)
    if class_order is None:
        return found
    missing = sorted(set(class_order) - set(found))
    extra = sorted(set(found) - set(class_order))
    if missing or extra:
        raise DataError(f"class folders in {folder} do not match the expected classes "
                        f"{', '.join(class_order)}: missing {missing or 'none'}, "
                        f"unexpected {extra or 'none'}")
    return list(class_order)


def _list_images(folder: Path, classes: list[str], root: Path) -> list[tuple[str, str]]:
    """``(path relative to root, class)`` of every image file under ``folder/<class>``."""
    try:
        present, _ = find_classes(str(folder))
    except FileNotFoundError as exc:
        raise DataError(f"no class folders in {folder}: expected {folder}/<class>/<image> "
                        f"({exc})") from exc
    unexpected = sorted(set(present) - set(classes))
    if unexpected:
        raise DataError(f"{folder} has class folders {unexpected} that the train folder lacks; "
                        f"valid: {', '.join(classes)}")
    class_to_idx = {name: i for i, name in enumerate(classes) if name in present}
    files = make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    listed = [(Path(path).relative_to(root).as_posix(), classes[index]) for path, index in files]
    for relative, _ in listed:
        _check_utf8_name(root, relative)
    return listed


def _check_utf8_name(root: Path, relative: str) -> None:
    """DataError for a file or folder name that is not valid UTF-8: Python reads it with
    surrogate escapes, which the manifest, results.csv and the report cannot write (the run
    would fail late), so it is refused here, at ``prepare``, with the bytes shown."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(relative)
        raise DataError(f"{root}: the name {raw!r} is not valid UTF-8: rename the file or "
                        "class folder to a UTF-8 name (e.g. `convmv -f latin1 -t utf-8 -r "
                        "--notest FOLDER`), then prepare again") from None


def prepare_imagefolder(root: str | os.PathLike, out: str | os.PathLike, *,
                        test_fraction: float = 0.25, seed: int = 0,
                        class_order: list[str] | None = None, bad_images: str = "skip",
                        dataset: str = "imagefolder", progress: bool = True,
                        decode_images: bool = True, keep_empty_classes: bool = False
                        ) -> Manifest:
    """Write a box-free manifest for an ImageFolder tree; unreadable files skipped or fatal.

    ``decode_images=False`` reads only image headers (for images this program just wrote);
    ``keep_empty_classes=True`` keeps classes without images (when the classes come from the
    data's own definition, as CIFAR-10's python batches, not from the folders).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if bad_images not in BAD_IMAGE_POLICIES:
        raise ConfigError(f"bad_images {bad_images!r} is not valid; "
                          f"valid: {', '.join(BAD_IMAGE_POLICIES)}")
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    train_dir = root / "train" if (root / "train").is_dir() else root
    own_split = train_dir != root and test_dir is not None
    found = _class_names(train_dir, class_order)
    listed = {"train": _list_images(train_dir, found, root)}
    if own_split:
        listed["test"] = _list_images(test_dir, found, root)
    entries, skipped, pruning = _check_files(root, listed, bad_images, progress, decode_images)
    classes, entries, notes = found, entries, []
    if not keep_empty_classes:
        classes, entries, notes = _skip_empty_classes(train_dir, found, entries, class_order)
    skipped_classes = [name for name in found if name not in classes]
    if not own_split:
        pruning = {"all": pruning["train"]}
        splits, warnings = stratified_split([e["label"] for e in entries], test_fraction, seed)
        notes.extend(warnings)
        for entry, split in zip(entries, splits, strict=True):
            entry["split"] = split
    _check_splits(root, entries, skipped)
    order = {name: i for i, name in enumerate(classes)}
    entries.sort(key=lambda e: (e["split"] != "train", order[e["label"]], e["file_name"]))
    for index, entry in enumerate(entries):
        entry["id"] = index
        entry["subsets"] = ["all"]
    manifest = Manifest(
        dataset=dataset, images_dir=str(root.resolve()), classes=classes,
        images=[{key: e[key] for key in ("id", "file_name", "label", "boxes", "width", "height",
                                         "split", "subsets")} for e in entries],
        subsets={"all": list(classes)}, has_boxes=False,
        counts={"pruning": pruning, "split": {s: sum(e["split"] == s for e in entries)
                                              for s in ("train", "test")},
                **({"skipped_classes": skipped_classes} if skipped_classes else {})},
        settings={"root": str(root.resolve()), "own_split": own_split, "seed": seed,
                  "test_fraction": None if own_split else test_fraction,
                  "bad_images": bad_images},
        skipped_images=skipped, notes=notes)
    save_manifest(manifest, out)
    return manifest


def _check_splits(root: Path, entries: list[dict], skipped: list[dict]) -> None:
    for split in ("train", "test"):
        if not any(e["split"] == split for e in entries):
            raise DataError(f"the {split} split of {root} ends empty ({len(entries)} readable "
                            f"images in all, {len(skipped)} unreadable); "
                            f"valid image extensions: {', '.join(IMG_EXTENSIONS)}")


def _skip_empty_classes(train_dir: Path, classes: list[str], entries: list[dict],
                        class_order: list[str] | None) -> tuple[list[str], list[dict], list[str]]:
    """Leave out the classes without a readable train image (see the module docstring)."""
    present = {e["label"] for e in entries if e["split"] == "train"}
    empty = [name for name in classes if name not in present]
    if not empty:
        return classes, entries, []
    described = ", ".join(f"{train_dir / name}/ ({_describe_folder(train_dir / name)})"
                          for name in empty)
    kept = [name for name in classes if name in present]
    if class_order is not None or len(kept) < 2:
        need = ("every class of " + ", ".join(class_order) if class_order is not None
                else "at least 2 classes with images")
        raise DataError(f"class folder(s) without a readable image file: {described}; "
                        f"{len(kept)} class(es) left, a dataset needs {need}")
    left_out = [e for e in entries if e["label"] in empty]
    note = (f"class folder(s) without a readable image file skipped: {described}"
            + (f"; their {len(left_out)} test image(s) are left out" if left_out else ""))
    return kept, [e for e in entries if e["label"] not in empty], [note]


def _describe_folder(folder: Path) -> str:
    """``empty`` or how many files it holds and how many of them have an image extension."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    if not files:
        return "empty"
    images = sum(p.name.lower().endswith(IMG_EXTENSIONS) for p in files)
    return f"{len(files)} file(s), {images} with an image extension"


def _check_files(root: Path, listed: dict[str, list[tuple[str, str]]], bad_images: str,
                 progress: bool, decode: bool) -> tuple[list[dict], list[dict], dict]:
    """Entries of the readable files per role, the skipped ones, and the counts per role."""
    entries, skipped, pruning = [], [], {}
    for role, files in listed.items():
        kept = 0
        for rel, label in tqdm(files, desc=f"checking {role} images", disable=not progress,
                               leave=False):
            result = check_image(root / rel, decode=decode)
            if not result.ok:
                if bad_images == "error":
                    raise DataError(f"image {root / rel}: {result.error} "
                                    "(use --bad-images skip to skip such files)")
                skipped.append({"file_name": rel, "role": role, "reason": result.error})
                continue
            kept += 1
            entries.append({"file_name": rel, "label": label, "boxes": [], "split": role,
                            "width": result.width, "height": result.height})
        pruning[role] = {"files": len(files), "readable": kept}
    return entries, skipped, pruning
