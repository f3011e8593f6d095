"""The rows of results.csv, differences.csv, weights.csv, pca.csv and claims.csv.

Each record's fields are its columns, in file order; how older files are read (columns they
did not write) is declared on the field (``legacy``), next to the column.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ctxfusion.schema.cells import (
    cell_of,
    choice,
    columns,
    integer,
    name,
    number,
    optional_number,
)
from ctxfusion.schema.cells import text as free_text
from ctxfusion.stats import wilson_interval

#: values of the ``threat`` column: no attacker (clean, blur, corruptions); images crafted on
#: another classifier; an attack through the classifier's own gradient; an attack adapted to a
#: defence (through an alpha head's own gradient, through a view that hides the boxes, with
#: expectation over a randomised defence)
THREATS = ("none", "transfer", "whitebox", "adaptive")
#: values of the ``region`` column: where the perturbation may change pixels (the whole image,
#: the object boxes only, everything outside them)
REGIONS = ("image", "box", "background")
#: how a joint head's cross-entropy was reduced (``alpha_reduction``)
ALPHA_REDUCTIONS = ("mean", "sum")
#: values of pca.csv's ``condition`` column
PCA_CONDITIONS = ("clean", "blur")
#: values of the ``verdict`` column of claims.csv
VERDICTS = ("reproduced", "partly", "not reproduced", "not applicable")

_UNIT = {"low": 0.0, "high": 1.0}
_SIGNED = {"low": -1.0, "high": 1.0}


def infer_threat(perturbation: str, classifier: str, source: str) -> str:
    """The threat of an older row: none for clean/blur, white-box when the attack was crafted
    on the classifier itself, transfer when it was crafted on another one."""
    if perturbation in ("none", "blur") or not source:
        return "none"
    return "whitebox" if source == classifier else "transfer"


def wilson(accuracy: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of an accuracy over ``n`` images ((0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    low, high = wilson_interval(int(round(accuracy * n)), n)
    return float(low), float(high)


def _old_threat(row: dict[str, Any]) -> str:
    return infer_threat(row["perturbation"], row["classifier"], row["source"])


def _old_region(row: dict[str, Any]) -> str:
    """Older files: blur acted inside the boxes, every other perturbation on the image."""
    return "box" if row["perturbation"] == "blur" else "image"


@dataclass(frozen=True, kw_only=True)
class ResultRow:
    """One accuracy measurement (a row of results.csv). Older files lack ``threat``
    (inferred: :func:`infer_threat`), ``region`` (box for blur, else image), ``seed`` (0)
    and the interval (Wilson's)."""

    experiment: str = free_text()
    dataset: str = name()
    subset: str = name()
    classifier: str = name()
    source: str = free_text()
    threat: str = choice(THREATS, legacy=_old_threat)
    perturbation: str = name()
    region: str = choice(REGIONS, legacy=_old_region)
    level: float = number(low=0.0)
    seed: int = integer(legacy=0)
    accuracy: float = number(**_UNIT)
    ci_low: float = number(**_UNIT, legacy=lambda row: wilson(row["accuracy"], row["n"])[0])
    ci_high: float = number(**_UNIT, legacy=lambda row: wilson(row["accuracy"], row["n"])[1])
    n: int = integer(low=0)

    def problem(self) -> str | None:
        """What is inconsistent across columns, or None."""
        if self.ci_low > self.ci_high:
            return f"ci_low = {self.ci_low} is above ci_high = {self.ci_high}"
        return None


@dataclass(frozen=True, kw_only=True)
class DifferenceRow:
    """A paired comparison of two classifiers on the same images (a row of differences.csv)."""

    experiment: str = free_text()
    dataset: str = name()
    subset: str = name()
    source: str = free_text()
    threat: str = choice(THREATS)
    perturbation: str = name()
    region: str = choice(REGIONS, legacy=_old_region)
    level: float = number(low=0.0)
    seed: int = integer()
    classifier_a: str = name()
    classifier_b: str = name()
    acc_a: float = number(**_UNIT)
    acc_b: float = number(**_UNIT)
    diff: float = number(**_SIGNED)
    ci_low: float = number(**_SIGNED)
    ci_high: float = number(**_SIGNED)
    n: int = integer(low=0)
    a_only: int = integer(low=0)
    b_only: int = integer(low=0)
    mcnemar_p: float = number(**_UNIT)


@dataclass(frozen=True, kw_only=True)
class WeightRow:
    """One stream's contribution to a joint head (a row of weights.csv); ``stream`` is any
    stream name (``fg``, ``bg``, ``scene``, ...).

    Older files carry only the mean |w|: then ``alpha_sum``, ``alpha_mean``,
    ``scaled_weight`` and ``logit_share`` are None, ``seed`` is 0 and ``alpha_reduction`` is
    the run's (the reader passes run.json's; else ``mean``: the loss averaged the CE then).
    """

    dataset: str = name()
    subset: str = name()
    classifier: str = name()
    alpha: float = number(low=0.0)
    alpha_reduction: str = choice(ALPHA_REDUCTIONS, legacy="mean")
    alpha_sum: float | None = optional_number(low=0.0)
    alpha_mean: float | None = optional_number(low=0.0)
    seed: int = integer(legacy=0)
    stream: str = name()
    mean_abs_weight: float = number(low=0.0)
    scaled_weight: float | None = optional_number(low=0.0)
    logit_share: float | None = optional_number(**_UNIT)


@dataclass(frozen=True, kw_only=True)
class PcaRow:
    """One feature vector of a stream (any stream name) projected on the first two principal
    components (a row of pca.csv)."""

    dataset: str = name()
    stream: str = name()
    condition: str = choice(PCA_CONDITIONS)
    label: str = free_text()
    pc1: float = number()
    pc2: float = number()


@dataclass(frozen=True)
class ClaimRow:
    """One row of claims.csv: a claim's verdict on one dataset of one run."""

    claim: str = name()
    text: str = free_text()
    run: str = free_text()
    dataset: str = name()
    verdict: str = choice(VERDICTS)
    #: the one number that decided the verdict (claims.csv of older runs: empty)
    decided_by: str = free_text(legacy="")
    evidence: str = free_text()


RESULT_COLUMNS = columns(ResultRow)
DIFFERENCE_COLUMNS = columns(DifferenceRow)
WEIGHT_COLUMNS = columns(WeightRow)
PCA_COLUMNS = columns(PcaRow)
CLAIM_COLUMNS = columns(ClaimRow)
#: the columns of results.csv that older runs did not write (they are inferred)
NEW_RESULT_COLUMNS = tuple(f.name for f in fields(ResultRow) if not cell_of(f).required)
