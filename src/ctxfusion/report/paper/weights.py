"""Paper Fig. 4b/d and 5c/d: how much each stream contributes to the joint head.

Each figure has two panels: the paper's mean |w| of each stream's part of W, and the scale-aware
``logit_share`` (each stream's share of the variance of the logits on test features). Mean
|w| ignores the scale of the features (a stream with larger features needs smaller weights for
the same effect), so the claims decide with ``logit_share``. With several seeds the bars and
points are means over seeds and the error bars span min-max over seeds.
"""

from __future__ import annotations

import numpy as np

from ctxfusion.report.figure_base import (
    FigureBuilder,
    dataset_figure,
    plt,
)
from ctxfusion.report.rundir import WeightRow
from ctxfusion.report.style import classifier_sort_key, parse_classifier, stream_colour

MEASURES = (("mean_abs_weight", "mean |w| (paper)"),
            ("logit_share", "logit_share (scale-aware, decides the claims)"))
VERDICT_NOTE = ("Left: the paper's mean |w|; right: the scale-aware share of the logit variance "
                "(logit_share), which the claims use for their verdict because mean |w| "
                "depends on the scale of each stream's features.")


def _values(rows: list[WeightRow], head: str, stream: str, measure: str) -> list[float]:
    """The measure of one head and stream over seeds (missing values left out)."""
    found = [getattr(w, measure) for w in rows if (w.classifier, w.stream) == (head, stream)]
    return [float(v) for v in found if v is not None]


def _mean_spread(values: list[float]) -> tuple[float, float, float]:
    """(mean, mean - min, max - mean); NaN when empty."""
    if not values:
        return np.nan, 0.0, 0.0
    mean = float(np.mean(values))
    return mean, mean - min(values), max(values) - mean


def _missing_text(ax: plt.Axes, measure: str) -> None:
    ax.text(0.5, 0.5, f"{measure} not recorded\n(older weights.csv)", ha="center",
            va="center", transform=ax.transAxes, fontsize=9)


@dataset_figure(order=4.5)
def weight_figure(builder: FigureBuilder, dataset: str) -> None:
    """Fig 4b (boxed datasets) or 4d (box-free): both measures for the unregularised fused
    heads (joint, and any other classifier of two or more streams), one bar per stream."""
    figure = "fig4b" if builder.run.has_boxes(dataset) else "fig4d"
    rows = [w for w in builder.run.weights or [] if (w.dataset, w.subset) == (dataset, "all")
            and parse_classifier(w.classifier).alpha is None]
    if not rows:
        why = "weights.csv not found" if builder.run.weights is None else (
            f"weights.csv has no unregularised fused head for {dataset} subset 'all'")
        return builder.skip(figure, dataset, why)
    heads = sorted({w.classifier for w in rows}, key=classifier_sort_key)
    streams = list(dict.fromkeys(w.stream for w in rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(9.0, 3 + 3.2 * len(heads)), 4.2))
    x, width = np.arange(len(heads)), 0.76 / len(streams)
    for ax, (measure, label) in zip(axes, MEASURES, strict=True):
        if not any(_values(rows, h, s, measure) for h in heads for s in streams):
            _missing_text(ax, measure)
        for k, stream in enumerate(streams):
            offset = (k - (len(streams) - 1) / 2) * width
            stats = [_mean_spread(_values(rows, head, stream, measure)) for head in heads]
            ax.bar(x + offset, [s[0] for s in stats], width=width, color=stream_colour(stream),
                   yerr=[[s[1] for s in stats], [s[2] for s in stats]], capsize=3,
                   label=f"{stream} part of W (weights on the {stream} features)")
        ax.set_xticks(x, heads)
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{dataset}: fused head contributions by stream (all classes)", fontsize=10)
    builder.add(fig, figure, dataset,
                f"Reproduces paper Fig. {figure[3:]}: contribution of each stream's part "
                f"({', '.join(streams)}) of the fused linear heads ({', '.join(heads)}) on "
                f"{dataset} (all classes). {VERDICT_NOTE}")


