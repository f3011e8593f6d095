"""The data of the "Robust fusion (beyond the paper)" table, per dataset and subset.

Rows: fg, bg, the fused classifier (``joint``), every ``joint-alpha<a>`` (alpha order), every
robust fusion method (:data:`~ctxfusion.roles.FUSION_METHODS` order), then the same family
cross-fitted on held-out images (``fg-heldout`` ...) where the run has it. Columns:

- clean accuracy;
- blur (inside the boxes) at sigma* = the configured sigma closest to the paper's 10 px at
  224 px (10 x image_size / 224);
- FGSM crafted on fg (transfer; fg itself white-box) at eps* = the transfer matrix's eps
  (run.json ``threat_model.attacks``, ``setting: transfer matrix``), else the middle non-zero
  FGSM eps;
- FGSM through each classifier's own gradient (white-box) at eps*, where the run has the rows.

Accuracies are means over seeds with the mean of the per-seed Wilson bounds
(:func:`~ctxfusion.report.select.point`). Each alpha and method row also carries its paired
difference vs fg and vs the fused classifier (held-out rows: vs fg-heldout and joint-heldout)
in each column (:func:`~ctxfusion.report.diffs.find_diff`, per seed). Several seeds are
summarised as the report does elsewhere: the mean difference and mean bounds, marked better
(worse) only when every seed's interval lies above (below) zero, else "no difference
detected".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ctxfusion.report.diffs import Diff, find_diff
from ctxfusion.report.grouping import middle, places
from ctxfusion.report.rundir import RunData
from ctxfusion.report.select import (
    PAPER_IMAGE_SIZE,
    Point,
    clean_point,
    is_fusion_classifier,
    levels,
    nearest,
    point,
)
from ctxfusion.report.style import parse_classifier
from ctxfusion.roles import FUSION_METHODS, JOINT, fusion_parts, heldout_base, heldout_name

#: the paper's blur sigma (px at 224 px) that sigma* stands for
PAPER_SIGMA = 10.0
#: run.json's ``setting`` of the FGSM attack crafted on every classifier
MATRIX_SETTING = "transfer matrix"
BETTER, WORSE, NO_DIFFERENCE = "better", "worse", "no difference detected"


@dataclass(frozen=True)
class Column:
    """One column of the table: a perturbation, a setting and a level (None: no rows)."""

    key: str
    perturbation: str
    setting: str
    level: float | None

    @property
    def title(self) -> str:
        """The column's header, e.g. ``blur sigma 2.86`` or ``FGSM transfer eps 0.02``."""
        at = "?" if self.level is None else f"{self.level:g}"
        return {"clean": "clean", "blur": f"blur sigma {at}",
                "transfer": f"FGSM transfer from fg, eps {at}",
                "whitebox": f"FGSM white-box, eps {at}"}[self.key]


@dataclass(frozen=True)
class DiffCell:
    """a - b over seeds: mean difference and mean bounds; ``verdict`` :data:`BETTER`,
    :data:`WORSE` or :data:`NO_DIFFERENCE`; ``paired`` False where a seed had no pair in
    differences.csv (Newcombe's unpaired interval from results.csv)."""

    reference: str
    diff: float
    ci_low: float
    ci_high: float
    seeds: int
    paired: bool
    verdict: str


