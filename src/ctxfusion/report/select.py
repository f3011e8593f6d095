"""Selecting and aggregating results.csv rows for the figures, the tables and the claims.

A *setting* says which rows of one perturbation belong together (schema: ``threat``):

- ``none``: no attacker (clean and blurred images);
- ``transfer``: images crafted on ``source`` (default ``fg``) and fed to every classifier: the
  other classifiers' ``transfer`` rows plus the source's own (white-box) row, as in the paper;
- ``whitebox``: every classifier attacked through its own gradient (``source`` = itself).

Only the paper's kind of row belongs to a setting (:func:`is_standard`): FGSM and the other
attacks on the whole image, blur inside the boxes, no adaptive attack, no corruption and no
unbounded sanity attack; the report's robustness sections read the other rows themselves.
:func:`paper_view` is the run as the paper's figures, tables and claims see it. Neither sees the
classifiers beyond the paper (:func:`is_fusion_classifier`: robust fusion methods such as
``joint-gate`` and classifiers cross-fitted on held-out images such as ``joint-heldout``); only
the robust fusion section (:mod:`ctxfusion.report.fusion`) reads them.

Several seeds (repeats of head training) are averaged: a :class:`Point` holds the mean
accuracy, the mean of the per-seed Wilson bounds (the band the figures shade) and the spread
over seeds. Rows repeating a key keep the one with the largest n (the last on ties).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from ctxfusion.report.rundir import RunData
from ctxfusion.report.style import classifier_sort_key, parse_classifier
from ctxfusion.roles import fusion_parts, heldout_base
from ctxfusion.schema import THREATS, ResultRow

SETTINGS = THREATS  # a comparison setting is named after the threat it holds
#: the eps (pixel space) the trade-off figure and the claims evaluate at: the sweep's closest
REFERENCE_EPS = 0.02
#: the paper's image size: its blur sigmas are in pixels at 224 px
PAPER_IMAGE_SIZE = 224
#: an attack eps (pixel space) from which on the attack is the unbounded sanity check
UNBOUNDED_EPS = 0.5
#: perturbations without an attacker that are not corruptions
NOT_CORRUPTIONS = ("none", "blur")
#: run.json's ``images`` of an FGSM source run on every test image (a configured source)
EVERY_IMAGE = "every test image of the subset"


class RowLike(Protocol):
    """What :func:`is_standard` reads of a results.csv or differences.csv row."""

    threat: str
    perturbation: str
    region: str
    level: float


def default_region(perturbation: str) -> str:
    """The paper's region of a perturbation: the boxes for blur, else the whole image."""
    return "box" if perturbation == "blur" else "image"


def is_corruption(row: RowLike) -> bool:
    """A common corruption (no attacker, neither clean nor the paper's blur)."""
    return row.threat == "none" and row.perturbation not in NOT_CORRUPTIONS


def is_unbounded(row: RowLike) -> bool:
    """An attack row whose eps covers (half) the pixel range: the unbounded sanity attack."""
    return row.threat != "none" and row.level >= UNBOUNDED_EPS


def is_standard(row: RowLike) -> bool:
    """A row of the paper's kind: the perturbation's default region, no adaptive attack, no
    corruption, no unbounded attack."""
    return (row.region == default_region(row.perturbation) and row.threat != "adaptive"
            and not is_corruption(row) and not is_unbounded(row))


def listed_sources(run: RunData) -> set[str] | None:
    """The FGSM sources run.json says ran on every test image, or None when run.json does
    not say (older runs: every source of a transfer row counts as configured)."""
    attacks = (run.info.threat_model.attacks if run.info.threat_model else [])
    fgsm = [a for a in attacks if isinstance(a, dict) and a.get("name") == "fgsm"]
    if not any("images" in a for a in fgsm):
        return None
    return {str(a.get("source")) for a in fgsm if a.get("images") == EVERY_IMAGE
            and a.get("evaluated_on") != [a.get("source")]}


def configured_sources(run: RunData, dataset: str, subset: str) -> list[str]:
    """The configured FGSM sources with transfer rows (whole image) in a dataset's subset,
    in order of appearance (run.json's list; older runs: every such source)."""
    listed = listed_sources(run)
    found = dict.fromkeys(r.source for r in run.results if (r.dataset, r.subset, r.perturbation)
                          == (dataset, subset, "fgsm") and r.threat == "transfer"
                          and is_standard(r))
    return [s for s in found if listed is None or s in listed]


def is_fusion_classifier(name: str) -> bool:
    """A robust fusion method (``joint-gate``) or a classifier cross-fitted on held-out
    images (``joint-heldout``), views included: shown in the robust fusion section only."""
    stem = name.partition("@")[0]
    return fusion_parts(stem) is not None or heldout_base(stem) is not None


