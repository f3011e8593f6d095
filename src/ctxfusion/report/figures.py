"""The paper's figures (2, 3a-d, 4a-d, 5a-d) and two extra ones (S1, S2) from a run directory.

Each figure is drawn only when the run has the data for it; otherwise it is recorded in
``FigureSet.missing`` with the reason, which the HTML report lists. Colours come from
:mod:`ctxfusion.report.style` so a classifier looks the same in every figure.
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
from PIL import Image, UnidentifiedImageError  # noqa: E402

from ctxfusion.io import atomic_write_bytes  # noqa: E402
from ctxfusion.report.rundir import RunData, load_run  # noqa: E402
from ctxfusion.report.style import (  # noqa: E402
    CHANCE_STYLE,
    STREAM_COLOURS,
    Palette,
    classifier_sort_key,
    parse_classifier,
)

SIGMA_LABEL = "Gaussian blur sigma (px)"
EPS_LABEL = "FGSM eps (pixel space, L-inf)"
ATTACK_EPS_LABEL = "attack eps (pixel space, L-inf)"
ACC_LABEL = "accuracy"
WEIGHT_LABEL = "mean |w| of the joint head half"
BLUR_SUBSETS = {"fig3a": "all", "fig3c": "dissimilar", "fig3d": "similar"}
ALPHA_SUBSETS = {"fig5a": "dissimilar", "fig5b": "all"}
ALPHA_WEIGHT_SUBSETS = {"fig5c": "dissimilar", "fig5d": "all"}
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


def _curves(run: RunData, dataset: str, subset: str, perturbation: str, source: str | None,
            keep: Callable[[str], bool]) -> dict[str, list[tuple[float, float]]]:
    """classifier -> sorted (level, accuracy); clean rows fill level 0 when the sweep lacks it."""
    points: dict[str, dict[float, float]] = {}
    for row in run.results:
        if (row.dataset, row.subset, row.perturbation) != (dataset, subset, perturbation):
            continue
        if (source is not None and row.source != source) or not keep(row.classifier):
            continue
        points.setdefault(row.classifier, {})[row.level] = row.accuracy
    for row in run.results:
        if (row.dataset, row.subset, row.perturbation, row.level) == (dataset, subset, "none", 0):
            if row.classifier in points:
                points[row.classifier].setdefault(0.0, row.accuracy)
    return {name: sorted(points[name].items())
            for name in sorted(points, key=classifier_sort_key)}


def _plot_curves(ax: plt.Axes, curves: dict[str, list[tuple[float, float]]], palette: Palette,
                 chance: float | None, xlabel: str, title: str,
                 labels: dict[str, str] | None = None) -> None:
    for name, pts in curves.items():
        xs, ys = zip(*pts, strict=True)
        style = palette.style(name).kwargs()
        style["label"] = (labels or {}).get(name, style["label"])
        ax.plot(xs, ys, markersize=4, linewidth=1.6, **style)
    if chance is not None:
        ax.axhline(chance, label=f"chance (1/{round(1 / chance)})", **CHANCE_STYLE)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ACC_LABEL)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
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
            curves = _curves(self.run, dataset, subset, "blur", None, _base_in("fg", "bg", "joint"))
            if not curves:
                reason = f"no blur rows for {dataset} subset {subset!r} in results.csv"
                if subset not in self.subsets(dataset):
                    reason = f"{dataset} has no subset {subset!r} in results.csv"
                elif not self.run.has_boxes(dataset):
                    reason += " (box-free dataset: blur inside object boxes does not apply)"
                self.skip(figure, dataset, reason)
                continue
            fig, ax = plt.subplots(figsize=(6, 4.2))
            chance = self.run.chance(dataset, subset)
            _plot_curves(ax, curves, self.palette, chance, SIGMA_LABEL,
                         f"{dataset}, subset {subset}: blur inside object boxes")
            self.add(fig, figure, dataset,
                     f"Reproduces paper Fig. {figure[3:]}: test accuracy vs sigma of a Gaussian "
                     f"blur applied inside the object boxes only, {dataset} subset {subset!r}; "
                     "fg, bg, joint, views dashed"
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

    # --- fig 4: FGSM on fg, head weights --------------------------------------------------
    def fig4(self, dataset: str) -> None:
        boxed = self.run.has_boxes(dataset)
        curve_id, weight_id = ("fig4a", "fig4b") if boxed else ("fig4c", "fig4d")
        curves = _curves(self.run, dataset, "all", "fgsm", "fg", _base_in("fg", "bg", "joint"))
        if curves:
            fig, ax = plt.subplots(figsize=(6, 4.2))
            _plot_curves(ax, curves, self.palette, self.run.chance(dataset, "all"), EPS_LABEL,
                         f"{dataset}, subset all: FGSM crafted on fg")
            self.add(fig, curve_id, dataset,
                     f"Reproduces paper Fig. {curve_id[3:]}: accuracy vs FGSM eps (pixel space, "
                     f"L-inf) on {dataset} (all classes); the attack is crafted on the fg "
                     "classifier and the same images are fed to bg and joint (transfer).")
        else:
            self.skip(curve_id, dataset, f"no fgsm rows with source 'fg' for {dataset} subset "
                      "'all' in results.csv")
        self.weight_bars(dataset, weight_id)

    def weight_bars(self, dataset: str, figure: str) -> None:
        rows = [w for w in self.run.weights or [] if (w.dataset, w.subset) == (dataset, "all")
                and parse_classifier(w.classifier).base == "joint"
                and parse_classifier(w.classifier).alpha is None]
        if not rows:
            why = "weights.csv not found" if self.run.weights is None else (
                f"weights.csv has no 'joint' rows for {dataset} subset 'all'")
            return self.skip(figure, dataset, why)
        heads = sorted({w.classifier for w in rows}, key=classifier_sort_key)
        fig, ax = plt.subplots(figsize=(max(4.5, 1.5 + 1.6 * len(heads)), 4.2))
        x = np.arange(len(heads))
        for offset, stream in ((-0.2, "fg"), (0.2, "bg")):
            values = [next((w.mean_abs_weight for w in rows if (w.classifier, w.stream)
                            == (head, stream)), np.nan) for head in heads]
            ax.bar(x + offset, values, width=0.38, color=STREAM_COLOURS[stream],
                   label=f"{stream} half of W (weights on the {stream} features)")
        ax.set_xticks(x, heads)
        ax.set_ylabel(WEIGHT_LABEL)
        ax.set_title(f"{dataset}: joint head weights by stream", fontsize=10)
        ax.legend(fontsize=7)
        self.add(fig, figure, dataset,
                 f"Reproduces paper Fig. {figure[3:]}: mean absolute weight of the fg half and "
                 f"the bg half of the joint linear head on {dataset} (all classes): how much "
                 "each stream contributes to the fused decision.")

    # --- fig 5: alpha sweep ---------------------------------------------------------------
    def fig5(self, dataset: str) -> None:
        for figure, subset in ALPHA_SUBSETS.items():
            curves = _curves(self.run, dataset, subset, "fgsm", "fg", _alpha_sweep_member)
            if not any(parse_classifier(n).alpha is not None for n in curves):
                self.skip(figure, dataset, f"{dataset} has no subset {subset!r} in results.csv"
                          if subset not in self.subsets(dataset) else f"no fgsm rows (source "
                          f"fg) for joint-alpha<v> classifiers on {dataset} subset {subset!r}")
                continue
            labels = {}
            if "fg-advtrain" not in curves:  # `ctxfusion run` attacks it through its own gradient
                own = _curves(self.run, dataset, subset, "fgsm", "fg-advtrain",
                              lambda n: n == "fg-advtrain")
                curves = dict(sorted({**curves, **own}.items(),
                                     key=lambda kv: classifier_sort_key(kv[0])))
                labels = {"fg-advtrain": "fg-advtrain (FGSM crafted on itself)"}
            fig, ax = plt.subplots(figsize=(6, 4.2))
            _plot_curves(ax, curves, self.palette, self.run.chance(dataset, subset), EPS_LABEL,
                         f"{dataset}, subset {subset}: regularised joint vs baselines", labels)
            self.add(fig, figure, dataset,
                     f"Reproduces paper Fig. {figure[3:]}: accuracy vs FGSM eps (crafted on fg) "
                     f"for the joint head regularised with alpha * ||W_fg||^2 at each alpha "
                     f"(ramp: light = small alpha), fg, bg and the FGSM-retrained fg "
                     f"(fg-advtrain), {dataset} subset {subset!r}"
                     + ("; fg-advtrain is attacked through its own gradients (white-box)."
                        if labels else "."))
        for figure, subset in ALPHA_WEIGHT_SUBSETS.items():
            self.alpha_weights(dataset, subset, figure)

    def alpha_weights(self, dataset: str, subset: str, figure: str) -> None:
        rows = [w for w in self.run.weights or [] if (w.dataset, w.subset) == (dataset, subset)
                and parse_classifier(w.classifier).view is None
                and parse_classifier(w.classifier).base == "joint"]
        swept = [w for w in rows if w.alpha > 0]
        if not swept:
            why = "weights.csv not found" if self.run.weights is None else (
                f"weights.csv has no joint-alpha<v> rows for {dataset} subset {subset!r}")
            return self.skip(figure, dataset, why)
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for stream in ("fg", "bg"):
            pts = sorted((w.alpha, w.mean_abs_weight) for w in swept if w.stream == stream)
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", color=STREAM_COLOURS[stream],
                        label=f"{stream} half")
            plain = [w.mean_abs_weight for w in rows if w.alpha == 0 and w.stream == stream]
            if plain:
                ax.axhline(plain[0], color=STREAM_COLOURS[stream], linestyle=":",
                           label=f"{stream} half, unregularised joint")
        ax.set_xscale("log")
        ax.set_xlabel("alpha (weight of ||W_fg||^2 in the loss, log scale)")
        ax.set_ylabel(WEIGHT_LABEL)
        ax.set_title(f"{dataset}, subset {subset}: head weights vs alpha", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        self.add(fig, figure, dataset,
                 f"Reproduces paper Fig. {figure[3:]}: mean |w| of the fg and bg halves of the "
                 f"regularised joint head as a function of alpha, {dataset} subset {subset!r}.")


def render_figures(run: RunData | str | Path) -> FigureSet:
    """Draw every figure the run's data supports into the run directory; list the others."""
    if not isinstance(run, RunData):
        run = load_run(run)
    from ctxfusion.report.figures_extra import context_strength_figure, whitebox_figure

    builder = _Builder(run)
    for dataset in builder.datasets:
        builder.fig2(dataset)
        builder.fig3(dataset)
        builder.fig4(dataset)
        builder.fig5(dataset)
        whitebox_figure(builder, dataset)
    context_strength_figure(builder)
    return builder.out


def make_figures(run_dir: str | Path) -> list[Path]:
    """Write the figures of ``run_dir`` as ``fig*.png`` beside its results; return their paths."""
    return [record.path for record in render_figures(run_dir).produced]

