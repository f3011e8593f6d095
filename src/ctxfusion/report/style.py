"""The one mapping from classifier name to colour, line style and marker.

Every figure draws a classifier through :class:`Palette`, so ``joint`` has the same colour in
fig 3, 4, 5 and S2. A view (``bg@context``) keeps the colour of its base classifier and is drawn
dashed; ``joint-alpha<v>`` classifiers get a sequential ramp ordered by log10(alpha).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import matplotlib
from matplotlib import colors as mcolors

#: fixed colours of the paper's classifiers (colour-blind-friendly tab10 hues)
BASE_COLOURS: dict[str, str] = {
    "fg": "#1f77b4",  # object-centric stream: blue
    "bg": "#2ca02c",  # scene-centric stream: green
    "joint": "#7b3294",  # late fusion: purple
    "fg-advtrain": "#d62728",  # adversarially retrained fg: red
}
#: colours for classifiers this module does not know (picked by a stable hash of the name)
FALLBACK_COLOURS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#ff7f0e")
#: sequential colour map for joint-alpha<v>, and the part of it used (light ends are invisible)
ALPHA_CMAP = "YlOrBr"
ALPHA_CMAP_RANGE = (0.35, 0.95)
#: log10(alpha) range the ramp spans at least (the paper sweeps alpha over 0.1 ... 10)
DEFAULT_LOG_ALPHA_RANGE = (-1.0, 1.0)
VIEW_LINESTYLE = "--"
VIEW_MARKERS = {"context": "s", "object": "^"}
#: colours of class subsets (fig S1), and of the two feature streams in weight bar charts
SUBSET_COLOURS = {"all": "#333333", "dissimilar": "#e66101", "similar": "#5e3c99"}
STREAM_COLOURS = {"fg": BASE_COLOURS["fg"], "bg": BASE_COLOURS["bg"]}
CHANCE_STYLE = {"color": "#555555", "linestyle": ":", "linewidth": 1.2}

_ALPHA_RE = re.compile(r"^(?P<base>.+?)-alpha(?P<alpha>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)$")


@dataclass(frozen=True)
class ClassifierName:
    """A classifier name split into base, regularisation strength and view."""

    base: str
    alpha: float | None
    view: str | None

    @property
    def family(self) -> str:
        """``joint-alpha`` for regularised joint heads, else the base name."""
        return f"{self.base}-alpha" if self.alpha is not None else self.base


def parse_classifier(name: str) -> ClassifierName:
    """Split e.g. ``joint-alpha0.1@context`` into ('joint', 0.1, 'context')."""
    stem, _, view = name.partition("@")
    match = _ALPHA_RE.match(stem)
    if match:
        return ClassifierName(match["base"], float(match["alpha"]), view or None)
    return ClassifierName(stem, None, view or None)


@dataclass(frozen=True)
class LineStyle:
    """Keyword arguments for ``Axes.plot`` of one classifier."""

    color: str
    linestyle: str
    marker: str
    label: str

    def kwargs(self) -> dict[str, str]:
        """The style as ``plot`` keyword arguments."""
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker,
                "label": self.label}


def fallback_colour(name: str) -> str:
    """A stable colour for an unknown classifier base (same name, same colour, every run)."""
    return FALLBACK_COLOURS[zlib.crc32(name.encode("utf-8")) % len(FALLBACK_COLOURS)]


def stream_colour(stream: str) -> str:
    """The colour of a stream in weight charts and PCA titles (fg blue, bg green, others by
    name)."""
    return STREAM_COLOURS.get(stream) or fallback_colour(stream)


def alpha_colour(alpha: float, log_range: tuple[float, float] = DEFAULT_LOG_ALPHA_RANGE) -> str:
    """Colour of ``joint-alpha<alpha>`` on the sequential ramp spanning ``log_range``."""
    low, high = log_range
    position = 0.5 if high <= low else (math.log10(max(alpha, 1e-12)) - low) / (high - low)
    position = min(1.0, max(0.0, position))
    start, stop = ALPHA_CMAP_RANGE
    return mcolors.to_hex(matplotlib.colormaps[ALPHA_CMAP](start + (stop - start) * position))


class Palette:
    """Classifier -> style for one run; the alpha ramp spans the run's alphas (and 0.1..10)."""

    def __init__(self, alphas: list[float] | tuple[float, ...] = ()) -> None:
        logs = [math.log10(a) for a in alphas if a > 0]
        low, high = DEFAULT_LOG_ALPHA_RANGE
        self.log_range = (min([low, *logs]), max([high, *logs]))

    @classmethod
    def for_classifiers(cls, names: list[str] | set[str]) -> Palette:
        """A palette whose alpha ramp covers every ``joint-alpha<v>`` among ``names``."""
        alphas = [p.alpha for p in map(parse_classifier, names) if p.alpha is not None]
        return cls(alphas)

    def colour(self, name: str) -> str:
        """The colour of a classifier; a view has the colour of its base classifier."""
        parsed = parse_classifier(name)
        if parsed.alpha is not None:
            return alpha_colour(parsed.alpha, self.log_range)
        return BASE_COLOURS.get(parsed.base) or fallback_colour(parsed.base)

    def style(self, name: str) -> LineStyle:
        """Colour, line style (dashed for views), marker and legend label of a classifier."""
        parsed = parse_classifier(name)
        if parsed.view is None:
            return LineStyle(self.colour(name), "-", "o", name)
        return LineStyle(self.colour(name), VIEW_LINESTYLE,
                         VIEW_MARKERS.get(parsed.view, "d"), name)


def classifier_style(name: str) -> LineStyle:
    """The style of a classifier with the default alpha ramp (0.1 ... 10)."""
    return Palette().style(name)


def classifier_sort_key(name: str) -> tuple:
    """Legend order: fg, bg, joint, joint-alpha by alpha, fg-advtrain, others; views after."""
    parsed = parse_classifier(name)
    order = {"fg": 0, "bg": 1, "joint": 2, "joint-alpha": 3, "fg-advtrain": 4}
    return (order.get(parsed.family, 5), parsed.base, parsed.alpha or 0.0,
            parsed.view is not None, parsed.view or "")
