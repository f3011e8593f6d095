"""Figure F (beyond the paper): robust fusion methods on the clean / robust trade-off.

``figF_fusion_<dataset>_<subset>``: x = clean accuracy; left y = accuracy under blur in the
boxes at sigma*, right y = accuracy under FGSM crafted on fg at eps* (:mod:`.select`
chooses both). One point per classifier: fg, bg, joint, the alpha sweep (connected in alpha
order), each robust fusion method; the held-out family as hollow markers of the same colours.
Error bars: 95 % intervals in both axes; the upper-right (Pareto) frontier as a step line.
Drawn only where the run has robust fusion or held-out rows.
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
from ctxfusion.report.fusion.select import FusionTable, fusion_places, fusion_table
from ctxfusion.report.select import Point
from ctxfusion.report.style import parse_classifier
from ctxfusion.roles import fusion_parts, heldout_base

FUSION = "figF_fusion"
#: colour and marker of each robust fusion method (hues the paper's classifiers do not use)
METHOD_STYLES = {"dropout": ("#ff7f0e", "s"), "blurtrain": ("#17becf", "^"),
                 "fgsmtrain": ("#e377c2", "v"), "poe": ("#8c564b", "P"),
                 "confidence": ("#bcbd22", "X"), "gate": ("#d62728", "D")}
PANELS = (("blur", "blur in the boxes", "sigma"), ("transfer", "FGSM crafted on fg", "eps"))
FRONTIER_STYLE = {"color": "#444444", "linestyle": "--", "linewidth": 1.0}


def style(builder: FigureBuilder, name: str) -> tuple[str, str, str]:
    """(colour, marker, short label) of a classifier; held-out: its base's colour/marker."""
    stem = heldout_base(name) or name
    parts = fusion_parts(stem)
    if parts is not None:
        colour, marker = METHOD_STYLES[parts[1]]
        return colour, marker, parts[1]
    alpha = parse_classifier(stem).alpha
    short = f"alpha {alpha:g}" if alpha is not None else stem
    return builder.palette.colour(stem), "o", short


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper-right (Pareto) frontier: points no other beats in both x and y, by x."""
    best = [p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p
                                         for q in points)]
    return sorted(set(best))


def staircase(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The frontier as a step line: from the left of the cloud along the best y, down at
    each frontier point, to the bottom of the cloud (empty without points)."""
    edge = frontier(points)
    if not edge:
        return []
    left, bottom = min(p[0] for p in points), min(p[1] for p in points)
    line = [(left, edge[0][1])]
    for (x, y), (_, below) in zip(edge, [*edge[1:], (0.0, bottom)], strict=True):
        line += [(x, y), (x, below)]
    return line


def _xy(table: FusionTable, key: str) -> dict[str, tuple[Point, Point]]:
    """classifier -> (clean point, point in column ``key``) where both exist."""
    out = {}
    for row in table.rows:
        clean, robust = row.cells.get("clean"), row.cells.get(key)
        if clean is not None and robust is not None:
            out[row.classifier] = (clean, robust)
    return out


def _errorbar(ax: plt.Axes, x: Point, y: Point, colour: str, marker: str, hollow: bool,
              label: str | None) -> None:
    ax.errorbar(x.accuracy, y.accuracy, fmt=marker, color=colour, markersize=7, capsize=2,
                elinewidth=0.9, zorder=3, markerfacecolor="none" if hollow else colour,
                xerr=x.error_bar(), yerr=y.error_bar(), label=label)


def level_text(table: FusionTable, key: str) -> str:
    """The level of column ``key`` (``?`` when the run has none)."""
    level = next(c.level for c in table.columns if c.key == key)
    return "?" if level is None else f"{level:g}"


def _panel(builder: FigureBuilder, ax: plt.Axes, table: FusionTable,
           panel: tuple[str, str, str]) -> None:
    key, title, symbol = panel
    pairs = _xy(table, key)
    for heldout in (False, True):
        alphas = [n for n in pairs if (heldout_base(n) is not None) == heldout
                  and parse_classifier(heldout_base(n) or n).alpha is not None]
        if alphas:
            ax.plot([pairs[n][0].accuracy for n in alphas],
                    [pairs[n][1].accuracy for n in alphas], color="#b8860b", linewidth=1,
                    linestyle=":" if heldout else "-", zorder=1,
                    label="alpha sweep (held-out)" if heldout else "alpha sweep")
    for name, (x, y) in pairs.items():
        colour, marker, short = style(builder, name)
        hollow = heldout_base(name) is not None
        alpha = parse_classifier(heldout_base(name) or name).alpha is not None
        _errorbar(ax, x, y, colour, marker, hollow, None if alpha else name)
        if alpha:  # the others are named in the legend
            ax.annotate(short, (x.accuracy, y.accuracy), fontsize=7, xytext=(4, 4),
                        textcoords="offset points", color=colour)
    edge = staircase([(x.accuracy, y.accuracy) for x, y in pairs.values()])
    if edge:
        ax.plot([p[0] for p in edge], [p[1] for p in edge], zorder=2,
                label="Pareto frontier", **FRONTIER_STYLE)
    chance_line(ax, builder.run.chance(table.dataset, table.subset))
    if not pairs:
        ax.text(0.5, 0.5, "no rows at this level", ha="center", transform=ax.transAxes)
    ax.set_xlabel(f"clean {ACC_LABEL}")
    ax.set_ylabel(f"{ACC_LABEL} under {title}")
    ax.set_title(f"{title}, {symbol} = {level_text(table, key)}", fontsize=10)
    ax.grid(alpha=0.3)


def fusion_figure(builder: FigureBuilder, dataset: str, subset: str) -> None:
    """figF_fusion_<dataset>_<subset>: the two panels for one subset."""
    stem = f"{FUSION}_{dataset}_{subset}"
    table = fusion_table(builder.full, dataset, subset)
    if not any(_xy(table, panel[0]) for panel in PANELS):
        return builder.skip(FUSION, dataset, f"no clean and blur or FGSM rows of robust fusion "
                            f"classifiers for {dataset} subset {subset!r}", stem)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharex=True)
    for ax, panel in zip(axes, PANELS, strict=True):
        _panel(builder, ax, table, panel)
    axes[0].legend(fontsize=7, loc="best", ncol=2)  # the same entries in both panels
    fig.suptitle(f"{dataset}, subset {subset}: robust fusion, clean vs robust accuracy",
                 fontsize=10)
    seeds = max((p.seeds for row in table.rows for p in row.cells.values() if p), default=1)
    sigma, eps = level_text(table, "blur"), level_text(table, "transfer")
    builder.add(fig, FUSION, dataset,
                f"Beyond the paper: robust fusion methods on {dataset} subset {subset!r}. x: "
                f"clean accuracy; y: accuracy under blur in the boxes at sigma = {sigma} px "
                f"(left; the paper's 10 px at 224 px) and under FGSM crafted on fg at eps = "
                f"{eps} (right; pixel space; fg itself white-box). Filled markers: heads "
                "trained as usual; hollow: cross-fitted on held-out test images (same colour "
                "as their classifier). The alpha sweep is connected in alpha order; dashed "
                "steps: the upper-right (Pareto) frontier. " + interval_note(seeds),
                stem)


@dataset_figure(order=11)
def fusion_figures(builder: FigureBuilder, dataset: str) -> None:
    """Figure F for each subset with robust fusion or held-out rows."""
    for _, subset in fusion_places(builder.full, dataset):
        fusion_figure(builder, dataset, subset)
