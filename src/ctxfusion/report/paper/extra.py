"""The figures beyond the paper: S1 (fusion gain vs context strength) and S2 (transfer vs
white-box attacks). Drawn with the same builder, colours and captions as the paper's figures."""

from __future__ import annotations

from dataclasses import dataclass

from ctxfusion.report.diffs import find_diff
from ctxfusion.report.figure_base import (
    ACC_LABEL,
    ATTACK_EPS_LABEL,
    NON_ITERATIVE,
    FigureBuilder,
    band_note,
    dataset_figure,
    plot_points,
    plt,
    run_figure,
    unregularised,
)
from ctxfusion.report.rundir import RunData
from ctxfusion.report.select import (
    PAPER_IMAGE_SIZE,
    Point,
    curves,
    listed_sources,
    nearest,
    sigma_at_224,
)
from ctxfusion.report.style import CHANCE_STYLE, SUBSET_COLOURS


def _gain(builder: FigureBuilder, dataset: str, subset: str, perturbation: str,
          level: float) -> tuple[float, float, float] | None:
    """joint - fg averaged over seeds: (mean, mean ci_low, mean ci_high), or None."""
    found = [find_diff(builder.run, dataset, subset, "joint", "fg", perturbation, level, "none",
                       seed) for seed in builder.run.seeds()]
    found = [d for d in found if d is not None]
    if not found:
        return None
    k = len(found)
    return (sum(d.diff for d in found) / k, sum(d.ci_low for d in found) / k,
            sum(d.ci_high for d in found) / k)


