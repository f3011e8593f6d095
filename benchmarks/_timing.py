"""Shared helpers of the benchmarks: interleaved A/B timing, ratio lines, common flags, data.

Every comparison runs both sides in ONE process, interleaved (a, b, b, a, a, b, ...: the order
alternates so neither side always runs first; three or more sides in a seeded random order
per round), after ``warmup`` calls of each (oneDNN builds its kernels on first use). On a
shared machine a slow moment then hits both sides alike, and the per-round ratio
``time(b) / time(a)`` is the figure to trust; absolute times are noisy.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO

import numpy as np
import torch
from PIL import Image

from ctxfusion.paths import shared_dir

TINY_ARCHIVE = "data/tiny-imagenet-boxes.tar.gz"


def quiet_progress() -> None:
    """Silence the project's tqdm bars, which would interleave with the tables (tqdm is
    imported with torch, before a TQDM_DISABLE set here could act)."""
    from tqdm import std

    init = std.tqdm.__init__
    if getattr(init, "quiet", False):
        return

    def quiet(self, *args, **kwargs) -> None:
        kwargs["disable"] = True
        init(self, *args, **kwargs)

    quiet.quiet = True
    std.tqdm.__init__ = quiet


quiet_progress()


def sync(device: str) -> None:
    """Wait for queued CUDA work, so a timer measures the work and not its launch."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn: Callable[[], object], device: str = "cpu") -> float:
    """Wall seconds of one ``fn()`` call (CUDA synchronised on both ends)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def spread(values: list[float], scale: float = 1.0, fmt: str = ".2f") -> str:
    """``median (min-max)`` of ``values`` times ``scale``."""
    v = [x * scale for x in values]
    return f"{statistics.median(v):{fmt}} ({min(v):{fmt}}-{max(v):{fmt}})"


@dataclass
class Comparison:
    """Seconds per call of two sides measured in pairs; ``ratios[i] = b[i] / a[i]``."""

    label_a: str
    label_b: str
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [tb / ta for ta, tb in zip(self.a, self.b, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def table(self, unit: str = "ms", scale: float = 1e3) -> str:
        """One line per side (median and min-max) and one for the ratio b / a."""
        width = max(len(self.label_a), len(self.label_b), 5)
        return "\n".join([
            f"  {self.label_a:<{width}} {unit} {spread(self.a, scale)}",
            f"  {self.label_b:<{width}} {unit} {spread(self.b, scale)}",
            f"  {'b / a':<{width}}    {spread(self.ratios)}  ({len(self.a)} pairs)",
        ])


def interleave(fns: dict[str, Callable[[], object]], *, device: str = "cpu", warmup: int = 3,
               repeats: int = 5) -> dict[str, list[float]]:
    """Seconds per call of each of ``fns``: ``warmup`` untimed rounds, then ``repeats`` timed
    rounds; each round calls every function once. Two sides alternate which goes first;
    more sides run in a new seeded random order each round, so no side always follows the
    same neighbour (one that frees large buffers can slow the next call)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    order = random.Random(0)
    for i in range(repeats if names else 0):
        if len(names) <= 2:
            round_order = names if i % 2 == 0 else names[::-1]
        else:
            round_order = order.sample(names, len(names))
        for name in round_order:
            times[name].append(measure(fns[name], device))
    return times


def compare(a: Callable[[], object], b: Callable[[], object], *, labels: tuple[str, str],
            device: str = "cpu", warmup: int = 3, repeats: int = 5) -> Comparison:
    """Time ``a`` and ``b`` interleaved: ``warmup`` calls of each, then ``repeats`` pairs."""
    times = interleave({"a": a, "b": b}, device=device, warmup=warmup, repeats=repeats)
    return Comparison(*labels, times["a"], times["b"])


def ratio_line(name: str, ratios: list[float], target: float | None = None,
               limit: str = "") -> str:
    """The headline: ``ratio NAME: 2.81x (2.60-2.95), target >= 2.5x: met``.

    The target is met when the median reaches it; a minimum below it is said.
    """
    median = statistics.median(ratios)
    line = f"ratio {name}: {median:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
    if target is not None:
        verdict = "met" if median >= target else "NOT MET"
        if median >= target > min(ratios):
            verdict += " (min below)"
        line += f", target >= {target:g}x: {verdict}"
    return line + (f"; {limit}" if limit else "")


def parser(description: str, repeats: int = 5) -> argparse.ArgumentParser:
    """An argument parser with the flags every benchmark takes (``run_all.py`` passes them)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--repeats", type=int, default=repeats, help="timed pairs")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls of each side first")
    return p


def machine(device: str) -> str:
    """One line: device, torch version and threads."""
    name = (torch.cuda.get_device_name() if str(device).startswith("cuda")
            else "cpu")
    return f"{name}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def tiny_imagenet_sample(n: int, per_class: int = 8) -> tuple[torch.Tensor, torch.Tensor,
                                                               list[torch.Tensor]]:
    """``n`` real 64-px Tiny ImageNet train photos (``per_class`` per class, archive order)
    read straight from the shared archive: images (n,3,64,64) in [0,1], labels (n,) and one
    (1,4) XYXY box per image."""
    path = shared_dir() / TINY_ARCHIVE
    if not path.is_file():
        raise SystemExit(f"real asset not available: {path} (set CTXFUSION_SHARED)")
    images, labels, boxes, classes = [], [], [], {}
    with tarfile.open(path, "r:gz") as archive:
        coco = next(json.load(archive.extractfile(m)) for m in archive
                    if m.name.endswith("instances_train.json"))  # stored before the images
        box_of = {img["file_name"].split("/")[-1]: None for img in coco["images"]}
        by_id = {img["id"]: img["file_name"].split("/")[-1] for img in coco["images"]}
        for ann in coco["annotations"]:
            box_of[by_id[ann["image_id"]]] = ann["bbox"]
        for member in archive:
            if len(images) == n:
                break
            parts = member.name.split("/")
            if not member.name.endswith(".JPEG") or parts[1] != "train":
                continue
            label = classes.setdefault(parts[2], len(classes))
            if labels.count(label) >= per_class:
                continue
            data = archive.extractfile(member).read()
            pixels = np.asarray(Image.open(BytesIO(data)).convert("RGB"), dtype=np.float32)
            images.append(torch.from_numpy(pixels / 255).permute(2, 0, 1))
            labels.append(label)
            x, y, w, h = box_of[parts[-1]]
            boxes.append(torch.tensor([[x, y, x + w, y + h]], dtype=torch.float32))
    return torch.stack(images), torch.tensor(labels), boxes


def upsample(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """Bilinear resize to ``size`` (the streams' own resize), contiguous."""
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear",
                                           align_corners=False).contiguous()
