"""The paper's figures (2, 3a-d, 4a-d, 5a-d), a trade-off figure (T) and two extra ones
(S1, S2) from a run directory.

Each figure is drawn only when the run has the data for it; otherwise it is recorded in
``FigureSet.missing`` with the reason, which the HTML report lists. Colours come from
:mod:`ctxfusion.report.style` so a classifier looks the same in every figure. Every accuracy
curve is the mean over seeds with a shaded 95 % band (:data:`BAND_ONE_SEED`,
:data:`BAND_SEEDS`). This module holds the builder, the curve plotting and figures 2-4a/c;
5a/b live in :mod:`.figures_alpha`, the head contributions (4b/d, 5c/d) in
:mod:`.figures_weights`, figure T in :mod:`.figures_tradeoff`, S1/S2 in :mod:`.figures_extra`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from ctxfusion.io import atomic_write_bytes  # noqa: E402
from ctxfusion.report.rundir import RunData, load_run  # noqa: E402
from ctxfusion.report.select import Point, curves  # noqa: E402
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
BLUR_SUBSETS = {"fig3a": "all", "fig3c": "dissimilar", "fig3d": "similar"}
WHITEBOX_ATTACKS = ("pgd", "autoattack", "apgd", "bim", "cw")
PCA_MAX_CLASSES = 6
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


def _save(fig: plt.Figure, path: Path) -> Path:
    """Render to PNG in memory, then write atomically (a killed run leaves no half PNG)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def band_note(drawn: dict[str, list[Point]]) -> str:
    """What the shaded band (and error bars) of a figure show, for its caption."""
    seeds = max((p.seeds for pts in drawn.values() for p in pts), default=1)
    return BAND_ONE_SEED if seeds <= 1 else BAND_SEEDS.format(k=seeds)


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


def _plot_curves(ax: plt.Axes, drawn: dict[str, list[Point]], palette: Palette,
                 chance: float | None, xlabel: str, title: str,
                 labels: dict[str, str] | None = None) -> None:
    for name, pts in drawn.items():
        plot_points(ax, name, pts, palette, (labels or {}).get(name))
    if chance is not None:
        ax.axhline(chance, label=f"chance (1/{round(1 / chance)})", **CHANCE_STYLE)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.set_ylabel(ACC_LABEL)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if drawn or chance is not None:
        ax.legend(fontsize=7, loc="best")


def _base_in(*bases: str) -> Callable[[str], bool]:
    return lambda name: parse_classifier(name).base in bases and parse_classifier(
        name).alpha is None


def _alpha_sweep_member(name: str) -> bool:
    parsed = parse_classifier(name)
    return parsed.view is None and (parsed.alpha is not None
                                    or parsed.base in ("fg", "bg", "joint", "fg-advtrain"))


