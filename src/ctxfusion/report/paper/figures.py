"""The paper's figures 2, 3a-d and 4a/c (4b/d and 5c/d: :mod:`.weights`; 5a/b:
:mod:`.alpha`)."""

from __future__ import annotations

import matplotlib
import numpy as np
from PIL import Image, UnidentifiedImageError

from ctxfusion.report.figure_base import (
    EPS_LABEL,
    SIGMA_LABEL,
    FigureBuilder,
    band_note,
    dataset_figure,
    plot_curves,
    plt,
    unregularised,
)
from ctxfusion.report.select import curves

BLUR_SUBSETS = {"fig3a": "all", "fig3c": "dissimilar", "fig3d": "similar"}
PCA_MAX_CLASSES = 6


@dataset_figure(order=2)
def fig2(builder: FigureBuilder, dataset: str) -> None:
    """Fig. 2: PCA of each stream's features (fg and bg in the paper), clean vs blurred."""
    rows = [r for r in builder.run.pca or [] if r.dataset == dataset]
    if not rows:
        why = "pca.csv not found" if builder.run.pca is None else f"no rows for {dataset}"
        return builder.skip("fig2", dataset, f"{why} in pca.csv (needs blur and boxes)")
    labels = list(dict.fromkeys(r.label for r in rows))[:PCA_MAX_CLASSES]
    cmap = matplotlib.colormaps["tab10"]
    streams = list(dict.fromkeys(r.stream for r in rows))
    fig, axes = plt.subplots(1, len(streams), figsize=(5 * len(streams), 4.2), squeeze=False)
    for ax, stream in zip(axes[0], streams, strict=True):
        for k, label in enumerate(labels):
            for condition, marker, alpha in (("clean", "o", 0.75), ("blur", "x", 0.75)):
                pts = np.array([(r.pc1, r.pc2) for r in rows if (r.stream, r.label,
                                r.condition) == (stream, label, condition)]).reshape(-1, 2)
                if len(pts):
                    ax.scatter(pts[:, 0], pts[:, 1], s=14, marker=marker, alpha=alpha,
                               color=cmap(k % 10), label=f"{label} ({condition})")
        ax.set_xlabel("PC1 (fitted on clean features)")
        ax.set_ylabel("PC2")
        ax.set_title(f"{stream} stream features ({dataset})", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2, loc="best")
    builder.add(fig, "fig2", dataset,
             f"Reproduces paper Fig. 2: PCA (2 components fitted per stream on clean test "
             f"features) of each stream's features ({', '.join(streams)}; fg object-centric, bg "
             f"scene-centric) for "
             f"{len(labels)} classes of {dataset}; circles clean, crosses blurred inside the "
             "object boxes, projected with the same PCA.")

@dataset_figure(order=3)
def fig3(builder: FigureBuilder, dataset: str) -> None:
    """Fig. 3a, c, d: accuracy vs blur sigma, one figure per subset."""
    for figure, subset in BLUR_SUBSETS.items():
        drawn = curves(builder.run, dataset, subset, "blur", "none",
                       unregularised)
        if not drawn:
            reason = f"no blur rows for {dataset} subset {subset!r} in results.csv"
            if subset not in builder.subsets(dataset):
                reason = f"{dataset} has no subset {subset!r} in results.csv"
            elif not builder.run.has_boxes(dataset):
                reason += " (box-free dataset: blur inside object boxes does not apply)"
            builder.skip(figure, dataset, reason)
            continue
        fig, ax = plt.subplots(figsize=(6, 4.2))
        chance = builder.run.chance(dataset, subset)
        plot_curves(ax, drawn, builder.palette, chance, SIGMA_LABEL,
                     f"{dataset}, subset {subset}: blur inside object boxes")
        builder.add(fig, figure, dataset,
                 f"Reproduces paper Fig. {figure[3:]}: test accuracy vs sigma of a Gaussian "
                 f"blur applied inside the object boxes only, {dataset} subset {subset!r}; "
                 f"fg, bg, joint, views dashed; {band_note(drawn)}"
                 + ("; dotted: chance." if chance else "; chance level unknown (no run.json)."))

@dataset_figure(order=3.5)
def fig3b(builder: FigureBuilder, dataset: str) -> None:
    """Fig. 3b: an example image blurred inside its box."""
    path = builder.run.paths.blur_example(dataset)
    if not path.is_file():
        return builder.skip("fig3b", dataset, f"{path.relative_to(builder.run.run_dir)} not found"
                         + ("" if builder.run.has_boxes(dataset) else " (box-free dataset)"))
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        return builder.skip("fig3b", dataset, f"{path} is not a readable image: {exc}")
    sigma = builder.run.info.example(dataset).blur_sigma
    sigma_text = f"sigma = {sigma:g} px" if sigma is not None else "large sigma"
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.imshow(pixels)
    ax.axis("off")
    ax.set_title(f"{dataset}: clean | blurred inside the object box ({sigma_text})",
                 fontsize=10)
    builder.add(fig, "fig3b", dataset,
             f"Reproduces paper Fig. 3b: an example test image of {dataset}, clean (left) and "
             f"with a Gaussian blur ({sigma_text}) inside its object box (right).")

@dataset_figure(order=4)
def fig4(builder: FigureBuilder, dataset: str) -> None:
    """Fig. 4a/c: accuracy vs FGSM eps crafted on fg."""
    curve_id = "fig4a" if builder.run.has_boxes(dataset) else "fig4c"
    drawn = curves(builder.run, dataset, "all", "fgsm", "transfer", unregularised)
    if not drawn:
        return builder.skip(curve_id, dataset, f"no fgsm rows crafted on fg (source 'fg') for "
                         f"{dataset} subset 'all' in results.csv")
    fig, ax = plt.subplots(figsize=(6, 4.2))
    plot_curves(ax, drawn, builder.palette, builder.run.chance(dataset, "all"), EPS_LABEL,
                 f"{dataset}, subset all: FGSM crafted on fg")
    builder.add(fig, curve_id, dataset,
             f"Reproduces paper Fig. {curve_id[3:]}: accuracy vs FGSM eps (pixel space, "
             f"L-inf) on {dataset} (all classes); the attack is crafted on the fg classifier "
             "(white-box for fg) and the same images are fed to bg and joint (transfer); "
             f"{band_note(drawn)}.")