def without_fusion(run: RunData) -> RunData:
    """The run without the rows of :func:`is_fusion_classifier` classifiers, as the classifier
    or as the source an attack was crafted on (results.csv, differences.csv on either side,
    weights.csv): what the robustness sections read."""
    differences = (None if run.differences is None else
                   [d for d in run.differences if not is_fusion_classifier(d.classifier_a)
                    and not is_fusion_classifier(d.classifier_b)
                    and not is_fusion_classifier(d.source)])
    weights = (None if run.weights is None else
               [w for w in run.weights if not is_fusion_classifier(w.classifier)])
    return replace(run, results=[r for r in run.results if not is_fusion_classifier(r.classifier)
                                 and not is_fusion_classifier(r.source)],
                   differences=differences, weights=weights)


def paper_view(run: RunData) -> RunData:
    """The run as the paper's figures, tables and claims see it: only :func:`is_standard`
    rows of results.csv and differences.csv, without :func:`is_fusion_classifier` classifiers."""
    run = without_fusion(run)
    differences = (None if run.differences is None else
                   [d for d in run.differences if is_standard(d)])
    return replace(run, results=[r for r in run.results if is_standard(r)],
                   differences=differences)


@dataclass(frozen=True)
class Point:
    """One accuracy, averaged over seeds, with its interval and the spread over seeds."""

    level: float
    accuracy: float
    ci_low: float
    ci_high: float
    seed_min: float
    seed_max: float
    seeds: int
    n: int

    def error_bar(self) -> list[list[float]]:
        """Its interval as matplotlib's asymmetric error bar: ``[[below], [above]]``."""
        return [[self.accuracy - self.ci_low], [self.ci_high - self.accuracy]]


def matches(row: ResultRow, setting: str, source: str = "fg") -> bool:
    """Whether ``row`` belongs to ``setting`` (module docstring)."""
    if not is_standard(row):
        return False
    if setting == "none":
        return row.threat == "none"
    if setting == "transfer":
        return row.source == source and (row.threat == "transfer" or row.classifier == source)
    if setting == "whitebox":
        return row.threat == "whitebox" and row.source == row.classifier
    raise ValueError(f"setting {setting!r}; valid: {', '.join(SETTINGS)}")


def pick(old: ResultRow | None, new: ResultRow) -> ResultRow:
    """Of two rows with the same key: the one with the larger n, the later one on ties."""
    return new if old is None or new.n >= old.n else old


def by_seed(rows: Iterable[ResultRow]) -> dict[int, ResultRow]:
    """seed -> row (a repeated seed keeps the row with the larger n, the later on ties)."""
    out: dict[int, ResultRow] = {}
    for r in rows:
        out[r.seed] = pick(out.get(r.seed), r)
    return out


def aggregate(by_seed: dict[int, ResultRow]) -> Point:
    """Mean over seeds of the accuracy and of the interval bounds; min/max over seeds."""
    rows = list(by_seed.values())
    accs = [r.accuracy for r in rows]
    return Point(level=rows[0].level, accuracy=sum(accs) / len(rows),
                 ci_low=sum(r.ci_low for r in rows) / len(rows),
                 ci_high=sum(r.ci_high for r in rows) / len(rows),
                 seed_min=min(accs), seed_max=max(accs), seeds=len(rows),
                 n=min(r.n for r in rows))


def select(run: RunData, dataset: str, subset: str, perturbation: str, setting: str,
           keep: Callable[[str], bool] = lambda name: True, source: str = "fg",
           seed: int | None = None) -> dict[str, dict[float, dict[int, ResultRow]]]:
    """classifier -> level -> seed -> row, for one dataset, subset, perturbation, setting."""
    out: dict[str, dict[float, dict[int, ResultRow]]] = {}
    for row in run.results:
        if (row.dataset, row.subset, row.perturbation) != (dataset, subset, perturbation):
            continue
        if not matches(row, setting, source) or not keep(row.classifier):
            continue
        if seed is not None and row.seed != seed:
            continue
        seeds = out.setdefault(row.classifier, {}).setdefault(row.level, {})
        seeds[row.seed] = pick(seeds.get(row.seed), row)
    return out


def curves(run: RunData, dataset: str, subset: str, perturbation: str, setting: str,
           keep: Callable[[str], bool] = lambda name: True,
           source: str = "fg") -> dict[str, list[Point]]:
    """classifier -> points sorted by level; the clean accuracy fills level 0 when missing."""
    chosen = select(run, dataset, subset, perturbation, setting, keep, source)
    clean = select(run, dataset, subset, "none", "none", lambda n: n in chosen)
    for name, levels in chosen.items():
        if 0.0 not in levels and clean.get(name, {}).get(0.0):
            levels[0.0] = clean[name][0.0]
    return {name: [aggregate(chosen[name][lv]) for lv in sorted(chosen[name])]
            for name in sorted(chosen, key=classifier_sort_key)}


