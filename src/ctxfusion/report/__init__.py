"""Figures (matplotlib) and the self-contained HTML report of a run directory."""

from ctxfusion.report.figures import FigureSet, make_figures, render_figures
from ctxfusion.report.html import build_report
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
]
