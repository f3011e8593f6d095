"""The robustness sections of report.html (beyond the paper's figures), after the results
tables: transfer (the paper's setting, and the full transfer matrix), white-box and adaptive
attacks, threat regions and corruptions.

Each section is present only when the run has its rows (:mod:`.select` says which);
its tables come from :func:`~ctxfusion.report.tables.results_table` and
:func:`~ctxfusion.report.tables.grid_table` (accuracy % [95 % interval], seeds averaged) with
clean accuracy beside every robust figure; one table per dataset/subset (and attack, region or
eps). The robust fusion methods and held-out classifiers are left out (their own section,
:mod:`ctxfusion.report.fusion`). Every value from the run is escaped
(:func:`esc`).
"""

from __future__ import annotations

from collections.abc import Callable

from ctxfusion.report.figure_base import FigureSet
from ctxfusion.report.grouping import (
    BySeed,
    attacks_in_order,
    by_region,
    clean_cells,
    clean_rows,
    in_place,
    ordered,
    places,
    regions_of,
    several_experiments,
)
from ctxfusion.report.markup import esc, figures_with_stem
from ctxfusion.report.robustness.figures import CORRUPTIONS, TRANSFER
from ctxfusion.report.robustness.select import (
    corruption_rows,
    fgsm_matrix_rows,
    paper_sources,
    region_rows,
    transfer_matrix,
    transfer_places,
    whitebox_rows,
)
from ctxfusion.report.rundir import ResultRow, RunData
from ctxfusion.report.select import aggregate, pick
from ctxfusion.report.tables import format_accuracy, grid_table, results_table

TITLES = {"transfer": "Transfer (the paper's setting)",
          "whitebox-adaptive": "White-box and adaptive (beyond the paper)",
          "threat-regions": "Threat regions", "corruptions": "Corruptions"}
EPS_LABEL = "eps (pixel space, L-inf)"
CLEAN = "clean (no attack)"


def _place_head(dataset: str, subset: str) -> str:
    return f"<h3>{esc(dataset)} / {esc(subset)}</h3>"


def _section(key: str, intro: str, rows: list[ResultRow],
             place: Callable[[str, str, list[ResultRow]], list[str]]) -> str:
    """A section of ``rows`` (empty without them): its title and ``intro``, then per
    dataset/subset a heading and what ``place(dataset, subset, the place's rows)`` writes."""
    if not rows:
        return ""
    parts = [f"<h2 id='{key}'>{esc(TITLES[key])}</h2><p>{intro}</p>"]
    for dataset, subset in places(rows):
        parts.append(_place_head(dataset, subset))
        parts += place(dataset, subset, in_place(rows, dataset, subset))
    return "".join(parts)


# --- transfer ---------------------------------------------------------------------------------
def _matrix(run: RunData, dataset: str, subset: str, figures: FigureSet) -> str:
    matrix = transfer_matrix(run, dataset, subset)
    if matrix is None:
        return "<p>FGSM crafted on one model only: no transfer matrix.</p>"
    table = grid_table(matrix.cells, matrix.sources, matrix.classifiers, "crafted on \\ by",
                       f"accuracy (%) [95 % interval] at FGSM eps = {matrix.eps:g}",
                       "robust matrix", extra_rows=[(CLEAN, clean_cells(run, dataset, subset))],
                       mark=lambda source, name: source == name)
    return (f"<h4>Transfer matrix at eps = {matrix.eps:g}</h4><p>The FGSM eps at which "
            f"every classifier was crafted on, eps = {matrix.eps:g} (pixel space): rows = "
            "crafted on, columns = classified by, diagonal = white-box (outlined); the first "
            "row is clean accuracy. Sources outside the configured ones ran on a "
            "class-stratified sample (fewer images, wider intervals).</p>" + table
            + figures_with_stem(figures, f"{TRANSFER}_{dataset}_{subset}"))


def transfer_section(run: RunData, figures: FigureSet) -> str:
    """FGSM crafted on the configured sources (the paper's setting) and the transfer matrix."""
    if not transfer_places(run):
        return ""
    several = several_experiments(run)
    parts = [f"<h2 id='transfer'>{esc(TITLES['transfer'])}</h2><p>FGSM on the whole image, "
             "as in the paper: the images are crafted on a source classifier and classified by "
             "every classifier (white-box for the source itself, transfer for the others); "
             "clean accuracy beside.</p>"]
    every = fgsm_matrix_rows(run)
    for dataset, subset in transfer_places(run):
        mine = in_place(every, dataset, subset)
        sources = paper_sources(run, dataset, subset)
        paper = [r for r in mine if r.source in sources]
        parts.append(_place_head(dataset, subset)
                     + f"<p>Crafted on the configured source(s): {esc(', '.join(sources))}.</p>"
                     + results_table(paper, dataset, "fgsm", several,
                                     in_place(clean_rows(run), dataset, subset),
                                     "robust transfer", EPS_LABEL)
                     + _matrix(run, dataset, subset, figures))
        if len(paper) < len(mine):
            parts.append("<details><summary>every source at every eps</summary>"
                         + results_table(mine, dataset, "fgsm", several,
                                         in_place(clean_rows(run), dataset, subset),
                                         "robust transfer-all", EPS_LABEL) + "</details>")
    return "".join(parts)


