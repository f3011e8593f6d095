"""Every figure of a run directory: the paper's (2, 3a-d, 4a-d, 5a-d), the trade-off
figure (T), the figures beyond the paper (S1, S2), the robustness figures (R: transfer matrix,
corruptions) and the robust fusion figure (F); R and F are shown in their report sections.

Each figure is drawn only when the run has the data for it; otherwise it is recorded in
``FigureSet.missing`` with the reason, which the HTML report lists. Figures register
themselves (:mod:`ctxfusion.report.figure_base` says how); importing their modules here
registers them.
"""

from __future__ import annotations

from pathlib import Path

from ctxfusion.report import (  # noqa: F401  (importing a module registers its figures)
    figure_base,
    figures_alpha,
    figures_extra,
    figures_fusion,
    figures_paper,
    figures_robustness,
    figures_tradeoff,
    figures_weights,
)
from ctxfusion.report.figure_base import FigureBuilder, FigureSet
from ctxfusion.report.rundir import RunData, load_run

__all__ = ["FigureSet", "make_figures", "render_figures"]


def render_figures(run: RunData | str | Path) -> FigureSet:
    """Draw every figure the run's data supports into the run directory; list the others."""
    if not isinstance(run, RunData):
        run = load_run(run)
    builder = FigureBuilder(run)
    for dataset in builder.datasets:
        for _, draw in sorted(figure_base.DATASET_FIGURES, key=lambda entry: entry[0]):
            draw(builder, dataset)
    for _, draw in sorted(figure_base.RUN_FIGURES, key=lambda entry: entry[0]):
        draw(builder)
    return builder.out


def make_figures(run_dir: str | Path) -> list[Path]:
    """Write the figures of ``run_dir`` as ``fig*.png`` beside its results; return their paths."""
    return [record.path for record in render_figures(run_dir).produced]

