"""Pretraining of the two small streams shipped with ctxfusion, on the procedural scenes.

The analogues of ImageNet and Places365 pretraining: the *object* stream learns the 24 object
classes with scenes drawn independently of the object (context strength 0, so it learns objects,
not scenes); the *scene* stream learns the 16 scenes with random objects in front of them, a
share painted flat so that it learns to ignore what is inside objects. Every batch is rendered
fresh from seed ``[seed, domain, step]`` (seeds >= ``PRETRAIN_SEED_BASE``, disjoint from the
benchmark's seeds < ``BENCHMARK_SEED_LIMIT``), so the data is unlimited and reproducible.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ctxfusion.errors import ConfigError
from ctxfusion.io import atomic_save_tensors, atomic_write_text, sha256_file
from ctxfusion.scenes.benchmark import (
    BENCHMARK_SEED_LIMIT,
    CLASS_NAMES,
    PRETRAIN_SEED_BASE,
    SCENE_NAMES,
    render_batch,
)
from ctxfusion.scenes.small_resnet import SmallResNet

WEIGHTS_FORMAT = "ctxfusion-scenes-resnet/1"
RECORD_FORMAT = "ctxfusion-weights/1"
DOMAINS = {"object": 0, "scene": 1}
STREAM_NAMES = {"object": "scenes-object-resnet18", "scene": "scenes-scene-resnet18"}
#: fraction of objects painted flat in the scene stream's data
SCENE_FLAT_OBJECT_PROB = 0.3


@dataclass
class PretrainResult:
    """A pretrained network and what to record about it."""

    domain: str
    model: SmallResNet
    labels: list[str]
    mean: list[float]
    std: list[float]
    settings: dict
    metrics: dict = field(default_factory=dict)


def _batch(domain: str, rng: np.random.Generator, n: int, image_size: int):
    """(images float (n,3,S,S) in [0,1], targets (n,)) for one domain."""
    if domain == "object":
        batch = render_batch(rng, n, 0.0, image_size=image_size)
        targets = batch.labels
    else:
        batch = render_batch(rng, n, 0.0, image_size=image_size,
                             flat_object_prob=SCENE_FLAT_OBJECT_PROB)
        targets = batch.scenes
    # contiguous NCHW: oneDNN's channels-last convolution backward corrupts the heap on
    # AVX2 CPUs with one thread and 4-channel layers (torch 2.14.1, seen on AMD EPYC)
    images = torch.from_numpy(batch.images).permute(0, 3, 1, 2).contiguous().float().div_(255)
    return images, torch.from_numpy(targets)


def _check(domain: str, steps: int, width: int, batch_size: int, seed: int) -> None:
    if domain not in DOMAINS:
        raise ConfigError(f"domain={domain!r} is invalid; valid: {', '.join(DOMAINS)}")
    if steps < 1 or width < 1 or batch_size < 2:
        raise ConfigError(f"steps={steps}, width={width} must be >= 1 and batch_size="
                          f"{batch_size} >= 2")
    if seed < PRETRAIN_SEED_BASE:
        raise ConfigError(f"seed={seed} is reserved: pretraining seeds must be >= "
                          f"{PRETRAIN_SEED_BASE} (benchmark seeds are < {BENCHMARK_SEED_LIMIT})")


def pretrain_stream(
    domain: str,
    *,
    steps: int = 1500,
    width: int = 16,
    batch_size: int = 96,
    lr: float = 3e-3,
    seed: int = PRETRAIN_SEED_BASE,
    image_size: int = 64,
    eval_images: int = 1024,
    progress: bool = True,
) -> PretrainResult:
    """Train a :class:`SmallResNet` for ``domain`` ("object" or "scene") from scratch."""
    _check(domain, steps, width, batch_size, seed)
    started = time.perf_counter()
    torch.manual_seed(seed + DOMAINS[domain])
    labels = CLASS_NAMES if domain == "object" else SCENE_NAMES
    # mean/std from a fresh batch as large as the held-out one (1024 by default, fewer in tests)
    stats, _ = _batch(domain, np.random.default_rng([seed, DOMAINS[domain], 99]),
                      max(64, min(1024, eval_images)), image_size)
    mean = [round(float(v), 4) for v in stats.mean((0, 2, 3))]
    std = [round(float(v), 4) for v in stats.std((0, 2, 3))]
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    model = SmallResNet(width=width, num_classes=len(labels))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps,
                                                   pct_start=0.15)
    model.train()
    correct = seen = 0
    bar = tqdm(range(steps), desc=f"pretrain {domain}", disable=not progress, mininterval=2)
    for step in bar:
        images, targets = _batch(domain, np.random.default_rng([seed, DOMAINS[domain], step]),
                                 batch_size, image_size)
        logits = model((images - mean_t) / std_t)
        loss = F.cross_entropy(logits, targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if step >= steps - max(1, steps // 10):  # training accuracy over the last 10 % of steps
            correct += int((logits.argmax(1) == targets).sum())
            seen += len(targets)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    train_seconds = time.perf_counter() - started
    model.eval()
    images, targets = _batch(domain, np.random.default_rng([seed, DOMAINS[domain], 10**9]),
                             eval_images, image_size)
    with torch.no_grad():
        predictions = torch.cat([model((chunk - mean_t) / std_t).argmax(1)
                                 for chunk in images.split(256)])
    settings = {"steps": steps, "width": width, "batch_size": batch_size, "lr": lr,
                "seed": seed, "image_size": image_size, "optimizer": "AdamW+OneCycleLR",
                "weight_decay": 5e-4, "context_strength": 0.0,
                "flat_object_prob": SCENE_FLAT_OBJECT_PROB if domain == "scene" else 0.0}
    metrics = {"train_accuracy_last_10pct": round(correct / max(seen, 1), 4),
               "heldout_accuracy": round(float((predictions == targets).float().mean()), 4),
               "heldout_images": eval_images, "seconds": round(train_seconds, 1),
               "torch_threads": torch.get_num_threads()}
    return PretrainResult(domain, model, list(labels), mean, std, settings, metrics)


def weights_file_name(domain: str) -> str:
    """The file name of a domain's weights (``scenes-<domain>-resnet18.safetensors``)."""
    return f"{STREAM_NAMES[domain]}.safetensors"


