"""Features of a split under each perturbation, computed once and cached by content.

Every stream-view is run once per (perturbed) batch and its features are shared by every head
that reads them (fg, joint, each alpha). An FGSM sweep takes one gradient per batch for all
epsilons (``sign(grad)`` does not depend on eps), then one forward pass per eps and stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ctxfusion.distributed import must_load, sharded_get_or_compute
from ctxfusion.experiments.context import RunContext
from ctxfusion.features import FEATURES, cached_extract, module_digest, tensors_digest
from ctxfusion.perturb.attacks import FGSM, fgsm_sweep
from ctxfusion.perturb.blur import BLUR, blur_inside_boxes
from ctxfusion.perturb.regions import REGION_MASKS, region_mask
from ctxfusion.perturb.views import STREAM_VIEWS
from ctxfusion.versioning import Computation, versioned

Perturb = Callable[[torch.Tensor, torch.Tensor, list[torch.Tensor]], torch.Tensor]


class RelabelledRows(Dataset):
    """The given rows of a dataset, each with its label replaced (e.g. by its class index
    within a subset). Labels travel with their rows, so a shuffled loader stays correct."""

    def __init__(self, dataset: Dataset, rows: torch.Tensor, labels: torch.Tensor) -> None:
        if len(rows) != len(labels):
            raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
        self.dataset, self.rows, self.labels = dataset, rows.tolist(), labels.tolist()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple:
        image, _, boxes, image_id = self.dataset[self.rows[index]]
        return image, self.labels[index], boxes, image_id


@dataclass
class SplitData:
    """One split of one dataset (possibly limited per class), ready to iterate."""

    name: str
    loader: DataLoader  # in manifest order (sorted by class): for feature extraction
    labels: torch.Tensor  # global class indices, in loader order
    ids: torch.Tensor
    digest: str  # content key: manifest hash + split + selected ids + image size

    def rows_loader(self, rows: torch.Tensor, labels: torch.Tensor,
                    shuffle_seed: int | None = None,
                    batch_size: int | None = None) -> DataLoader:
        """Batches of the given rows labelled ``labels``: in the order of ``rows``, or, with
        ``shuffle_seed``, reshuffled every epoch by a seeded generator. Training must shuffle:
        manifests are sorted by class, so unshuffled batches hold one or two classes.
        ``batch_size``: None for the split's own."""
        generator = None
        if shuffle_seed is not None:
            generator = torch.Generator().manual_seed(shuffle_seed)
        return DataLoader(RelabelledRows(self.loader.dataset, rows, labels),
                          batch_size=batch_size or self.loader.batch_size,
                          shuffle=shuffle_seed is not None,
                          generator=generator, collate_fn=self.loader.collate_fn,
                          num_workers=self.loader.num_workers, pin_memory=self.loader.pin_memory)

    def training_loader(self, seed: int) -> DataLoader:
        """Every image of the split with its own label, shuffled (seeded) for training."""
        return self.rows_loader(torch.arange(len(self.labels)), self.labels, shuffle_seed=seed)


def rows_digest(rows: torch.Tensor) -> str:
    """Content key of a selection of rows (used in cache descriptions)."""
    return tensors_digest({"rows": rows.detach().cpu()})


def _description(ctx: RunContext, key: str, stream: nn.Module) -> dict:
    """What decides the features of stream-view ``key``: the stream, the view, the number
    format and memory layout of the forward pass (each gives its own float rounding)."""
    return {"stream": ctx.identity(stream), "view": key.split("@")[1],
            **ctx.execution.describe()}


def split_features(
    ctx: RunContext,
    split: SplitData,
    perturbation: dict,
    perturb: Perturb | None = None,
    desc: str = "",
    computations: Sequence[Computation] = (),
) -> dict[str, torch.Tensor]:
    """Features of every stream-view on ``split`` (perturbed by ``perturb``), each cached on
    its own, so adding a view or a stream recomputes only that one. ``computations``: the
    versioned computations of ``perturb`` (feature extraction and views are always named)."""
    pairs = ctx.stream_views()
    descriptions = {
        key: versioned({"split": split.digest, "stream": _description(ctx, key, stream),
                        "perturbation": perturbation}, FEATURES, STREAM_VIEWS, *computations)
        for key, (stream, _) in pairs.items()
    }
    features, _, _ = cached_extract(
        ctx.cache, descriptions, {key: stream for key, (stream, _) in pairs.items()},
        split.loader, views={key: view for key, (_, view) in pairs.items()},
        perturb=perturb, desc=desc or "features", group=ctx.group, execution=ctx.execution,
    )
    return features


def blurred_features(ctx: RunContext, split: SplitData, sigma: float) -> dict[str, torch.Tensor]:
    """Features of ``split`` with the configured blur at ``sigma`` inside the object boxes."""
    mode = ctx.config.blur.mode
    return split_features(
        ctx, split, {"kind": "blur", "sigma": sigma, "mode": mode},
        perturb=lambda images, labels, boxes: blur_inside_boxes(images, boxes, sigma, mode=mode),
        desc=f"blur sigma={sigma:g}", computations=(BLUR,),
    )


