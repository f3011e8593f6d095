"""Paper Fig. 5a/b: the alpha-regularised joint heads against the baselines under FGSM, in two
fair threat models side by side: images crafted on fg (transfer, the paper's setting) and each
classifier attacked through its own gradient (white-box)."""

from __future__ import annotations

from ctxfusion.report.figure_base import (
    EPS_LABEL,
    FigureBuilder,
    alpha_sweep_member,
    band_note,
    dataset_figure,
    plot_curves,
    plt,
)
from ctxfusion.report.select import Point, curves
from ctxfusion.report.style import parse_classifier

ALPHA_SUBSETS = {"fig5a": "dissimilar", "fig5b": "all"}
PANELS = (("transfer", "transfer (crafted on fg)"),
          ("whitebox", "white-box (crafted on each classifier itself)"))


def _has_alpha(drawn: dict[str, list[Point]]) -> bool:
    return any(parse_classifier(name).alpha is not None for name in drawn)


def alpha_figure(builder: FigureBuilder, dataset: str, figure: str, subset: str) -> None:
    """One of fig 5a/b: a transfer panel and a white-box panel."""
    run = builder.run
    panels = {setting: curves(run, dataset, subset, "fgsm", setting, alpha_sweep_member)
              for setting, _ in PANELS}
    if not any(_has_alpha(drawn) for drawn in panels.values()):
        reason = (f"{dataset} has no subset {subset!r} in results.csv"
                  if subset not in builder.subsets(dataset) else
                  f"no fgsm rows for joint-alpha<v> classifiers on {dataset} subset {subset!r}")
        return builder.skip(figure, dataset, reason)
    chance = run.chance(dataset, subset)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    absent = []
    for ax, (setting, title) in zip(axes, PANELS, strict=True):
        drawn = panels[setting]
        plot_curves(ax, drawn, builder.palette, chance, EPS_LABEL, title)
        if not drawn:
            ax.text(0.5, 0.5, f"no {setting} FGSM rows in this run", ha="center",
                    transform=ax.transAxes, fontsize=9)
        absent += [f"{name} ({setting})" for name in ("fg-advtrain", "joint")
                   if name not in drawn]
    fig.suptitle(f"{dataset}, subset {subset}: regularised joint vs baselines", fontsize=10)
    both = {**panels["transfer"], **panels["whitebox"]}
    builder.add(fig, figure, dataset,
                f"Reproduces paper Fig. {figure[3:]}: accuracy vs FGSM eps (pixel space) for the "
                "joint head regularised with alpha * ||W_fg||^2 at each alpha (ramp: light = "
                "small alpha), fg, bg, joint and the FGSM-retrained fg (fg-advtrain), "
                f"{dataset} subset {subset!r}. Left: the images are crafted on fg and fed to "
                "every classifier (transfer; fg itself is white-box): the paper's setting. "
                "Right: every classifier is attacked through its own gradient (white-box), the "
                f"fair comparison with fg-advtrain. {band_note(both)}."
                + (f" Not in this run: {', '.join(absent)}." if absent else ""))


@dataset_figure(order=5)
def alpha_figures(builder: FigureBuilder, dataset: str) -> None:
    """Fig 5a (Dissimilar) and 5b (All)."""
    for figure, subset in ALPHA_SUBSETS.items():
        alpha_figure(builder, dataset, figure, subset)