def weights_metadata(result: PretrainResult) -> dict[str, str]:
    """The safetensors header metadata: one key holding sorted JSON.

    safetensors keeps metadata in a hash map whose order changes from process to process, so
    several keys would make the same weights hash differently; one key keeps files reproducible.
    """
    meta = {"format": WEIGHTS_FORMAT, "name": STREAM_NAMES[result.domain],
            "domain": result.domain, "width": result.model.width, "labels": result.labels,
            "mean": result.mean, "std": result.std,
            "image_size": result.settings["image_size"]}
    return {"ctxfusion": json.dumps(meta, sort_keys=True)}


def save_pretrained(out_dir: str | os.PathLike, result: PretrainResult, command: str) -> Path:
    """Write the weights (float16 safetensors) and merge their record into ``weights.json``."""
    out = Path(out_dir)
    state = {k: v.half() if v.is_floating_point() else v
             for k, v in result.model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = atomic_save_tensors(out / weights_file_name(result.domain), state,
                               weights_metadata(result))
    record_path = out / "weights.json"
    records = {"format": RECORD_FORMAT, "files": {}}
    if record_path.exists():
        try:
            records = json.loads(record_path.read_text())
            records.setdefault("files", {})
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{record_path} is not valid JSON ({exc}); remove it or choose "
                              "another --out") from None
    records["files"][path.name] = {
        "sha256": sha256_file(path), "stream": STREAM_NAMES[result.domain],
        "domain": result.domain, "command": command, "seed": result.settings["seed"],
        "settings": result.settings, **result.metrics, "mean": result.mean, "std": result.std,
        "torch": torch.__version__, "storage": "float16 safetensors (upcast to float32 on load)",
        "seed_ranges": f"pretraining seeds >= {PRETRAIN_SEED_BASE}; benchmark seeds < "
                       f"{BENCHMARK_SEED_LIMIT}",
    }
    atomic_write_text(record_path, json.dumps(records, indent=2, sort_keys=True) + "\n")
    return path
