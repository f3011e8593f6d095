"""The figures beyond the paper: S1 (fusion gain vs context strength) and S2 (transfer vs
white-box attacks). Drawn with the same builder, colours and captions as the paper's figures."""

from __future__ import annotations

from ctxfusion.report.figures import (
    ACC_LABEL,
    ATTACK_EPS_LABEL,
    WHITEBOX_ATTACKS,
    _base_in,
    _Builder,
    _curves,
    plt,
)
from ctxfusion.report.style import CHANCE_STYLE, SUBSET_COLOURS


def context_strength_figure(builder: _Builder) -> None:
    """figS1: fusion gain (joint - fg) under blur and clean vs the datasets' context strength."""
    strengths = {d: builder.run.dataset_info(d).get("context_strength") for d in builder.datasets}
    strengths = {d: float(s) for d, s in strengths.items() if isinstance(s, int | float)}
    stem = "figS1_context_strength"
    if len(strengths) < 2:
        return builder.skip("figS1", None, "fewer than two datasets carry a context_strength "
                         "in run.json", stem)
    acc = {(r.dataset, r.subset, r.classifier, r.perturbation, r.level): r.accuracy
           for r in builder.run.results}
    sigma_sets = [{r.level for r in builder.run.results if r.dataset == d
                   and r.perturbation == "blur"} for d in strengths]
    common = set.intersection(*sigma_sets)
    if not common:
        return builder.skip("figS1", None, "the datasets with a context_strength share no "
                         "blur sigma", stem)
    sigma = 10.0 if 10.0 in common else max(common)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    order = sorted(strengths, key=strengths.get)
    subsets = sorted({r.subset for r in builder.run.results if r.dataset in strengths})
    for subset in subsets:
        colour = SUBSET_COLOURS.get(subset, "#7f7f7f")
        for pert, level, style, tag in (("blur", sigma, "-", f"blur sigma={sigma:g}"),
                                        ("none", 0.0, ":", "clean")):
            pts = [(strengths[d], acc[(d, subset, "joint", pert, level)]
                    - acc[(d, subset, "fg", pert, level)]) for d in order
                   if (d, subset, "joint", pert, level) in acc
                   and (d, subset, "fg", pert, level) in acc]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", linestyle=style, color=colour,
                        label=f"{subset}, {tag}")
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_xlabel("context strength of the dataset (run.json)")
    ax.set_ylabel("fusion gain: joint - fg accuracy")
    ax.set_title("Fusion gain vs context strength", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    builder.add(fig, "figS1", None,
             f"Beyond the paper: accuracy gain of the joint head over fg (joint - fg) under "
             f"blur at sigma {sigma:g} px (solid) and clean (dotted), vs the dataset's "
             "context strength, one colour per class subset.", stem)

def whitebox_figure(builder: _Builder, dataset: str) -> None:
    """figS2: accuracy vs eps for attacks crafted on each model (transfer vs white-box)."""
    stem = f"figS2_whitebox_{dataset}"
    rows = [r for r in builder.run.results if r.dataset == dataset and r.source]
    if not any(r.source == "joint" or r.perturbation in WHITEBOX_ATTACKS for r in rows):
        return builder.skip("figS2", dataset, "no attack crafted on the joint model and no "
                         f"{'/'.join(WHITEBOX_ATTACKS)} rows", stem)
    subsets = {r.subset for r in rows}
    subset = "all" if "all" in subsets else sorted(subsets)[0]
    keep = _base_in("fg", "bg", "joint")
    sources = sorted({r.source for r in rows if r.subset == subset and keep(r.source)},
                     key=lambda s: (s != "fg", s))
    fig, axes = plt.subplots(1, len(sources), figsize=(5.2 * len(sources), 4.2),
                             squeeze=False, sharey=True)
    markers = ("o", "s", "^", "v", "D", "P")
    for ax, source in zip(axes[0], sources, strict=True):
        attacks = sorted({r.perturbation for r in rows if r.source == source})
        for k, attack in enumerate(attacks):
            for name, pts in _curves(builder.run, dataset, subset, attack, source,
                                     keep).items():
                style = builder.palette.style(name)
                setting = "white-box" if name == source else "transfer"
                ax.plot(*zip(*pts, strict=True), color=style.color,
                        linestyle=style.linestyle, marker=markers[k % len(markers)],
                        markersize=4, label=f"{name} ({attack}, {setting})")
        ax.set_xlabel(ATTACK_EPS_LABEL)
        ax.set_ylabel(ACC_LABEL)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"crafted on {source}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        chance = builder.run.chance(dataset, subset)
        if chance is not None:
            ax.axhline(chance, **CHANCE_STYLE)
    fig.suptitle(f"{dataset}, subset {subset}: transfer vs white-box attacks", fontsize=10)
    builder.add(fig, "figS2", dataset,
             f"Beyond the paper: accuracy vs eps on {dataset} (subset {subset!r}) for attacks "
             "crafted on each model (one panel per crafting model). A classifier attacked "
             "through its own gradients is white-box; the others see transferred images.",
             stem)