def point(run: RunData, dataset: str, subset: str, classifier: str, perturbation: str,
          level: float, setting: str, source: str = "fg", seed: int | None = None
          ) -> Point | None:
    """One classifier's accuracy at one level (averaged over seeds unless ``seed`` is given)."""
    chosen = select(run, dataset, subset, perturbation, setting, lambda n: n == classifier,
                    source, seed)
    by_seed = chosen.get(classifier, {}).get(level)
    if not by_seed and perturbation != "none" and level == 0.0:
        return point(run, dataset, subset, classifier, "none", 0.0, "none", source, seed)
    return aggregate(by_seed) if by_seed else None


def clean_point(run: RunData, dataset: str, subset: str, classifier: str,
                seed: int | None = None) -> Point | None:
    """Clean accuracy; else FGSM at eps 0 (the same images), crafted on fg or on itself."""
    for perturbation, setting in (("none", "none"), ("fgsm", "transfer"), ("fgsm", "whitebox")):
        found = point(run, dataset, subset, classifier, perturbation, 0.0, setting, seed=seed)
        if found is not None:
            return found
    return None


def levels(run: RunData, dataset: str, subset: str, perturbation: str,
           setting: str = "transfer", source: str = "fg") -> list[float]:
    """The sorted levels of a sweep."""
    return sorted({r.level for r in run.results if (r.dataset, r.subset, r.perturbation)
                   == (dataset, subset, perturbation) and matches(r, setting, source)})


def nearest(values: Iterable[float], target: float, log: bool = False) -> float | None:
    """The value closest to ``target`` (in log scale with ``log``; the larger one on ties)."""
    values = [v for v in values if not log or v > 0]
    if not values:
        return None
    if log:
        return min(values, key=lambda v: (abs(math.log(v / target)), -v))
    return min(values, key=lambda v: (abs(v - target), -v))


def reference_eps(run: RunData, dataset: str, subset: str) -> float | None:
    """The FGSM eps of the sweep closest to :data:`REFERENCE_EPS` (excluding 0)."""
    return nearest([e for e in levels(run, dataset, subset, "fgsm") if e > 0], REFERENCE_EPS)


def sigma_at_224(run: RunData, dataset: str, sigma: float) -> float:
    """A blur sigma in pixels at the dataset's size, as the paper's sigma at 224 px (the same
    value when run.json records no image size)."""
    size = run.image_size(dataset)
    return sigma * PAPER_IMAGE_SIZE / size if size else sigma


@dataclass(frozen=True)
class AlphaPair:
    """An alpha in the run's convention and in both conventions (sum: the paper's)."""

    alpha: float
    reduction: str
    alpha_sum: float | None
    alpha_mean: float | None
    exact: bool  # False: estimated from run.json's n_train (older weights.csv)

    def label(self) -> str:
        """E.g. ``10 (mean 0.004)``: the paper's (sum) value, the mean-convention value."""
        if self.alpha_sum is None or self.alpha_mean is None:
            return f"{self.alpha:g} ({self.reduction})"
        approx = "" if self.exact else "~"
        return f"{approx}{format_alpha(self.alpha_sum)} (mean {approx}{self.alpha_mean:.2g})"


def format_alpha(value: float) -> str:
    """An alpha with 3 significant digits, without exponent notation up to 10^7."""
    return f"{value:,.0f}" if 1000 <= value < 1e7 else f"{value:.3g}"


def _train_size(run: RunData, dataset: str, subset: str) -> float | None:
    """Training images of a subset: run.json n_train, scaled by the subset's share of classes."""
    n_train = run.dataset_info(dataset).n_train
    if n_train is None or n_train <= 0:
        return None
    everything, mine = run.subset_classes(dataset, "all"), run.subset_classes(dataset, subset)
    if subset != "all" and everything and mine:
        return float(n_train) * len(mine) / len(everything)
    return float(n_train)


def alpha_pair(run: RunData, dataset: str, subset: str, classifier: str) -> AlphaPair | None:
    """The alpha of ``joint-alpha<a>`` in both conventions (weights.csv; else estimated)."""
    alpha = parse_classifier(classifier).alpha
    if alpha is None:
        return None
    for w in run.weights or []:
        if ((w.dataset, w.subset, w.classifier) == (dataset, subset, classifier)
                and w.alpha_sum is not None and w.alpha_mean is not None):
            return AlphaPair(alpha, w.alpha_reduction, w.alpha_sum, w.alpha_mean, True)
    reduction = run.alpha_reduction
    size = _train_size(run, dataset, subset)
    if size is None:
        return AlphaPair(alpha, reduction, None, None, False)
    if reduction == "sum":
        return AlphaPair(alpha, reduction, alpha, alpha / size, False)
    return AlphaPair(alpha, reduction, alpha * size, alpha, False)
