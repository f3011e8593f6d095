"""What every figure module shares: the builder that saves a figure or records why it was
skipped, the curve plotting, the labels, and the figure registry.

Adding a figure: write a function ``draw(builder, dataset)`` (or ``draw(builder)`` for a
figure over the whole run) in its section's module, decorate it with :func:`dataset_figure`
(or :func:`run_figure`) and an ``order`` (its place in the report: the paper's figure number);
importing the section (:data:`ctxfusion.report.layout.SECTIONS`) registers it. The
function calls ``builder.add(fig, id, dataset, caption)`` when the run has the data, else
``builder.skip(id, dataset, reason)``. Every accuracy curve is the mean over seeds with a
shaded 95 % band (:data:`BAND_ONE_SEED`, :data:`BAND_SEEDS`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ctxfusion.io import atomic_write_bytes  # noqa: E402
from ctxfusion.report.rundir import RunData  # noqa: E402
from ctxfusion.report.select import Point, paper_view, without_fusion  # noqa: E402
from ctxfusion.report.style import (  # noqa: E402
    CHANCE_STYLE,
    Palette,
    parse_classifier,
)

SIGMA_LABEL = "Gaussian blur sigma (px)"
EPS_LABEL = "FGSM eps (pixel space, L-inf)"
ATTACK_EPS_LABEL = "attack eps (pixel space, L-inf)"
ACC_LABEL = "accuracy"
BAND_ONE_SEED = "shaded: 95 % Wilson interval of each accuracy"
BAND_SEEDS = ("lines: mean over {k} seeds; shaded: from the mean of the per-seed 95 % Wilson "
              "lower bounds to the mean of the upper bounds; error bars: min-max over seeds")
#: perturbations that are not an iterative attack (every other one in results.csv is: the
#: registry of attacks may hold ones this report has never heard of)
NON_ITERATIVE = ("none", "blur", "fgsm")
DPI = 100


@dataclass(frozen=True)
class FigureRecord:
    """A figure written to disk: paper figure id, dataset, file and caption."""

    figure: str
    dataset: str | None
    path: Path
    caption: str


@dataclass(frozen=True)
class MissingFigure:
    """A figure that was not drawn and why."""

    name: str
    reason: str


@dataclass
class FigureSet:
    """The outcome of :func:`render_figures`."""

    produced: list[FigureRecord] = field(default_factory=list)
    missing: list[MissingFigure] = field(default_factory=list)


def save_png(fig: plt.Figure, path: Path) -> Path:
    """Render to PNG in memory, then write atomically (a killed run leaves no half PNG)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def band_note(drawn: dict[str, list[Point]]) -> str:
    """What the shaded band (and error bars) of a figure show, for its caption."""
    seeds = max((p.seeds for pts in drawn.values() for p in pts), default=1)
    return BAND_ONE_SEED if seeds <= 1 else BAND_SEEDS.format(k=seeds)


def interval_note(seeds: int) -> str:
    """The end of a scatter figure's caption: what its error bars show."""
    return "Error bars: 95 % Wilson intervals" + (
        f" (means over {seeds} seeds of the per-seed bounds)." if seeds > 1 else ".")


def chance_line(ax: plt.Axes, chance: float | None) -> None:
    """The chance level as a dotted line labelled ``chance (1/k)`` (None: nothing)."""
    if chance is not None:
        ax.axhline(chance, label=f"chance (1/{round(1 / chance)})", **CHANCE_STYLE)