def fgsm_sweep_features(
    ctx: RunContext,
    split: SplitData,
    rows: torch.Tensor,
    labels: torch.Tensor,
    source: nn.Module,
    source_name: str,
    epsilons: Sequence[torch.Tensor],
    pairs: Mapping[str, tuple[nn.Module, Callable]],
    desc: str = "",
    region: str = "image",
) -> list[dict[str, torch.Tensor]]:
    """Features of the stream-views ``pairs`` (key -> (stream, view)) on the FGSM images of
    ``rows`` at each eps.

    ``source`` (a classifier over pixel-space images; views bound per batch via
    ``with_boxes`` when it has them) crafts the attack against ``labels`` (its own label
    indices). One gradient per batch serves every eps. ``region``: where the attack may change
    pixels (:func:`ctxfusion.perturb.regions.region_mask`).
    """
    perturbation = {
        "kind": "fgsm",
        "source": source_name,
        "source_digest": module_digest(source),
        "epsilons": [e.flatten().tolist() for e in epsilons],
    }
    if region != "image":  # image-region caches keep the key they had before regions existed
        perturbation["region"] = region
    has_views = hasattr(source, "with_boxes")

    def craft(images: torch.Tensor, batch_labels: torch.Tensor, boxes: list[torch.Tensor],
              _position: int) -> list[torch.Tensor]:
        if has_views:
            source.with_boxes(boxes)
        mask = None if region == "image" else region_mask(region, boxes, *images.shape[-2:],
                                                          device=images.device)
        return fgsm_sweep(source, images, batch_labels, [e.to(ctx.device) for e in epsilons],
                          max_batch=ctx.config.gradient_batch_size,
                          boxes=boxes if has_views else None, mask=mask)

    computations = (FGSM,) if region == "image" else (FGSM, REGION_MASKS)
    return perturbed_row_features(ctx, split, rows, labels, perturbation, craft, pairs,
                                  desc=desc or "fgsm", computations=computations)


#: ``craft(images, labels, boxes, position) -> [perturbed images, ...]`` for one batch (at
#: ``position`` in its loader), on the run's device
Craft = Callable[[torch.Tensor, torch.Tensor, list[torch.Tensor], int], list[torch.Tensor]]


def perturbed_row_features(
    ctx: RunContext,
    split: SplitData,
    rows: torch.Tensor,
    labels: torch.Tensor,
    perturbation: dict,
    craft: Craft,
    pairs: Mapping[str, tuple[nn.Module, Callable]],
    desc: str = "",
    computations: Sequence[Computation] = (),
) -> list[dict[str, torch.Tensor]]:
    """Features of the stream-views ``pairs`` on each of the perturbed versions that
    ``craft`` makes of every batch of ``rows`` (an FGSM sweep: one per eps; a corruption: one
    per severity). Cached under ``perturbation`` (what decides the perturbed images), the
    versions of ``computations`` (what ``craft`` runs), the split, the rows and the streams;
    sharded by whole batches across the ranks of a run."""
    if not computations:
        raise ValueError("perturbed_row_features needs the versioned computations of craft")
    keys = sorted(pairs)
    description = versioned({
        "split": split.digest,
        "rows": rows_digest(rows),
        "streams": {key: _description(ctx, key, stream) for key, (stream, _) in pairs.items()},
        "perturbation": perturbation,
    }, FEATURES, STREAM_VIEWS, *computations)

    def compute(loader: DataLoader, positions: list[int] | None) -> dict[str, dict]:
        parts: dict[str, list[torch.Tensor]] = {}
        for index, (images, batch_labels, boxes, _) in enumerate(
                tqdm(loader, desc=desc or "perturbed", leave=False)):
            position = positions[index] if positions is not None else index
            images = images.to(ctx.device)
            boxes = [b.to(ctx.device) for b in boxes]
            versions = craft(images, batch_labels.to(ctx.device), boxes, position)
            with ctx.execution.forward():
                for i, batch in enumerate(versions):
                    for key, (stream, view) in pairs.items():
                        seen = ctx.execution.layout(view(batch, boxes))
                        parts.setdefault(f"{i}/{key}", []).append(stream(seen).float().cpu())
        return {"sweep": {name: torch.cat(chunks) for name, chunks in parts.items()}}

    cached = ctx.cache.load(description)
    if ctx.group.broadcast(cached is None):
        ctx.cache.misses += 1
        cached = sharded_get_or_compute(ctx.cache, {"sweep": description},
                                        split.rows_loader(rows, labels), compute,
                                        ctx.group)["sweep"]
    else:
        ctx.cache.hits += 1
        cached = cached if cached is not None else must_load(ctx.cache, description)
    count = len({name.split("/")[0] for name in cached})
    return [{key: cached[f"{i}/{key}"] for key in keys} for i in range(count)]