# --- white-box and adaptive ------------------------------------------------------------------
def whitebox_section(run: RunData) -> str:
    """Each classifier attacked through its own gradient, and the adaptive attacks."""
    several = several_experiments(run)

    def place(dataset: str, subset: str, mine: list[ResultRow]) -> list[str]:
        clean = in_place(clean_rows(run), dataset, subset)
        parts = []
        for attack, region, group in by_region(mine, attacks_in_order(mine)):
            where = "" if region == "image" else f", region {region}"
            parts.append(f"<h4>{esc(attack)}{esc(where)}</h4>"
                         + results_table(group, dataset, attack, several, clean,
                                         "robust whitebox", EPS_LABEL))
        return parts

    return _section(
        "whitebox-adaptive", "Each classifier attacked through its own gradient (threat "
        "whitebox: FGSM and the iterative attacks, whole image) and the defences under attacks "
        "adapted to them (threat adaptive: through an alpha head's own gradient, through a view "
        "that hides the boxes, ...); one table per attack, columns = eps; clean beside.",
        whitebox_rows(run), place)


# --- threat regions --------------------------------------------------------------------------
def _paired(run: RunData, key: tuple, a: str, b: str, seed: int) -> tuple[float, ...] | None:
    """(diff, ci_low, ci_high) of a - b from differences.csv (white-box, source own), or None."""
    dataset, subset, perturbation, region, level = key
    for d in run.differences or []:
        if ((d.dataset, d.subset, d.threat, d.source, d.perturbation, d.region, d.level, d.seed)
                == (dataset, subset, "whitebox", "own", perturbation, region, level, seed)
                and {d.classifier_a, d.classifier_b} == {a, b}):
            if d.classifier_a == a:
                return d.diff, d.ci_low, d.ci_high
            return -d.diff, -d.ci_high, -d.ci_low
    return None


def lead_sentence(run: RunData, key: tuple, cells: dict[str, BySeed]) -> str:
    """Which classifier holds up best in one region (``key``: dataset, subset, perturbation,
    region, level) and whether its lead over the runner-up is a finding (differences.csv)."""
    region = key[3]
    ranked = sorted(cells, key=lambda name: -aggregate(cells[name]).accuracy)
    if len(ranked) < 2:
        return f"Region {region}: only {ranked[0]} was measured." if ranked else ""
    best, runner = ranked[:2]
    shown = [format_accuracy(aggregate(cells[name]).accuracy) for name in (best, runner)]
    if shown[0] == shown[1]:
        return (f"Region {region}: {best} and {runner} hold up equally ({shown[0]} %): no "
                "difference detected.")
    head = (f"Region {region}: {best} holds up best "
            f"({format_accuracy(aggregate(cells[best]).accuracy)} %), ahead of {runner} "
            f"({format_accuracy(aggregate(cells[runner]).accuracy)} %)")
    seeds = sorted(set(cells[best]) & set(cells[runner]))
    found = [_paired(run, key, best, runner, seed) for seed in seeds]
    if not found or any(d is None for d in found):
        return head + "; no difference detected (no paired comparison in differences.csv)."
    k = len(found)
    diff, low, high = (sum(d[i] for d in found) / k for i in range(3))  # type: ignore[index]
    text = (f"; paired difference {100 * diff:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] "
            "points" + (f" (mean over {k} seeds)" if k > 1 else ""))
    if all(d[1] > 0 for d in found):  # type: ignore[index]
        return head + text + ": a finding (the interval excludes zero)."
    return head + text + ": no difference detected (the interval includes zero)."


def regions_section(run: RunData) -> str:
    """Per attack and eps: classifier x region (image, box, background), white-box."""

    def place(dataset: str, subset: str, mine: list[ResultRow]) -> list[str]:
        clean = clean_cells(run, dataset, subset)
        parts = []
        for attack in attacks_in_order(mine):
            for level in sorted({r.level for r in mine if r.perturbation == attack}):
                group = [r for r in mine if (r.perturbation, r.level) == (attack, level)]
                regions = regions_of(group)
                cells: dict[tuple[str, str], BySeed] = {}
                for r in group:
                    seeds = cells.setdefault((r.classifier, r.region), {})
                    seeds[r.seed] = pick(seeds.get(r.seed), r)
                names = ordered({r.classifier for r in group})
                table = grid_table(cells, names, regions, "classifier \\ region",
                                   f"accuracy (%) [95 % interval], {attack} eps {level:g}",
                                   "robust regions", extra_cols=[("clean", clean)])
                lines = [lead_sentence(run, (dataset, subset, attack, region, level),
                                       {n: cells[(n, region)] for n in names
                                        if (n, region) in cells}) for region in regions]
                parts.append(f"<h4>{esc(attack)}, eps {level:g}</h4>{table}<ul>"
                             + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>")
        return parts

    return _section(
        "threat-regions", "White-box attacks allowed to change the whole image, only the "
        "object boxes, or only the background; per attack and eps, accuracy (%) [95 % "
        "interval] of each classifier in each region, clean beside. A lead is a finding only "
        "when the paired difference (differences.csv, same images) excludes zero.",
        region_rows(run), place)


# --- corruptions -----------------------------------------------------------------------------
def corruptions_section(run: RunData, figures: FigureSet) -> str:
    """Per corruption and region: classifier x severity (clean as severity 0), and curves."""
    several = several_experiments(run)

    def place(dataset: str, subset: str, mine: list[ResultRow]) -> list[str]:
        clean = in_place(clean_rows(run), dataset, subset)
        parts = []
        for corruption, region, group in by_region(mine, sorted({r.perturbation for r in mine})):
            names = {r.classifier for r in group}
            parts.append(f"<h4>{esc(corruption)}, region {esc(region)}</h4>" + results_table(
                group + [r for r in clean if r.classifier in names], dataset, corruption,
                several, table_class="robust corruption", label="severity (0 = clean)"))
        parts.append(figures_with_stem(figures, f"{CORRUPTIONS}_{dataset}_{subset}"))
        return parts

    return _section(
        "corruptions", "Common corruptions (no attacker) at severity 1-5, applied to the whole "
        "image, the object boxes or the background; severity 0 is the clean image.",
        corruption_rows(run), place)
