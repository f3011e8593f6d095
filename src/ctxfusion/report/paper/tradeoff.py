"""Figure T (beyond the paper): the clean-accuracy / robustness trade-off of the alpha sweep.

x = clean accuracy, y = accuracy under FGSM at the sweep's eps closest to 0.02 (pixel space),
one point per alpha (connected in alpha order, labelled in both conventions: the paper's
summed-CE alpha, then the mean-CE alpha), plus fg, bg, joint and fg-advtrain. Error bars: the
95 % intervals (means over seeds of the per-seed Wilson bounds). Two panels: images crafted on
fg (transfer) and each classifier attacked through its own gradient (white-box).
"""

from __future__ import annotations

from ctxfusion.report.figure_base import (
    ACC_LABEL,
    FigureBuilder,
    chance_line,
    dataset_figure,
    interval_note,
    plt,
)
from ctxfusion.report.select import Point, alpha_pair, clean_point, point, reference_eps
from ctxfusion.report.style import classifier_sort_key, parse_classifier

SUBSETS = ("all", "dissimilar")
PANELS = (("transfer", "transfer (crafted on fg)"),
          ("whitebox", "white-box (crafted on each classifier itself)"))


def _members(builder: FigureBuilder, dataset: str, subset: str) -> list[str]:
    names = {r.classifier for r in builder.run.results if (r.dataset, r.subset)
             == (dataset, subset)}
    keep = [n for n in names if parse_classifier(n).view is None]
    return sorted(keep, key=classifier_sort_key)


def _pairs(builder: FigureBuilder, dataset: str, subset: str, setting: str,
           eps: float) -> dict[str, tuple[Point, Point]]:
    """classifier -> (clean point, attacked point) where both exist."""
    run, out = builder.run, {}
    for name in _members(builder, dataset, subset):
        clean = clean_point(run, dataset, subset, name)
        attacked = point(run, dataset, subset, name, "fgsm", eps, setting)
        if clean and attacked:
            out[name] = (clean, attacked)
    return out


def _draw_panel(builder: FigureBuilder, ax: plt.Axes, dataset: str, subset: str,
                pairs: dict[str, tuple[Point, Point]], title: str) -> None:
    alphas = [n for n in pairs if parse_classifier(n).alpha is not None]
    if alphas:
        ax.plot([pairs[n][0].accuracy for n in alphas], [pairs[n][1].accuracy for n in alphas],
                color="#b8860b", linewidth=1, zorder=1, label="alpha sweep (joint-alpha)")
    for k, (name, (clean, attacked)) in enumerate(pairs.items()):
        style = builder.palette.style(name)
        ax.errorbar(clean.accuracy, attacked.accuracy, fmt=style.marker, color=style.color,
                    markersize=6, capsize=2, zorder=2,
                    xerr=clean.error_bar(), yerr=attacked.error_bar(),
                    label=name if parse_classifier(name).alpha is None else None)
        pair = alpha_pair(builder.run, dataset, subset, name)
        if pair is not None:
            ax.annotate(pair.label(), (clean.accuracy, attacked.accuracy), fontsize=6,
                        xytext=(4, 3 if k % 2 else -9), textcoords="offset points")
    chance_line(ax, builder.run.chance(dataset, subset))
    if not pairs:
        ax.text(0.5, 0.5, "no rows for this threat model", ha="center", transform=ax.transAxes)
    ax.set_xlabel(f"clean {ACC_LABEL}")
    ax.set_ylabel(f"{ACC_LABEL} under FGSM")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def tradeoff_figure(builder: FigureBuilder, dataset: str, subset: str) -> None:
    """figT_tradeoff_<dataset>_<subset>: both panels for one subset."""
    stem = f"figT_tradeoff_{dataset}_{subset}"
    eps = reference_eps(builder.run, dataset, subset)
    if eps is None:
        return builder.skip("figT", dataset, f"no fgsm rows with eps > 0 crafted on fg for "
                            f"{dataset} subset {subset!r}", stem)
    panels = {s: _pairs(builder, dataset, subset, s, eps) for s, _ in PANELS}
    if not any(parse_classifier(n).alpha is not None for n in panels["transfer"]):
        return builder.skip("figT", dataset, f"no joint-alpha<v> classifier with clean and "
                            f"fgsm rows for {dataset} subset {subset!r}", stem)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True, sharey=True)
    for ax, (setting, title) in zip(axes, PANELS, strict=True):
        _draw_panel(builder, ax, dataset, subset, panels[setting], title)
    fig.suptitle(f"{dataset}, subset {subset}: clean accuracy vs accuracy under FGSM at "
                 f"eps = {eps:g} (pixel space)", fontsize=10)
    seeds = max(p.seeds for pair in panels["transfer"].values() for p in pair)
    builder.add(fig, "figT", dataset,
                f"Beyond the paper: the trade-off of the alpha sweep on {dataset} subset "
                f"{subset!r}. x: clean accuracy (else at FGSM eps 0); y: accuracy under FGSM "
                f"at eps = {eps:g} in pixel space (the sweep's eps closest to 0.02). Each "
                "joint-alpha point is labelled with its alpha in the paper's convention (CE "
                "summed over the N training images) and, in parentheses, the mean-CE "
                "convention (alpha / N; '~': estimated from run.json's n_train); points are "
                "connected in alpha order. "
                "Left: images crafted on fg (transfer); right: each classifier attacked through "
                "its own gradient (white-box). " + interval_note(seeds),
                stem)


@dataset_figure(order=6)
def tradeoff_figures(builder: FigureBuilder, dataset: str) -> None:
    """Figure T for the subsets all and dissimilar (where the run has them)."""
    for subset in SUBSETS:
        if subset in builder.subsets(dataset):
            tradeoff_figure(builder, dataset, subset)