def plot_points(ax: plt.Axes, name: str, pts: list[Point], palette: Palette,
                label: str | None = None, marker: str | None = None) -> None:
    """One classifier's curve: the mean line, a band for the interval, seed spread bars."""
    style = palette.style(name).kwargs()
    style["label"] = label or style["label"]
    style["marker"] = marker or style["marker"]
    xs = [p.level for p in pts]
    ax.plot(xs, [p.accuracy for p in pts], markersize=4, linewidth=1.6, **style)
    ax.fill_between(xs, [p.ci_low for p in pts], [p.ci_high for p in pts], color=style["color"],
                    alpha=0.13, linewidth=0)
    if any(p.seeds > 1 for p in pts):
        ax.errorbar(xs, [p.accuracy for p in pts], fmt="none", ecolor=style["color"],
                    elinewidth=1, capsize=2,
                    yerr=[[p.accuracy - p.seed_min for p in pts],
                          [p.seed_max - p.accuracy for p in pts]])


def plot_curves(ax: plt.Axes, drawn: dict[str, list[Point]], palette: Palette,
                 chance: float | None, xlabel: str, title: str,
                 labels: dict[str, str] | None = None) -> None:
    for name, pts in drawn.items():
        plot_points(ax, name, pts, palette, (labels or {}).get(name))
    chance_line(ax, chance)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.set_ylabel(ACC_LABEL)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if drawn or chance is not None:
        ax.legend(fontsize=7, loc="best")


def is_advtrained(name: str) -> bool:
    """An adversarially retrained classifier (``fg-advtrain``)."""
    return parse_classifier(name).base.endswith("-advtrain")


def unregularised(name: str) -> bool:
    """A configured classifier or one of its views: any number of streams, no alpha penalty,
    not adversarially retrained (fg, bg, joint, joint3, bg@context...)."""
    return parse_classifier(name).alpha is None and not is_advtrained(name)


def alpha_sweep_member(name: str) -> bool:
    """A classifier on its default views: every configured one, the alpha heads, advtrain."""
    return parse_classifier(name).view is None


class FigureBuilder:
    """Draws the figures of one run and records what was drawn or skipped; ``run`` is the
    paper's view of it (:func:`~ctxfusion.report.select.paper_view`), ``robust`` every row
    but the robust fusion methods' (:func:`~ctxfusion.report.select.without_fusion`), ``full``
    every row."""

    def __init__(self, run: RunData) -> None:
        self.full = run
        self.robust = without_fusion(run)
        self.run = paper_view(run)
        self.out = FigureSet()
        self.datasets = run.datasets()
        self.palette = Palette.for_classifiers({r.classifier for r in run.results})

    def subsets(self, dataset: str) -> set[str]:
        return {r.subset for r in self.run.results if r.dataset == dataset}

    def name(self, figure: str, dataset: str | None) -> str:
        if dataset is None or len(self.datasets) <= 1:
            return figure
        return f"{figure}_{dataset}"

    def add(self, fig: plt.Figure, figure: str, dataset: str | None, caption: str,
            file_stem: str | None = None) -> None:
        path = save_png(fig, self.run.paths.figure(file_stem or self.name(figure, dataset)))
        self.out.produced.append(FigureRecord(figure, dataset, path, caption))

    def skip(self, figure: str, dataset: str | None, reason: str,
             file_stem: str | None = None) -> None:
        self.out.missing.append(MissingFigure(file_stem or self.name(figure, dataset), reason))


DatasetFigure = Callable[[FigureBuilder, str], None]
RunFigure = Callable[[FigureBuilder], None]
#: registered figures as (order, function), drawn in order per dataset / once per run
DATASET_FIGURES: list[tuple[float, DatasetFigure]] = []
RUN_FIGURES: list[tuple[float, RunFigure]] = []


def dataset_figure(order: float) -> Callable[[DatasetFigure], DatasetFigure]:
    """Register ``draw(builder, dataset)``, drawn for every dataset of a run."""
    def register(draw: DatasetFigure) -> DatasetFigure:
        DATASET_FIGURES.append((order, draw))
        return draw
    return register


def run_figure(order: float) -> Callable[[RunFigure], RunFigure]:
    """Register ``draw(builder)``, drawn once per run (figures across datasets)."""
    def register(draw: RunFigure) -> RunFigure:
        RUN_FIGURES.append((order, draw))
        return draw
    return register
