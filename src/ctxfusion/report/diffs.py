"""Looking up the difference of two classifiers' accuracies, with its 95 % interval.

differences.csv (the writer's paired comparisons on the same images: Newcombe's paired
interval, exact McNemar p) is used when it has the pair, in either order. Otherwise (older runs,
pairs the writer does not compare) the difference is computed from results.csv with Newcombe's
*unpaired* square-and-add interval from the two Wilson intervals; that interval is wider than the
paired one when the classifiers are positively correlated (conservative) and has no p-value.

Only rows of the paper's kind count (:func:`~ctxfusion.report.select.is_standard`: the
perturbation's default region, no adaptive attack). Settings (see
:mod:`ctxfusion.report.select`): ``none`` (clean, blur), ``transfer`` (crafted on ``source``;
written by the writer with ``source`` = the crafting classifier), ``whitebox`` (each
classifier through its own gradient; the writer's ``source`` is ``own``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ctxfusion.report.rundir import RunData
from ctxfusion.report.select import is_standard, point
from ctxfusion.schema import DifferenceRow


@dataclass(frozen=True)
class Diff:
    """acc_a - acc_b (fractions) with its interval; ``paired`` False: unpaired fallback."""

    a: str
    b: str
    acc_a: float
    acc_b: float
    diff: float
    ci_low: float
    ci_high: float
    p: float | None
    n: int
    paired: bool

    @property
    def gain(self) -> bool:
        """a is better than b: the interval lies entirely above zero."""
        return self.ci_low > 0

    @property
    def loss(self) -> bool:
        """a is worse than b: the interval lies entirely below zero."""
        return self.ci_high < 0

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.gain or self.loss

    def text(self) -> str:
        """E.g. ``joint - fg = +6.3 [+2.1, +10.4] pts, p = 0.004`` (points = percent)."""
        core = (f"{self.a} - {self.b} = {100 * self.diff:+.1f} [{100 * self.ci_low:+.1f}, "
                f"{100 * self.ci_high:+.1f}] pts")
        if not self.paired:
            return core + " (unpaired)"
        p = format_p(self.p)
        return core + (f", p {p}" if p.startswith("<") else f", p = {p}")


def format_p(p: float | None) -> str:
    """A p-value with two significant digits (``< 1e-4`` below that)."""
    if p is None or math.isnan(p):
        return "n/a"
    return "< 1e-4" if p < 1e-4 else f"{p:.2g}"


def _from_row(row: DifferenceRow, swap: bool) -> Diff:
    if not swap:
        return Diff(row.classifier_a, row.classifier_b, row.acc_a, row.acc_b, row.diff,
                    row.ci_low, row.ci_high, row.mcnemar_p, row.n, True)
    return Diff(row.classifier_b, row.classifier_a, row.acc_b, row.acc_a, -row.diff,
                -row.ci_high, -row.ci_low, row.mcnemar_p, row.n, True)


def _setting_of(row: DifferenceRow, setting: str, source: str) -> bool:
    if setting == "none":
        return row.threat == "none"
    if setting == "transfer":
        return row.threat == "transfer" and row.source == source
    return row.threat == "whitebox"


#: rows of differences.csv by (dataset, subset, perturbation, seed, {a, b}), in file order
PairIndex = dict[tuple[str, str, str, int, frozenset[str]], list[DifferenceRow]]


def pair_index(run: RunData) -> PairIndex:
    """The run's differences by pair, built once per list of rows (a report asks for
    thousands of pairs: a scan of every row each time took a third of its build)."""
    rows = run.differences or []
    cached = run.__dict__.get("_pair_index")
    if cached is None or cached[0] is not rows or cached[1] != len(rows):
        index: PairIndex = {}
        for row in rows:
            key = (row.dataset, row.subset, row.perturbation, row.seed,
                   frozenset((row.classifier_a, row.classifier_b)))
            index.setdefault(key, []).append(row)
        cached = (rows, len(rows), index)
        run.__dict__["_pair_index"] = cached
    return cached[2]


def paired_row(run: RunData, dataset: str, subset: str, a: str, b: str, perturbation: str,
               level: float, setting: str, seed: int, source: str = "fg") -> Diff | None:
    """The differences.csv comparison of a and b (either order), or None."""
    best: tuple[int, Diff] | None = None
    for row in pair_index(run).get((dataset, subset, perturbation, seed, frozenset((a, b))),
                                   []):
        if (not math.isclose(row.level, level, rel_tol=1e-9, abs_tol=1e-12)
                or not is_standard(row) or not _setting_of(row, setting, source)):
            continue
        found = _from_row(row, swap=row.classifier_a != a)
        if best is None or row.n >= best[0]:
            best = (row.n, found)
    return best[1] if best else None


def unpaired(run: RunData, dataset: str, subset: str, a: str, b: str, perturbation: str,
             level: float, setting: str, seed: int, source: str = "fg") -> Diff | None:
    """The difference from results.csv with Newcombe's unpaired interval (or None)."""
    pa = point(run, dataset, subset, a, perturbation, level, setting, source, seed)
    pb = point(run, dataset, subset, b, perturbation, level, setting, source, seed)
    if pa is None or pb is None:
        return None
    d = pa.accuracy - pb.accuracy
    low = d - math.hypot(pa.accuracy - pa.ci_low, pb.ci_high - pb.accuracy)
    high = d + math.hypot(pa.ci_high - pa.accuracy, pb.accuracy - pb.ci_low)
    return Diff(a, b, pa.accuracy, pb.accuracy, d, max(-1.0, low), min(1.0, high), None,
                min(pa.n, pb.n), False)


def find_diff(run: RunData, dataset: str, subset: str, a: str, b: str, perturbation: str,
              level: float, setting: str, seed: int, source: str = "fg") -> Diff | None:
    """a - b at one level for one seed: paired from differences.csv, else unpaired."""
    args = (run, dataset, subset, a, b, perturbation, level, setting, seed, source)
    return paired_row(*args) or unpaired(*args)
