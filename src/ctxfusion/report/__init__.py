"""Figures (matplotlib) and the self-contained HTML report of a run directory.

Layers, each importing only those below it: shared helpers (rundir, style, select, grouping,
diffs, figure_base, markup, tables); the sections (metadata, claims, paper, robustness,
sanity, fusion); :mod:`.layout` (the ordered sections, :func:`build_report`). This package
only re-exports.
"""

from ctxfusion.report.figure_base import FigureSet
from ctxfusion.report.layout import build_report, make_figures, render_figures, render_html
from ctxfusion.report.rundir import RunData, load_run
from ctxfusion.report.style import Palette, classifier_style, parse_classifier

__all__ = [
    "FigureSet",
    "Palette",
    "RunData",
    "build_report",
    "classifier_style",
    "load_run",
    "make_figures",
    "parse_classifier",
    "render_figures",
    "render_html",
]
