"""Features of a split under each perturbation, computed once and cached by content.

Every stream-view is run once per (perturbed) batch and its features are shared by every head
that reads them (fg, joint, each alpha). An FGSM sweep takes one gradient per batch for all
epsilons (``sign(grad)`` does not depend on eps), then one forward pass per eps and stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ctxfusion.experiments.context import RunContext
from ctxfusion.features import cached_extract, module_digest, tensors_digest
from ctxfusion.perturb.attacks import fgsm_sweep
from ctxfusion.perturb.blur import blur_inside_boxes

Batch = tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]
Perturb = Callable[[torch.Tensor, torch.Tensor, list[torch.Tensor]], torch.Tensor]


class RelabelledLoader:
    """Batches of a loader with their labels replaced by ``labels`` (in loader order), e.g.
    class indices within a subset. Re-iterable, so training can run several epochs."""

    def __init__(self, loader: DataLoader, labels: torch.Tensor) -> None:
        self.loader, self.labels = loader, labels

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        offset = 0
        for images, _, boxes, ids in self.loader:
            yield images, self.labels[offset: offset + len(images)], boxes, ids
            offset += len(images)


@dataclass
class SplitData:
    """One split of one dataset (possibly limited per class), ready to iterate."""

    name: str
    loader: DataLoader
    labels: torch.Tensor  # global class indices, in loader order
    ids: torch.Tensor
    digest: str  # content key: manifest hash + split + selected ids + image size

    def rows_loader(self, rows: torch.Tensor, labels: torch.Tensor) -> RelabelledLoader:
        """Batches of the given rows only (in the order of ``rows``) labelled ``labels``."""
        subset = Subset(self.loader.dataset, rows.tolist())
        loader = DataLoader(subset, batch_size=self.loader.batch_size, shuffle=False,
                            collate_fn=self.loader.collate_fn, num_workers=0)
        return RelabelledLoader(loader, labels)


def rows_digest(rows: torch.Tensor) -> str:
    """Content key of a selection of rows (used in cache descriptions)."""
    return tensors_digest({"rows": rows.detach().cpu()})


def _description(ctx: RunContext, key: str) -> list[str]:
    stream, _ = ctx.stream_views()[key]
    return [stream.name, stream.weights_sha256, key.split("@")[1]]


def split_features(
    ctx: RunContext,
    split: SplitData,
    perturbation: dict,
    perturb: Perturb | None = None,
    desc: str = "",
) -> dict[str, torch.Tensor]:
    """Features of every stream-view on ``split`` (perturbed by ``perturb``), each cached on
    its own, so adding a view or a stream recomputes only that one."""
    pairs = ctx.stream_views()
    descriptions = {
        key: {"split": split.digest, "stream": _description(ctx, key),
              "perturbation": perturbation}
        for key in pairs
    }
    features, _, _ = cached_extract(
        ctx.cache, descriptions, {key: stream for key, (stream, _) in pairs.items()},
        split.loader, views={key: view for key, (_, view) in pairs.items()},
        perturb=perturb, device=ctx.device, desc=desc or "features",
    )
    return features


def blurred_features(ctx: RunContext, split: SplitData, sigma: float) -> dict[str, torch.Tensor]:
    """Features of ``split`` with the configured blur at ``sigma`` inside the object boxes."""
    mode = ctx.config.blur.mode
    return split_features(
        ctx, split, {"kind": "blur", "sigma": sigma, "mode": mode},
        perturb=lambda images, labels, boxes: blur_inside_boxes(images, boxes, sigma, mode=mode),
        desc=f"blur sigma={sigma:g}",
    )


def fgsm_sweep_features(
    ctx: RunContext,
    split: SplitData,
    rows: torch.Tensor,
    labels: torch.Tensor,
    source: nn.Module,
    source_name: str,
    epsilons: Sequence[torch.Tensor],
    keys: Sequence[str],
    desc: str = "",
) -> list[dict[str, torch.Tensor]]:
    """Features of the stream-views ``keys`` on the FGSM images of ``rows`` at each eps.

    ``source`` (a classifier over pixel-space images; views bound per batch via
    ``with_boxes`` when it has them) crafts the attack against ``labels`` (its own label
    indices). One gradient per batch serves every eps.
    """
    pairs = {key: ctx.stream_views()[key] for key in keys}
    description = {
        "split": split.digest,
        "rows": rows_digest(rows),
        "streams": {key: _description(ctx, key) for key in keys},
        "perturbation": {
            "kind": "fgsm",
            "source": source_name,
            "source_digest": module_digest(source),
            "epsilons": [e.flatten().tolist() for e in epsilons],
        },
    }

    def compute() -> dict[str, torch.Tensor]:
        parts: dict[str, list[torch.Tensor]] = {
            f"{i}/{key}": [] for i in range(len(epsilons)) for key in keys
        }
        loader = split.rows_loader(rows, labels)
        for images, batch_labels, boxes, _ in tqdm(loader, desc=desc or "fgsm", leave=False):
            images = images.to(ctx.device)
            boxes = [b.to(ctx.device) for b in boxes]
            if hasattr(source, "with_boxes"):
                source.with_boxes(boxes)
            adversarial = fgsm_sweep(source, images, batch_labels.to(ctx.device),
                                     [e.to(ctx.device) for e in epsilons])
            with torch.no_grad():
                for i, batch in enumerate(adversarial):
                    for key, (stream, view) in pairs.items():
                        parts[f"{i}/{key}"].append(stream(view(batch, boxes)).float().cpu())
        return {name: torch.cat(chunks) for name, chunks in parts.items()}

    cached = ctx.cache.get_or_compute(description, compute)
    return [{key: cached[f"{i}/{key}"] for key in keys} for i in range(len(epsilons))]