@dataclass(frozen=True)
class FusionRow:
    """One classifier: its accuracy per column and its differences vs the references."""

    classifier: str
    heldout: bool
    cells: dict[str, Point | None]
    #: reference role (``fg``, ``joint``) -> column key -> difference (None: no data)
    versus: dict[str, dict[str, DiffCell | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class FusionTable:
    """The robust fusion table of one dataset's subset."""

    dataset: str
    subset: str
    base: str
    columns: list[Column]
    rows: list[FusionRow]


def fusion_info(run: RunData, dataset: str) -> dict[str, Any]:
    """run.json ``fusion.<dataset>`` (empty for older runs or when malformed)."""
    section = run.info.extra.get("fusion")
    entry = section.get(dataset) if isinstance(section, dict) else None
    return entry if isinstance(entry, dict) else {}


def fusion_names(run: RunData, dataset: str | None = None) -> list[str]:
    """The robust fusion and held-out classifiers with rows (of ``dataset``)."""
    return list(dict.fromkeys(r.classifier for r in run.results
                              if is_fusion_classifier(r.classifier)
                              and (dataset is None or r.dataset == dataset)))


def fused_base(run: RunData, dataset: str) -> str:
    """The fused classifier the methods build on: run.json's, else the methods' base."""
    configured = fusion_info(run, dataset).get("classifier")
    if isinstance(configured, str):
        return configured
    bases = [parts[0] for parts in map(fusion_parts, fusion_names(run, dataset)) if parts]
    return bases[0] if bases else JOINT


def blur_level(run: RunData, dataset: str, subset: str) -> float | None:
    """sigma*: the blur sigma with rows closest to 10 x image_size / 224 (not necessarily one
    the methods were trained with: fusion.blur_sigmas are kept apart on purpose)."""
    found = [s for s in levels(run, dataset, subset, "blur", "none") if s > 0]
    size = run.image_size(dataset) or PAPER_IMAGE_SIZE
    return nearest(found, PAPER_SIGMA * size / PAPER_IMAGE_SIZE)


def matrix_eps(run: RunData) -> float | None:
    """run.json's eps of the transfer matrix attack (a number), or None."""
    attacks = run.info.threat_model.attacks if run.info.threat_model else []
    for attack in attacks:
        if isinstance(attack, dict) and attack.get("setting") == MATRIX_SETTING:
            eps = attack.get("eps")
            if isinstance(eps, int | float) and not isinstance(eps, bool):
                return float(eps)
    return None


def fgsm_level(run: RunData, dataset: str, subset: str) -> float | None:
    """eps*: the transfer matrix's eps (snapped to the sweep's closest), else the middle
    non-zero FGSM eps crafted on fg."""
    found = levels(run, dataset, subset, "fgsm")
    eps = matrix_eps(run)
    if eps is None:
        return middle(found)
    closest = nearest(found, eps)
    return closest if closest is not None and math.isclose(closest, eps, rel_tol=1e-6) else eps


def columns(run: RunData, dataset: str, subset: str) -> list[Column]:
    """The table's columns: clean, blur at sigma*, FGSM transfer and white-box at eps*."""
    eps = fgsm_level(run, dataset, subset)
    return [Column("clean", "none", "none", 0.0),
            Column("blur", "blur", "none", blur_level(run, dataset, subset)),
            Column("transfer", "fgsm", "transfer", eps),
            Column("whitebox", "fgsm", "whitebox", eps)]


def _family_key(name: str, base: str) -> tuple:
    """Row order within a family: fg, bg, base, alphas by alpha, methods, others last."""
    parts = fusion_parts(name)
    if parts is not None:
        return (4, FUSION_METHODS.index(parts[1]), parts[0])
    alpha = parse_classifier(name).alpha
    if alpha is not None:
        return (3, alpha, name)
    order = {"fg": 0, "bg": 1, base: 2}
    return (order[name], 0.0, name) if name in order else (5, 0.0, name)


def row_order(names: set[str] | list[str], base: str) -> list[str]:
    """The table's classifiers in order (the family, then the held-out family); streams
    other than fg and bg, views and other derived classifiers are left out."""
    def wanted(name: str) -> bool:
        stem = heldout_base(name) or name
        return "@" not in stem and _family_key(stem, base)[0] < 5

    chosen = [n for n in set(names) if wanted(n)]
    return sorted(chosen, key=lambda n: (heldout_base(n) is not None,
                                         _family_key(heldout_base(n) or n, base)))


def cell_point(run: RunData, dataset: str, subset: str, name: str, column: Column
               ) -> Point | None:
    """One classifier's accuracy in one column (None: no rows)."""
    if column.level is None:
        return None
    if column.key == "clean":
        return clean_point(run, dataset, subset, name)
    return point(run, dataset, subset, name, column.perturbation, column.level, column.setting)


def summarise(diffs: list[Diff], reference: str) -> DiffCell | None:
    """Per-seed differences as one cell (vs ``reference``): means; better/worse only when
    every seed's interval excludes zero on the same side."""
    if not diffs:
        return None
    k = len(diffs)
    verdict = (BETTER if all(d.gain for d in diffs) else WORSE if all(d.loss for d in diffs)
               else NO_DIFFERENCE)
    return DiffCell(reference, sum(d.diff for d in diffs) / k,
                    sum(d.ci_low for d in diffs) / k, sum(d.ci_high for d in diffs) / k, k,
                    all(d.paired for d in diffs), verdict)


def diff_cell(run: RunData, dataset: str, subset: str, a: str, b: str, column: Column
              ) -> DiffCell | None:
    """a - b in one column over the seeds both have (None: no data)."""
    if column.level is None:
        return None
    seeds = sorted({r.seed for r in run.results if (r.dataset, r.subset) == (dataset, subset)
                    and r.classifier in (a, b)})
    found = [find_diff(run, dataset, subset, a, b, column.perturbation, column.level,
                       column.setting, seed) for seed in seeds]
    return summarise([d for d in found if d is not None], b)


def references(name: str, base: str) -> dict[str, str]:
    """Role -> the classifier a row is compared with (none for fg, bg and the base)."""
    stem = heldout_base(name)
    plain = stem or name
    if plain in ("fg", "bg", base):
        return {}
    refs = {"fg": "fg", JOINT: base}
    return {role: heldout_name(ref) if stem else ref for role, ref in refs.items()}


def fusion_table(run: RunData, dataset: str, subset: str) -> FusionTable:
    """The robust fusion table of one dataset's subset (``run``: every row)."""
    base = fused_base(run, dataset)
    cols = columns(run, dataset, subset)
    names = {r.classifier for r in run.results if (r.dataset, r.subset) == (dataset, subset)}
    rows = []
    for name in row_order(names, base):
        cells = {c.key: cell_point(run, dataset, subset, name, c) for c in cols}
        if not any(cells.values()):
            continue
        versus = {role: {c.key: diff_cell(run, dataset, subset, name, ref, c)
                         if cells[c.key] is not None else None for c in cols}
                  for role, ref in references(name, base).items() if ref in names}
        rows.append(FusionRow(name, heldout_base(name) is not None, cells, versus))
    return FusionTable(dataset, subset, base, cols, rows)


def fusion_places(run: RunData, dataset: str | None = None) -> list[tuple[str, str]]:
    """(dataset, subset) pairs with rows of robust fusion or held-out classifiers."""
    return places([r for r in run.results if is_fusion_classifier(r.classifier)
                   and (dataset is None or r.dataset == dataset)])


def fusion_tables(run: RunData, dataset: str | None = None) -> list[FusionTable]:
    """Every robust fusion table of the run (of ``dataset``), in report order."""
    return [fusion_table(run, d, s) for d, s in fusion_places(run, dataset)]


def format_point(p: Point | None) -> str:
    """``80.6 [76.8, 84.0]`` (percent), ``-`` without data."""
    if p is None:
        return "-"
    return f"{100 * p.accuracy:.1f} [{100 * p.ci_low:.1f}, {100 * p.ci_high:.1f}]"


def format_diff(d: DiffCell | None) -> str:
    """``+3.1 [+0.5, +5.7]`` (points; ``unpaired`` appended where so), ``-`` without data."""
    if d is None:
        return "-"
    text = f"{100 * d.diff:+.1f} [{100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}]"
    return text if d.paired else text + " unpaired"
