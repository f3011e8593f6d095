"""Fig. 2 (PCA of every stream's features, clean vs blurred) and Fig. 3b (an example blur)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from ctxfusion.data.manifest import Manifest
from ctxfusion.experiments.context import RunContext
from ctxfusion.experiments.sweeps import SplitData, blurred_features
from ctxfusion.io import atomic_write_bytes
from ctxfusion.perturb.blur import blur_inside_boxes
from ctxfusion.schema import PcaRow, RunPaths


def pca_rows(ctx: RunContext, dataset: str, manifest: Manifest, test: SplitData,
             clean: dict[str, torch.Tensor]) -> None:
    """PCA to 2-D per stream, fitted on clean features of a few classes; blurred projected."""
    cfg = ctx.config.pca
    blurred = blurred_features(ctx, test, cfg.sigma)
    classes = list(range(min(cfg.num_classes, len(manifest.classes))))
    rng = np.random.default_rng(ctx.config.seed)
    rows = []
    for label in classes:
        members = np.flatnonzero(test.labels.numpy() == label)
        if len(members) > cfg.max_points_per_class:
            members = np.sort(rng.choice(members, cfg.max_points_per_class, replace=False))
        rows.append(members)
    rows = np.concatenate(rows)
    for role, stream_config in ctx.config.streams.items():
        key = f"{role}@{stream_config.views[0]}"
        pca = _pca(ctx.config.seed)
        clean_2d = pca.fit_transform(clean[key][rows].numpy())
        blur_2d = pca.transform(blurred[key][rows].numpy())
        for condition, points in (("clean", clean_2d), ("blur", blur_2d)):
            for row, (pc1, pc2) in zip(rows, points, strict=True):
                ctx.recorder.pca.append(PcaRow(
                    dataset=dataset, stream=role, condition=condition,
                    label=manifest.classes[int(test.labels[row])],
                    pc1=float(pc1), pc2=float(pc2),
                ))
    ctx.recorder.info.setdefault("pca", {})[dataset] = {"sigma": cfg.sigma,
                                                        "classes": len(classes)}


def _first_boxed_image(test: SplitData) -> tuple[torch.Tensor, torch.Tensor] | None:
    for images, _, boxes, _ in test.loader:
        for image, image_boxes in zip(images, boxes, strict=True):
            if len(image_boxes):
                return image, image_boxes
    return None


def blur_example(ctx: RunContext, dataset: str, test: SplitData) -> None:
    """``examples/blur_example_<dataset>.png``: clean | blurred at ``blur.example_sigma``."""
    sigma, mode = ctx.config.blur.example_sigma, ctx.config.blur.mode
    found = _first_boxed_image(test)
    if found is None:
        return
    image, boxes = found
    blurred = blur_inside_boxes(image[None], [boxes], sigma, mode=mode)[0]
    pair = torch.cat([image, torch.ones(3, image.shape[1], 4), blurred], dim=2)
    picture = Image.fromarray((pair.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    scale = max(1, 256 // image.shape[1])  # small images are enlarged, pixels kept sharp
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write_bytes(RunPaths(ctx.out).blur_example(dataset), buffer.getvalue())
    ctx.recorder.info.setdefault("examples", {})[dataset] = {"blur_sigma": sigma, "mode": mode}


def _pca(seed: int):
    """scikit-learn's 2-component PCA, imported on first use (sklearn takes 1.6 s to import,
    a run without the pca step never needs it)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed)
