"""Features of a split under each perturbation, computed once and cached by content.

Every stream-view is run once per (perturbed) batch and its features are shared by every head
that reads them (fg, joint, each alpha). An FGSM sweep takes one gradient per batch for all
epsilons (``sign(grad)`` does not depend on eps), then one forward pass per eps and stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ctxfusion.experiments.context import RunContext
from ctxfusion.features import module_digest
from ctxfusion.perturb.attacks import fgsm_direction

Batch = tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]
Perturb = Callable[[torch.Tensor, torch.Tensor, list[torch.Tensor]], torch.Tensor]


@dataclass
class SplitData:
    """One split of one dataset (possibly limited per class), ready to iterate."""

    name: str
    loader: DataLoader
    labels: torch.Tensor  # global class indices, in loader order
    ids: torch.Tensor
    digest: str  # content key: manifest hash + split + selected ids + image size

    def rows_loader(self, rows: torch.Tensor) -> DataLoader:
        """A loader over the given rows only (same order as ``rows``)."""
        subset = torch.utils.data.Subset(self.loader.dataset, rows.tolist())
        return DataLoader(
            subset, batch_size=self.loader.batch_size, shuffle=False,
            collate_fn=self.loader.collate_fn, num_workers=0,
        )


def _stream_views(ctx: RunContext, keys: Sequence[str] | None) -> dict:
    pairs = ctx.stream_views()
    return pairs if keys is None else {k: pairs[k] for k in keys}


def _stream_description(ctx: RunContext, keys: Sequence[str] | None = None) -> dict:
    return {
        key: [stream.name, stream.weights_sha256, key.split("@")[1]]
        for key, (stream, _) in _stream_views(ctx, keys).items()
    }


@torch.no_grad()
def _features_of_batch(ctx: RunContext, images: torch.Tensor, boxes: list[torch.Tensor],
                       keys: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    out = {}
    for key, (stream, view) in _stream_views(ctx, keys).items():
        out[key] = stream(view(images, boxes)).float().cpu()
    return out


def _concat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]} if parts else {}


def split_features(
    ctx: RunContext,
    split: SplitData,
    perturbation: dict,
    perturb: Perturb | None = None,
    desc: str = "",
) -> dict[str, torch.Tensor]:
    """Features of every stream-view on ``split`` (perturbed by ``perturb``), cached."""
    description = {
        "split": split.digest,
        "streams": _stream_description(ctx),
        "perturbation": perturbation,
    }

    def compute() -> dict[str, torch.Tensor]:
        parts = []
        for images, labels, boxes, _ in tqdm(split.loader, desc=desc or "features", leave=False):
            images = images.to(ctx.device)
            boxes = [b.to(ctx.device) for b in boxes]
            if perturb is not None:
                images = perturb(images, labels.to(ctx.device), boxes)
            parts.append(_features_of_batch(ctx, images, boxes))
        return _concat(parts)

    return ctx.cache.get_or_compute(description, compute)


def fgsm_sweep_features(
    ctx: RunContext,
    split: SplitData,
    rows: torch.Tensor,
    labels: torch.Tensor,
    source: nn.Module,
    source_name: str,
    epsilons: Sequence[torch.Tensor],
    desc: str = "",
    keys: Sequence[str] | None = None,
) -> list[dict[str, torch.Tensor]]:
    """Features of the stream-views ``keys`` (all when None) on the FGSM images of ``rows``
    at each eps.

    ``source`` (a classifier over pixel-space images; views bound per batch via
    ``with_boxes`` when it has them) crafts the attack against ``labels`` (its own label
    indices). One gradient per batch serves every eps.
    """
    description = {
        "split": split.digest,
        "rows": module_digest_of_tensor(rows),
        "streams": _stream_description(ctx, keys),
        "perturbation": {
            "kind": "fgsm",
            "source": source_name,
            "source_digest": module_digest(source),
            "epsilons": [e.flatten().tolist() for e in epsilons],
        },
    }

    def compute() -> dict[str, torch.Tensor]:
        parts: list[list[dict[str, torch.Tensor]]] = [[] for _ in epsilons]
        loader = split.rows_loader(rows)
        offset = 0
        for images, _, boxes, _ in tqdm(loader, desc=desc or "fgsm", leave=False):
            batch_labels = labels[offset: offset + len(images)].to(ctx.device)
            offset += len(images)
            images = images.to(ctx.device)
            boxes = [b.to(ctx.device) for b in boxes]
            if hasattr(source, "with_boxes"):
                source.with_boxes(boxes)
            direction = fgsm_direction(source, images, batch_labels)
            for i, eps in enumerate(epsilons):
                step = eps.to(ctx.device).view(1, -1, 1, 1) * direction
                adversarial = (images + step).clamp(0, 1)
                parts[i].append(_features_of_batch(ctx, adversarial, boxes, keys))
        merged = {}
        for i, eps_parts in enumerate(parts):
            for key, value in _concat(eps_parts).items():
                merged[f"{i}/{key}"] = value
        return merged

    cached = ctx.cache.get_or_compute(description, compute)
    return [
        {key.split("/", 1)[1]: v for key, v in cached.items() if key.startswith(f"{i}/")}
        for i in range(len(epsilons))
    ]


def module_digest_of_tensor(tensor: torch.Tensor) -> str:
    """A short content hash of a tensor (used in cache keys)."""
    import hashlib

    return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