def _alpha_axis_label(builder: FigureBuilder, swept: list[WeightRow]) -> str:
    reduction = swept[0].alpha_reduction if swept else builder.run.alpha_reduction
    how = "averaged" if reduction == "mean" else "summed (the paper's convention)"
    return f"alpha, {reduction} convention (CE {how} over the training images), log scale"


def _paper_axis(ax: plt.Axes, swept: list[WeightRow]) -> None:
    """A top axis in the paper's (sum) convention when the factor is the same for every row."""
    ratios = {round(w.alpha_sum / w.alpha, 6) for w in swept
              if w.alpha_sum is not None and w.alpha > 0}
    if len(ratios) == 1 and (ratio := ratios.pop()) > 0 and ratio != 1:
        top = ax.secondary_xaxis("top", functions=(lambda a: a * ratio, lambda a: a / ratio))
        top.set_xlabel("alpha in the paper's convention (CE summed: alpha_sum)", fontsize=8)


def alpha_weight_figure(builder: FigureBuilder, dataset: str, subset: str, figure: str) -> None:
    """One of fig 5c/d: both measures of each stream vs alpha."""
    swept = [w for w in builder.run.weights or [] if (w.dataset, w.subset) == (dataset, subset)
             and parse_classifier(w.classifier).alpha is not None]
    bases = {parse_classifier(w.classifier).base for w in swept}
    rows = swept + [w for w in builder.run.weights or [] if (w.dataset, w.subset)
                    == (dataset, subset) and w.classifier in bases]
    if not swept:
        why = "weights.csv not found" if builder.run.weights is None else (
            f"weights.csv has no joint-alpha<v> rows for {dataset} subset {subset!r}")
        return builder.skip(figure, dataset, why)
    alphas = sorted({w.alpha for w in swept})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, (measure, label) in zip(axes, MEASURES, strict=True):
        if not any(getattr(w, measure) is not None for w in swept):
            _missing_text(ax, measure)
        for stream in dict.fromkeys(w.stream for w in swept):
            stats = [_mean_spread([float(getattr(w, measure)) for w in swept if w.alpha == a
                                   and w.stream == stream and getattr(w, measure) is not None])
                     for a in alphas]
            ax.errorbar(alphas, [s[0] for s in stats], yerr=[[s[1] for s in stats],
                                                             [s[2] for s in stats]],
                        marker="o", capsize=2, color=stream_colour(stream),
                        label=f"{stream} part")
            plain = [float(getattr(w, measure)) for w in rows if w.classifier in bases
                     and w.stream == stream and getattr(w, measure) is not None]
            if plain:
                ax.axhline(float(np.mean(plain)), color=stream_colour(stream), linestyle=":",
                           label=f"{stream} part, unregularised {'/'.join(sorted(bases))}")
        ax.set_xscale("log")
        ax.set_xlabel(_alpha_axis_label(builder, swept), fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        _paper_axis(ax, swept)
    fig.suptitle(f"{dataset}, subset {subset}: head contributions vs alpha", fontsize=10,
                 y=1.06)  # above the top axis (paper's convention)
    builder.add(fig, figure, dataset,
                f"Reproduces paper Fig. {figure[3:]}: contribution of the fg and bg halves of the "
                f"regularised joint head as a function of alpha, {dataset} subset {subset!r}; "
                f"x axis: alpha in the run's convention ({_alpha_axis_label(builder, swept)}); "
                f"the paper sums the CE (alpha_sum = N x alpha_mean). {VERDICT_NOTE}")


@dataset_figure(order=5.5)
def alpha_weight_figures(builder: FigureBuilder, dataset: str) -> None:
    """Fig 5c (Dissimilar) and 5d (All)."""
    for figure, subset in (("fig5c", "dissimilar"), ("fig5d", "all")):
        alpha_weight_figure(builder, dataset, subset, figure)