@run_figure(order=7)
def context_strength_figure(builder: FigureBuilder) -> None:
    """figS1: fusion gain (joint - fg) under blur and clean vs the datasets' context strength."""
    strengths = {d: float(s) for d in builder.datasets
                 if (s := builder.run.dataset_info(d).context_strength) is not None}
    stem = "figS1_context_strength"
    if len(strengths) < 2:
        return builder.skip("figS1", None, "fewer than two datasets carry a context_strength "
                            "in run.json", stem)
    sigma_sets = [{r.level for r in builder.run.results if r.dataset == d
                   and r.perturbation == "blur"} for d in strengths]
    common = set.intersection(*sigma_sets)
    if not common:
        return builder.skip("figS1", None, "the datasets with a context_strength share no "
                            "blur sigma", stem)
    order = sorted(strengths, key=strengths.get)
    size = builder.run.image_size(order[0]) or PAPER_IMAGE_SIZE
    sigma = nearest(common, 10.0 * size / PAPER_IMAGE_SIZE)  # the paper's sigma 10 at 224 px
    fig, ax = plt.subplots(figsize=(6, 4.2))
    subsets = sorted({r.subset for r in builder.run.results if r.dataset in strengths})
    for subset in subsets:
        colour = SUBSET_COLOURS.get(subset, "#7f7f7f")
        for pert, level, style, tag in (("blur", sigma, "-", f"blur sigma={sigma:g}"),
                                        ("none", 0.0, ":", "clean")):
            pts = [(strengths[d], g) for d in order
                   if (g := _gain(builder, d, subset, pert, level)) is not None]
            if pts:
                xs = [x for x, _ in pts]
                ax.errorbar(xs, [g[0] for _, g in pts], marker="o", linestyle=style,
                            color=colour, capsize=2, label=f"{subset}, {tag}",
                            yerr=[[g[0] - g[1] for _, g in pts], [g[2] - g[0] for _, g in pts]])
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_xlabel("context strength of the dataset (run.json)")
    ax.set_ylabel("fusion gain: joint - fg accuracy")
    ax.set_title("Fusion gain vs context strength", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    builder.add(fig, "figS1", None,
                f"Beyond the paper: accuracy gain of the joint head over fg (joint - fg) under "
                f"blur at sigma {sigma:g} px (solid) and clean (dotted), vs the dataset's "
                "context strength, one colour per class subset; error bars: 95 % interval of the "
                "difference (paired from differences.csv, else unpaired; mean over seeds); "
                f"sigma {sigma:g} px is the paper's "
                f"{sigma_at_224(builder.run, order[0], sigma):.3g} at 224 px.", stem)


@dataclass(frozen=True)
class Panel:
    """One panel of figS2: its title, setting, crafting model ('' for the white-box panel),
    its attacks and the curves drawn, keyed by (attack, classifier)."""

    title: str
    setting: str
    source: str
    attacks: list[str]
    drawn: dict[tuple[str, str], list[Point]]


def whitebox_panels(run: RunData, dataset: str) -> tuple[str, list[str], list[Panel]]:
    """figS2's data: the subset (all, else the first), the crafting models of transfer rows
    (those run.json lists as run on every test image, when it lists them) and one panel per
    crafting model plus, when some classifier outside them is attacked through its own
    gradient, a white-box panel. ``run``: the paper's view of the run."""
    rows = [r for r in run.results if r.dataset == dataset and r.source]
    subsets = {r.subset for r in rows}
    subset = "all" if "all" in subsets else min(subsets, default="all")
    mine = [r for r in rows if r.subset == subset]
    listed = listed_sources(run)  # new runs craft on every classifier: the configured ones
    sources = [s for s in dict.fromkeys(r.source for r in mine if r.threat == "transfer")
               if listed is None or s in listed]
    specs = [(f"crafted on {src}", "transfer", src) for src in sources]
    if any(r.threat == "whitebox" and r.classifier not in sources and unregularised(r.classifier)
           for r in mine):
        specs.append(("white-box: each crafted on itself", "whitebox", ""))
    panels = []
    for title, setting, source in specs:
        attacks = sorted({r.perturbation for r in mine if (r.source == source if source
                                                            else r.threat == "whitebox")})
        drawn = {(attack, name): pts for attack in attacks for name, pts in curves(
            run, dataset, subset, attack, setting, unregularised, source or "fg").items()}
        panels.append(Panel(title, setting, source, attacks, drawn))
    return subset, sources, panels


@dataset_figure(order=8)
def whitebox_figure(builder: FigureBuilder, dataset: str) -> None:
    """figS2: accuracy vs eps for attacks crafted on each model (transfer vs white-box)."""
    stem = f"figS2_whitebox_{dataset}"
    subset, sources, panels = whitebox_panels(builder.run, dataset)
    mine = [r for r in builder.run.results if (r.dataset, r.subset) == (dataset, subset)
            and r.source]
    if len(panels) < 2 and all(r.perturbation in NON_ITERATIVE for r in mine):
        return builder.skip("figS2", dataset, "one attack setting only: no second crafting "
                            "model, no classifier attacked through its own gradient and no "
                            "iterative white-box attack rows", stem)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2),
                             squeeze=False, sharey=True)
    markers = ("o", "s", "^", "v", "D", "P")
    drawn_all: dict = {}
    for ax, panel in zip(axes[0], panels, strict=True):
        for (attack, name), pts in panel.drawn.items():
            how = ("white-box" if panel.setting == "whitebox" or name == panel.source
                   else "transfer")
            plot_points(ax, name, pts, builder.palette, f"{name} ({attack}, {how})",
                        markers[panel.attacks.index(attack) % len(markers)])
            drawn_all[(panel.title, attack, name)] = pts
        ax.set_xlabel(ATTACK_EPS_LABEL)
        ax.set_ylabel(ACC_LABEL)
        ax.set_ylim(0, 1.02)
        ax.set_title(panel.title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        chance = builder.run.chance(dataset, subset)
        if chance is not None:
            ax.axhline(chance, **CHANCE_STYLE)
    fig.suptitle(f"{dataset}, subset {subset}: transfer vs white-box attacks", fontsize=10)
    builder.add(fig, "figS2", dataset,
                f"Beyond the paper: accuracy vs eps on {dataset} (subset {subset!r}) for attacks "
                f"crafted on {' and on '.join(sources)} (one panel per crafting model; the "
                "crafting model "
                "itself is white-box, the others see transferred images) and, last panel, every "
                "classifier attacked through its own gradients (white-box); "
                f"{band_note(drawn_all)}.", stem)
