"""The contextual-scenes benchmark: a procedural miniature of "objects on informative backgrounds".

24 object classes in 8 COCO-like supercategories ("striped" has 10 classes, so a Similar subset
of 8 exists; 8 supercategories give a Dissimilar subset), 16 scenes in 8 families of 2. Each
supercategory lives in its own family (a strong cue); classes of one supercategory prefer
different scenes of that family (a weak cue). ``context_strength`` c in [0,1]: with probability
c an image's scene is drawn from its class's preferences, otherwise uniformly from all scenes.

Seeds: the benchmark uses seeds < 1000; pretraining of the shipped streams uses seeds >= 10_000,
so the streams never see a benchmark image (``BENCHMARK_SEED_LIMIT``, ``PRETRAIN_SEED_BASE``).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ctxfusion.errors import ConfigError
from ctxfusion.io import atomic_write_bytes, atomic_write_text
from ctxfusion.scenes.render import (
    CLASS_NAMES,
    CLASS_SUPERCATEGORY,
    FAMILIES,
    SCENE_NAMES,
    SCENES,
    SUPERCATEGORIES,
    paint_objects,
    render_scenes,
)

BENCHMARK_SEED_LIMIT = 1000
PRETRAIN_SEED_BASE = 10_000
#: share of a class's preferred-scene mass on "its" scene of the family (the rest on the others)
OWN_SCENE_WEIGHT = 0.75
FORMAT = "ctxfusion-scenes/1"

__all__ = [
    "CLASS_NAMES", "CLASS_SUPERCATEGORY", "SCENE_NAMES", "SceneBatch", "class_scene_preferences",
    "generate_scenes", "render_batch", "BENCHMARK_SEED_LIMIT", "PRETRAIN_SEED_BASE",
]


@dataclass
class SceneBatch:
    """Rendered images (n,H,W,3) uint8, object labels (n,), XYXY boxes per image, scene labels."""

    images: np.ndarray
    labels: np.ndarray
    boxes: list[np.ndarray]
    scenes: np.ndarray


def class_scene_preferences() -> np.ndarray:
    """(24, 16) matrix: each class's distribution over scenes when context applies.

    Class j of a supercategory puts ``OWN_SCENE_WEIGHT`` on scene j mod k of its family's k
    scenes and spreads the rest over the family's other scenes.
    """
    prefs = np.zeros((len(CLASS_NAMES), len(SCENES)))
    position: dict[str, int] = {}
    for cls, sup in enumerate(CLASS_SUPERCATEGORY):
        family = SUPERCATEGORIES[sup][0]
        members = [i for i, s in enumerate(SCENES) if s[1] == family]
        j = position.get(sup, 0)
        position[sup] = j + 1
        own = members[j % len(members)]
        for m in members:
            prefs[cls, m] = OWN_SCENE_WEIGHT if m == own else (1 - OWN_SCENE_WEIGHT) / (
                len(members) - 1)
    return prefs


def _check_strength(context_strength: float | None) -> None:
    if context_strength is not None and not 0.0 <= context_strength <= 1.0:
        raise ConfigError(f"context_strength={context_strength!r} is invalid: use a number in "
                          "[0, 1] (0 = scene independent of the object, 1 = only preferred scenes)")


def render_batch(
    rng: np.random.Generator | int,
    n: int,
    context_strength: float | None,
    *,
    image_size: int = 64,
    labels: np.ndarray | None = None,
    objects: bool = True,
    flat_object_prob: float = 0.0,
) -> SceneBatch:
    """Render ``n`` images in memory (the API pretraining uses).

    ``context_strength=None`` draws scenes uniformly (same as 0). ``objects=False`` renders bare
    scenes (boxes empty, labels -1). ``flat_object_prob`` paints that share of objects in one flat
    colour, which teaches a scene stream to ignore what is inside objects.
    """
    _check_strength(context_strength)
    if n < 1 or image_size < 32:
        raise ConfigError(f"render_batch needs n >= 1 and image_size >= 32, got n={n}, "
                          f"image_size={image_size}")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    num_scenes = len(SCENES)
    if labels is None:
        labels = rng.integers(0, len(CLASS_NAMES), n)
    labels = np.asarray(labels, np.int64)
    uniform = rng.integers(0, num_scenes, n)
    prefs = np.cumsum(class_scene_preferences()[labels], axis=1)
    preferred = (rng.random((n, 1)) > prefs).sum(1).clip(max=num_scenes - 1)
    use_pref = rng.random(n) < (context_strength or 0.0)
    scenes = np.where(use_pref, preferred, uniform)
    images = render_scenes(rng, scenes, image_size)
    if objects:
        boxes = paint_objects(rng, images, labels, flat_prob=flat_object_prob)
    else:
        boxes = [np.zeros((0, 4), np.float32) for _ in range(n)]
        labels = np.full(n, -1, np.int64)
    pixels = np.round(images * 255).astype(np.uint8)
    return SceneBatch(pixels, labels, boxes, scenes.astype(np.int64))


def _categories() -> list[dict]:
    return [{"id": i + 1, "name": name, "supercategory": sup}
            for i, (name, sup) in enumerate(zip(CLASS_NAMES, CLASS_SUPERCATEGORY, strict=True))]


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _write_split(out_dir: Path, split: str, batches: Iterable[SceneBatch], settings: dict,
                 id_offset: int) -> Path:
    """One split's PNGs and JSON, written batch by batch (so only one rendered batch is ever
    in memory); image and annotation ids start after ``id_offset``."""
    images, annotations = [], []
    folder = out_dir / split
    folder.mkdir(parents=True, exist_ok=True)
    i = -1
    for batch in batches:
        size = batch.images.shape[1]
        for index in range(len(batch.labels)):
            i += 1
            file_name = f"{i:06d}.png"
            atomic_write_bytes(folder / file_name, _png_bytes(batch.images[index]))
            images.append({"id": id_offset + i + 1, "file_name": file_name, "width": size,
                           "height": size, "scene": SCENE_NAMES[batch.scenes[index]],
                           "scene_id": int(batch.scenes[index])})
            for x0, y0, x1, y1 in batch.boxes[index].tolist():
                w, h = x1 - x0, y1 - y0
                annotations.append({
                    "id": id_offset + len(annotations) + 1, "image_id": id_offset + i + 1,
                    "category_id": int(batch.labels[index]) + 1, "bbox": [x0, y0, w, h],
                    "area": w * h, "iscrowd": 0,
                })
    doc = {
        "info": {"description": f"ctxfusion contextual scenes, {split} split",
                 "format": FORMAT, **settings, "split": split},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": _categories(),
        "scenes": [{"id": i, "name": s[0], "family": s[1]} for i, s in enumerate(SCENES)],
        "families": FAMILIES,
    }
    path = out_dir / f"instances_{split}.json"
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


#: images rendered at once: the renderer's float layers take about 0.2 MB per 64-px image, so
#: this bounds generation's memory at any split size; a split of at most this many images is
#: one batch, as before chunking, so its bytes are unchanged
RENDER_CHUNK = 4096


def _render_in_chunks(rng: np.random.Generator, labels: np.ndarray,
                      context_strength: float | None, image_size: int) -> Iterator[SceneBatch]:
    """Render ``labels``' images RENDER_CHUNK at a time from one generator (seeded output)."""
    for start in range(0, len(labels), RENDER_CHUNK):
        part = labels[start:start + RENDER_CHUNK]
        yield render_batch(rng, len(part), context_strength, image_size=image_size, labels=part)


