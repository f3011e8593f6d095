"""Grouping results rows: by place (dataset, subset), by key without the seed, by region;
the clean rows. Shared by the sections that lay rows out per place (robustness, fusion, sanity).
"""

from __future__ import annotations

from collections.abc import Iterator

from ctxfusion.report.rundir import RunData
from ctxfusion.report.select import Point, aggregate, by_seed
from ctxfusion.report.style import classifier_sort_key
from ctxfusion.schema import REGIONS, ResultRow

#: a cell's rows: seed -> row
BySeed = dict[int, ResultRow]
SUBSET_ORDER = {"all": 0, "dissimilar": 1, "similar": 2}
#: a results.csv row's identity without its seed
Key = tuple[str, str, str, str, str, str, str, float]

def row_key(r: ResultRow) -> Key:
    """(dataset, subset, classifier, source, threat, perturbation, region, level)."""
    return (r.dataset, r.subset, r.classifier, r.source, r.threat, r.perturbation, r.region,
            r.level)


def points(rows: list[ResultRow]) -> dict[Key, Point]:
    """Every row key with its accuracy averaged over seeds."""
    grouped: dict[Key, list[ResultRow]] = {}
    for r in rows:
        grouped.setdefault(row_key(r), []).append(r)
    return {k: aggregate(by_seed(v)) for k, v in grouped.items()}


def places(rows: list[ResultRow]) -> list[tuple[str, str]]:
    """The (dataset, subset) pairs of ``rows``: datasets in order of appearance, subsets all,
    dissimilar, similar, then the others."""
    found = list(dict.fromkeys((r.dataset, r.subset) for r in rows))
    datasets = list(dict.fromkeys(d for d, _ in found))
    return sorted(found, key=lambda p: (datasets.index(p[0]), SUBSET_ORDER.get(p[1], 3), p[1]))


def in_place(rows: list[ResultRow], dataset: str, subset: str) -> list[ResultRow]:
    """The rows of one dataset's subset."""
    return [r for r in rows if (r.dataset, r.subset) == (dataset, subset)]


def ordered(names: set[str] | list[str]) -> list[str]:
    """Classifier names in legend order."""
    return sorted(set(names), key=classifier_sort_key)


def clean_rows(run: RunData) -> list[ResultRow]:
    """The clean rows (no perturbation)."""
    return [r for r in run.results if r.perturbation == "none" and r.threat == "none"]


def clean_cells(run: RunData, dataset: str, subset: str) -> dict[str, BySeed]:
    """classifier -> seed -> its clean row, in one dataset's subset."""
    grouped: dict[str, list[ResultRow]] = {}
    for r in in_place(clean_rows(run), dataset, subset):
        grouped.setdefault(r.classifier, []).append(r)
    return {name: by_seed(rows) for name, rows in grouped.items()}


def middle(levels: list[float]) -> float | None:
    """The middle of the non-zero levels (the lower of the two middle ones), or None."""
    nonzero = sorted({lv for lv in levels if lv > 0})
    return nonzero[(len(nonzero) - 1) // 2] if nonzero else None


def regions_of(rows: list[ResultRow]) -> list[str]:
    """The regions of ``rows`` in the order image, box, background."""
    found = {r.region for r in rows}
    return [region for region in REGIONS if region in found]


def attacks_in_order(rows: list[ResultRow]) -> list[str]:
    """The perturbations of ``rows``: fgsm first, then the others alphabetically."""
    names = {r.perturbation for r in rows}
    return sorted(names, key=lambda name: (name != "fgsm", name))


def by_region(rows: list[ResultRow], perturbations: list[str]
              ) -> Iterator[tuple[str, str, list[ResultRow]]]:
    """(perturbation, region, its rows) for each perturbation in the given order and each of
    its regions (image, box, background)."""
    for perturbation in perturbations:
        for region in regions_of([r for r in rows if r.perturbation == perturbation]):
            yield perturbation, region, [r for r in rows
                                         if (r.perturbation, r.region) == (perturbation, region)]


def several_experiments(run: RunData) -> bool:
    """Whether the rows come from more than one experiment (tables get a column for it)."""
    return len({r.experiment for r in run.results}) > 1
