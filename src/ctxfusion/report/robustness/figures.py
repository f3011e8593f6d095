"""The robustness figures (beyond the paper), shown in their report sections:

- ``figR_transfer_<dataset>_<subset>``: the FGSM transfer matrix (crafted on x classified by)
  at one eps as a heatmap, the diagonal (white-box) outlined;
- ``figR_corruptions_<dataset>_<subset>``: accuracy vs corruption severity, one panel per
  corruption, one colour per classifier, one line style per region.

Both read every row of the run but the robust fusion methods' (``builder.robust``; those are
in figure F); a figure is drawn only where the run has its rows.
"""

from __future__ import annotations

import math

import numpy as np

from ctxfusion.report.figure_base import ACC_LABEL, FigureBuilder, dataset_figure, plt
from ctxfusion.report.grouping import clean_cells, in_place, ordered, places, regions_of
from ctxfusion.report.robustness.select import (
    Matrix,
    corruption_rows,
    transfer_matrix,
    transfer_places,
)
from ctxfusion.report.select import Point, aggregate, by_seed

TRANSFER, CORRUPTIONS = "figR_transfer", "figR_corruptions"
#: line style of each region in the corruption curves
REGION_STYLES = {"image": "-", "box": "--", "background": ":"}
PANELS_PER_ROW = 3


def _heatmap(matrix: Matrix, title: str) -> plt.Figure:
    values = np.full((len(matrix.sources), len(matrix.classifiers)), np.nan)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(matrix.classifiers) + 2.5),
                                    max(3.5, 0.75 * len(matrix.sources) + 2.0)))
    for i, source in enumerate(matrix.sources):
        for j, name in enumerate(matrix.classifiers):
            seeds = matrix.cells.get((source, name))
            if not seeds:
                continue
            p = aggregate(seeds)
            values[i, j] = p.accuracy
            colour = "white" if p.accuracy < 0.5 else "black"
            ax.text(j, i, f"{100 * p.accuracy:.1f}\n[{100 * p.ci_low:.0f}, "
                    f"{100 * p.ci_high:.0f}]", ha="center", va="center", fontsize=7,
                    color=colour)
            if source == name:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                           edgecolor="#d62728", linewidth=2.2))
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, label=ACC_LABEL)
    ax.set_xticks(range(len(matrix.classifiers)), matrix.classifiers, rotation=30, ha="right",
                  fontsize=8)
    ax.set_yticks(range(len(matrix.sources)), matrix.sources, fontsize=8)
    ax.set_xlabel("classified by")
    ax.set_ylabel("crafted on")
    ax.set_title(title, fontsize=10)
    return fig


@dataset_figure(order=9)
def transfer_figures(builder: FigureBuilder, dataset: str) -> None:
    """figR_transfer: one heatmap per subset with FGSM transfer rows."""
    for place_dataset, subset in transfer_places(builder.robust):
        if place_dataset != dataset:
            continue
        stem = f"{TRANSFER}_{dataset}_{subset}"
        matrix = transfer_matrix(builder.robust, dataset, subset)
        if matrix is None:
            builder.skip(TRANSFER, dataset, f"FGSM crafted on one model only for {dataset} "
                         f"subset {subset!r}: no transfer matrix", stem)
            continue
        fig = _heatmap(matrix, f"{dataset}, subset {subset}: FGSM eps = {matrix.eps:g}")
        builder.add(fig, TRANSFER, dataset,
                    f"Transfer matrix on {dataset} subset {subset!r} at FGSM eps = "
                    f"{matrix.eps:g} (pixel space, L-inf; the middle non-zero eps): rows = "
                    "crafted on, columns = classified by, cells = accuracy % [95 % interval] "
                    "(mean over seeds); the outlined diagonal is white-box (each classifier "
                    "attacked through its own gradient).", stem)


def _severity_points(rows: list, clean: dict, name: str, region: str) -> list[Point]:
    """One classifier's accuracy vs severity in one region, clean as severity 0."""
    grouped: dict[float, list] = {}
    for r in rows:
        if (r.classifier, r.region) == (name, region):
            grouped.setdefault(r.level, []).append(r)
    pts = [aggregate(by_seed(grouped[lv])) for lv in sorted(grouped)]
    if pts and 0.0 not in grouped and clean.get(name):
        pts.insert(0, aggregate(clean[name]))
    return pts


def _corruption_panel(builder: FigureBuilder, ax: plt.Axes, rows: list, clean: dict,
                      corruption: str) -> None:
    mine = [r for r in rows if r.perturbation == corruption]
    for name in ordered({r.classifier for r in mine}):
        style = builder.palette.style(name)
        for region in regions_of(mine):
            pts = _severity_points(mine, clean, name, region)
            if not pts:
                continue
            xs = [p.level for p in pts]  # the clean row's level is 0
            ax.plot(xs, [p.accuracy for p in pts], color=style.color, marker=style.marker,
                    linestyle=REGION_STYLES.get(region, "-."), markersize=4, linewidth=1.4,
                    label=f"{name} ({region})")
            ax.fill_between(xs, [p.ci_low for p in pts], [p.ci_high for p in pts],
                            color=style.color, alpha=0.08, linewidth=0)
    ax.set_title(corruption, fontsize=10)
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel(ACC_LABEL)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="best")


@dataset_figure(order=10)
def corruption_figures(builder: FigureBuilder, dataset: str) -> None:
    """figR_corruptions: one figure per subset with corruption rows."""
    every = corruption_rows(builder.robust)
    for place_dataset, subset in places(every):
        if place_dataset != dataset:
            continue
        rows = in_place(every, dataset, subset)
        clean = clean_cells(builder.robust, dataset, subset)
        corruptions = sorted({r.perturbation for r in rows})
        cols = min(PANELS_PER_ROW, len(corruptions))
        lines = math.ceil(len(corruptions) / cols)
        fig, axes = plt.subplots(lines, cols, figsize=(4.6 * cols, 3.8 * lines), squeeze=False,
                                 sharey=True)
        for ax, corruption in zip(axes.flat, corruptions, strict=False):
            _corruption_panel(builder, ax, rows, clean, corruption)
        for ax in list(axes.flat)[len(corruptions):]:
            ax.set_visible(False)
        fig.suptitle(f"{dataset}, subset {subset}: common corruptions", fontsize=10)
        regions = ", ".join(f"{region} {REGION_STYLES[region]}" for region in regions_of(rows))
        builder.add(fig, CORRUPTIONS, dataset,
                    f"Accuracy vs corruption severity (1-5; 0 = clean) on {dataset} subset "
                    f"{subset!r}, one panel per corruption, one colour per classifier; line "
                    f"style = where the corruption acts ({regions}); shaded: 95 % interval "
                    "(mean over seeds).", f"{CORRUPTIONS}_{dataset}_{subset}")