class _Builder:
    """Draws the figures of one run and records what was drawn or skipped."""

    def __init__(self, run: RunData) -> None:
        self.run = run
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
        path = _save(fig, self.run.run_dir / f"{file_stem or self.name(figure, dataset)}.png")
        self.out.produced.append(FigureRecord(figure, dataset, path, caption))

    def skip(self, figure: str, dataset: str | None, reason: str,
             file_stem: str | None = None) -> None:
        self.out.missing.append(MissingFigure(file_stem or self.name(figure, dataset), reason))

    # --- fig 2: PCA of the two streams' features, clean vs blurred -------------------------
    def fig2(self, dataset: str) -> None:
        rows = [r for r in self.run.pca or [] if r.dataset == dataset]
        if not rows:
            why = "pca.csv not found" if self.run.pca is None else f"no rows for {dataset}"
            return self.skip("fig2", dataset, f"{why} in pca.csv (needs blur and boxes)")
        labels = list(dict.fromkeys(r.label for r in rows))[:PCA_MAX_CLASSES]
        cmap = matplotlib.colormaps["tab10"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
        for ax, stream in zip(axes, ("fg", "bg"), strict=True):
            for k, label in enumerate(labels):
                for condition, marker, alpha in (("clean", "o", 0.75), ("blur", "x", 0.75)):
                    pts = np.array([(r.pc1, r.pc2) for r in rows if (r.stream, r.label,
                                    r.condition) == (stream, label, condition)]).reshape(-1, 2)
                    if len(pts):
                        ax.scatter(pts[:, 0], pts[:, 1], s=14, marker=marker, alpha=alpha,
                                   color=cmap(k % 10), label=f"{label} ({condition})")
            ax.set_xlabel("PC1 (fitted on clean features)")
            ax.set_ylabel("PC2")
            ax.set_title(f"{stream} stream features ({dataset})", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, ncol=2, loc="best")
        self.add(fig, "fig2", dataset,
                 f"Reproduces paper Fig. 2: PCA (2 components fitted per stream on clean test "
                 f"features) of the object-centric (fg) and scene-centric (bg) features of "
                 f"{len(labels)} classes of {dataset}; circles clean, crosses blurred inside the "
                 "object boxes, projected with the same PCA.")

    # --- fig 3: blur sweeps, example image -----------------------------------------------
    def fig3(self, dataset: str) -> None:
        for figure, subset in BLUR_SUBSETS.items():
            drawn = curves(self.run, dataset, subset, "blur", "none",
                           _base_in("fg", "bg", "joint"))
            if not drawn:
                reason = f"no blur rows for {dataset} subset {subset!r} in results.csv"
                if subset not in self.subsets(dataset):
                    reason = f"{dataset} has no subset {subset!r} in results.csv"
                elif not self.run.has_boxes(dataset):
                    reason += " (box-free dataset: blur inside object boxes does not apply)"
                self.skip(figure, dataset, reason)
                continue
            fig, ax = plt.subplots(figsize=(6, 4.2))
            chance = self.run.chance(dataset, subset)
            _plot_curves(ax, drawn, self.palette, chance, SIGMA_LABEL,
                         f"{dataset}, subset {subset}: blur inside object boxes")
            self.add(fig, figure, dataset,
                     f"Reproduces paper Fig. {figure[3:]}: test accuracy vs sigma of a Gaussian "
                     f"blur applied inside the object boxes only, {dataset} subset {subset!r}; "
                     f"fg, bg, joint, views dashed; {band_note(drawn)}"
                     + ("; dotted: chance." if chance else "; chance level unknown (no run.json)."))
        self.fig3b(dataset)

    def fig3b(self, dataset: str) -> None:
        path = self.run.run_dir / "examples" / f"blur_example_{dataset}.png"
        if not path.is_file():
            return self.skip("fig3b", dataset, f"{path.relative_to(self.run.run_dir)} not found"
                             + ("" if self.run.has_boxes(dataset) else " (box-free dataset)"))
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            return self.skip("fig3b", dataset, f"{path} is not a readable image: {exc}")
        example = (self.run.run_info.get("examples") or {}).get(dataset) or {}
        sigma = example.get("blur_sigma")
        sigma_text = f"sigma = {sigma:g} px" if isinstance(sigma, int | float) else "large sigma"
        fig, ax = plt.subplots(figsize=(8, 4.2))
        ax.imshow(pixels)
        ax.axis("off")
        ax.set_title(f"{dataset}: clean | blurred inside the object box ({sigma_text})",
                     fontsize=10)
        self.add(fig, "fig3b", dataset,
                 f"Reproduces paper Fig. 3b: an example test image of {dataset}, clean (left) and "
                 f"with a Gaussian blur ({sigma_text}) inside its object box (right).")

    # --- fig 4: FGSM on fg (the head weights are in figures_weights) --------------------
    def fig4(self, dataset: str) -> None:
        curve_id = "fig4a" if self.run.has_boxes(dataset) else "fig4c"
        drawn = curves(self.run, dataset, "all", "fgsm", "transfer", _base_in("fg", "bg", "joint"))
        if not drawn:
            return self.skip(curve_id, dataset, f"no fgsm rows crafted on fg (source 'fg') for "
                             f"{dataset} subset 'all' in results.csv")
        fig, ax = plt.subplots(figsize=(6, 4.2))
        _plot_curves(ax, drawn, self.palette, self.run.chance(dataset, "all"), EPS_LABEL,
                     f"{dataset}, subset all: FGSM crafted on fg")
        self.add(fig, curve_id, dataset,
                 f"Reproduces paper Fig. {curve_id[3:]}: accuracy vs FGSM eps (pixel space, "
                 f"L-inf) on {dataset} (all classes); the attack is crafted on the fg classifier "
                 "(white-box for fg) and the same images are fed to bg and joint (transfer); "
                 f"{band_note(drawn)}.")


def render_figures(run: RunData | str | Path) -> FigureSet:
    """Draw every figure the run's data supports into the run directory; list the others."""
    if not isinstance(run, RunData):
        run = load_run(run)
    from ctxfusion.report.figures_alpha import alpha_figures
    from ctxfusion.report.figures_extra import context_strength_figure, whitebox_figure
    from ctxfusion.report.figures_tradeoff import tradeoff_figures
    from ctxfusion.report.figures_weights import alpha_weight_figures, weight_figure

    builder = _Builder(run)
    for dataset in builder.datasets:
        builder.fig2(dataset)
        builder.fig3(dataset)
        builder.fig4(dataset)
        weight_figure(builder, dataset)
        alpha_figures(builder, dataset)
        alpha_weight_figures(builder, dataset)
        tradeoff_figures(builder, dataset)
        whitebox_figure(builder, dataset)
    context_strength_figure(builder)
    return builder.out


def make_figures(run_dir: str | Path) -> list[Path]:
    """Write the figures of ``run_dir`` as ``fig*.png`` beside its results; return their paths."""
    return [record.path for record in render_figures(run_dir).produced]