def generate_scenes(
    out_dir: str | os.PathLike,
    *,
    num_train: int,
    num_test: int,
    context_strength: float,
    seed: int,
    image_size: int = 64,
) -> dict[str, Path]:
    """Write the benchmark in the COCO instances format; same seed -> same bytes.

    Writes ``instances_train.json`` + ``train/`` and ``instances_test.json`` + ``test/`` (PNG)
    under ``out_dir``; each image entry also carries its ``scene`` name. Returns the paths.
    """
    _check_strength(context_strength)
    if num_train < 1 or num_test < 1:
        raise ConfigError(f"num_train={num_train} and num_test={num_test} must both be >= 1")
    if seed < 0:
        raise ConfigError(f"seed={seed} must be >= 0 (benchmark seeds are < "
                          f"{BENCHMARK_SEED_LIMIT}, pretraining seeds >= {PRETRAIN_SEED_BASE})")
    out = Path(out_dir)
    settings = {"context_strength": context_strength, "seed": seed, "image_size": image_size,
                "num_train": num_train, "num_test": num_test}
    paths: dict[str, Path] = {"root": out}
    for split_index, (split, count) in enumerate((("train", num_train), ("test", num_test))):
        rng = np.random.default_rng([seed, split_index])
        labels = np.arange(count) % len(CLASS_NAMES)  # balanced classes
        labels = rng.permutation(labels)
        batches = _render_in_chunks(rng, labels, context_strength, image_size)
        # test ids follow the train ids (unique across splits, like COCO's)
        paths[split] = _write_split(out, split, batches, settings, num_train * split_index)
        paths[f"{split}_images"] = out / split
    return paths
