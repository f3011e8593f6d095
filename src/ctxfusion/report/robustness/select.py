"""Selecting the rows of the robustness sections (beyond the paper) of report.html.

The paper's figures, tables and claims read only the paper's kind of row
(:func:`~ctxfusion.report.select.paper_view`); the robustness sections read the others:

- transfer: FGSM on the whole image, crafted on each source and classified by each classifier
  (``transfer``, and ``whitebox`` on the diagonal source = classifier);
- white-box and adaptive: each classifier attacked through its own gradient (FGSM and the
  iterative attacks) on the whole image, and the attacks adapted to the defences;
- threat regions: white-box attacks confined to the boxes or to the background beside the
  same attacks on the whole image;
- corruptions: no attacker, neither clean nor the paper's blur, severity 1..5.

The unbounded sanity attack (eps >= :data:`~ctxfusion.report.select.UNBOUNDED_EPS`) is left
to the sanity checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctxfusion.report.grouping import BySeed, in_place, middle, ordered, places
from ctxfusion.report.rundir import RunData
from ctxfusion.report.select import by_seed, configured_sources, is_corruption, is_unbounded
from ctxfusion.schema import ResultRow


def own(r: ResultRow) -> bool:
    """Crafted on the classifier itself (white-box or adaptive)."""
    return r.source == r.classifier


def fgsm_matrix_rows(run: RunData, region: str = "image") -> list[ResultRow]:
    """FGSM rows of one region crafted on a source: transfer, and white-box on the diagonal."""
    return [r for r in run.results if r.perturbation == "fgsm" and r.region == region
            and (r.threat == "transfer" or (r.threat == "whitebox" and own(r)))
            and not is_unbounded(r)]


def transfer_places(run: RunData) -> list[tuple[str, str]]:
    """(dataset, subset) with FGSM transfer rows on the whole image."""
    return places([r for r in fgsm_matrix_rows(run) if r.threat == "transfer"])


def paper_sources(run: RunData, dataset: str, subset: str) -> list[str]:
    """The configured FGSM sources of a subset (every source when run.json lists none of
    those with rows)."""
    every = [r.source for r in in_place(fgsm_matrix_rows(run), dataset, subset)
             if r.threat == "transfer"]
    return configured_sources(run, dataset, subset) or list(dict.fromkeys(every))


@dataclass(frozen=True)
class Matrix:
    """The transfer matrix at one eps: cells[(source, classifier)] = seed -> row."""

    eps: float
    sources: list[str]
    classifiers: list[str]
    cells: dict[tuple[str, str], BySeed]


def matrix_level(rows: list[ResultRow]) -> float | None:
    """The eps of the transfer matrix: the level whose transfer rows come from the most
    sources (the run crafts on every classifier at one eps only); the middle one of a tie."""
    sources: dict[float, set[str]] = {}
    for r in rows:
        if r.threat == "transfer" and r.level > 0:
            sources.setdefault(r.level, set()).add(r.source)
    most = max((len(found) for found in sources.values()), default=0)
    return middle([level for level, found in sources.items() if len(found) == most])


def transfer_matrix(run: RunData, dataset: str, subset: str) -> Matrix | None:
    """The FGSM transfer matrix (whole image) at :func:`matrix_level`, or None when fewer
    than two sources were crafted on at that eps."""
    rows = in_place(fgsm_matrix_rows(run), dataset, subset)
    eps = matrix_level(rows)
    at = [r for r in rows if r.level == eps]
    sources = ordered({r.source for r in at})
    if eps is None or len(sources) < 2:
        return None
    grouped: dict[tuple[str, str], list[ResultRow]] = {}
    for r in at:
        grouped.setdefault((r.source, r.classifier), []).append(r)
    return Matrix(eps, sources, ordered({r.classifier for r in at}),
                  {k: by_seed(v) for k, v in grouped.items()})


def whitebox_rows(run: RunData) -> list[ResultRow]:
    """White-box rows on the whole image (FGSM and iterative, bounded) and adaptive rows."""
    return [r for r in run.results if r.threat != "none" and own(r) and not is_unbounded(r)
            and ((r.threat == "whitebox" and r.region == "image") or r.threat == "adaptive")]


def region_rows(run: RunData) -> list[ResultRow]:
    """Bounded white-box rows in every region, where some attack has box/background rows."""
    rows = [r for r in run.results if r.threat == "whitebox" and own(r)
            and not is_unbounded(r) and r.level > 0]
    confined = {(r.dataset, r.subset, r.perturbation, r.level) for r in rows
                if r.region != "image"}
    return [r for r in rows if (r.dataset, r.subset, r.perturbation, r.level) in confined]


def corruption_rows(run: RunData) -> list[ResultRow]:
    """The corruption rows (every region, severity 1..5)."""
    return [r for r in run.results if is_corruption(r)]
