"""Uncertainty for results tables: accuracy intervals and paired classifier comparisons.

* One accuracy (k of n test images right) gets the Wilson score interval: unlike the Wald
  interval it stays inside [0, 1] and keeps close to nominal coverage at small n and near 0 or 1.
* Two classifiers scored on the *same* images are paired, not independent: their difference
  gets Newcombe's (1998) hybrid score interval for paired proportions (method 10), which
  combines the two Wilson intervals and the phi correlation of the 2x2 table.
* Whether they differ is tested with the exact (binomial) McNemar test on the discordant
  images, valid for any number of them (the chi-squared version needs many).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctxfusion.errors import DataError

__all__ = ["PairedDifference", "paired_difference", "wilson_interval"]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (default 95 %) of the proportion ``successes / n``;
    ``(nan, nan)`` when ``n == 0``."""
    if n == 0:
        return math.nan, math.nan
    ci = _binomtest()(int(successes), int(n)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


@dataclass(frozen=True)
class PairedDifference:
    """Classifier a against classifier b on the same ``n`` test images."""

    acc_a: float
    acc_b: float
    diff: float  # acc_a - acc_b
    ci_low: float  # interval of diff (Newcombe 1998, method 10)
    ci_high: float
    n: int
    a_only: int  # images a classifies correctly and b does not
    b_only: int  # images b classifies correctly and a does not
    mcnemar_p: float  # exact two-sided McNemar p-value

    @property
    def significant(self) -> bool:
        """Whether the interval of the difference excludes 0 (False when undefined)."""
        return self.ci_low > 0 or self.ci_high < 0


def _as_bool_vector(values: Any, name: str) -> np.ndarray:
    """A 1-D boolean numpy array from a numpy array, torch tensor or sequence."""
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of booleans, got shape {array.shape}")
    if array.dtype != np.bool_:
        if array.size and not np.isin(array, (0, 1)).all():
            raise DataError(f"{name} must hold booleans (or 0/1), got values other than 0 and 1")
        array = array.astype(bool)
    return array


def paired_difference(
    correct_a: Any, correct_b: Any, confidence: float = 0.95
) -> PairedDifference:
    """Compare two classifiers scored on the same images.

    ``correct_a`` and ``correct_b`` are boolean arrays (numpy or torch) of the same length
    ``n``: whether classifier a / b classified each test image correctly.
    """
    a = _as_bool_vector(correct_a, "correct_a")
    b = _as_bool_vector(correct_b, "correct_b")
    if len(a) != len(b):
        raise DataError(
            f"paired comparison needs the same images for both classifiers: "
            f"correct_a has {len(a)} entries, correct_b has {len(b)}"
        )
    n = len(a)
    if n == 0:
        nan = math.nan
        return PairedDifference(nan, nan, nan, nan, nan, 0, 0, 0, 1.0)

    both = int(np.sum(a & b))
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    neither = n - both - a_only - b_only
    p1, p2 = (both + a_only) / n, (both + b_only) / n
    diff = p1 - p2
    low, high = _newcombe_paired_interval(both, a_only, b_only, neither, confidence)

    discordant = a_only + b_only
    p_value = 1.0 if discordant == 0 else float(
        _binomtest()(min(a_only, b_only), discordant, 0.5, alternative="two-sided").pvalue
    )
    return PairedDifference(
        acc_a=p1, acc_b=p2, diff=diff, ci_low=low, ci_high=high, n=n,
        a_only=a_only, b_only=b_only, mcnemar_p=min(1.0, p_value),
    )


def _newcombe_paired_interval(
    both: int, a_only: int, b_only: int, neither: int, confidence: float
) -> tuple[float, float]:
    """Interval of ``p1 - p2`` for the paired 2x2 table ``[[both, a_only], [b_only, neither]]``.

    Newcombe RG (1998), "Improved confidence intervals for the difference between binomial
    proportions based on paired data", Stat Med 17:2635-2650, method 10 (the hybrid score or
    "square-and-add" interval; Fagerland, Lydersen & Laake 2014 recommend it). Written out by
    hand because no library we depend on implements it (scipy stops at one proportion's
    interval). With Wilson intervals (l1, u1) of p1 and (l2, u2) of p2:

        L = D - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        U = D + sqrt((p2 - l2)^2 - 2 phi (p2 - l2)(u1 - p1) + (u1 - p1)^2)

    where phi is the correlation of the 2x2 table as Newcombe defines it: numerator
    ``A = both*neither - a_only*b_only`` shrunk to ``A - n/2`` when ``A > n/2``, to 0 when
    ``0 <= A <= n/2`` and kept when ``A < 0``; phi = 0 when a margin of the table is zero.
    """
    n = both + a_only + b_only + neither
    s1, s2 = both + a_only, both + b_only  # successes of a, of b
    p1, p2 = s1 / n, s2 / n
    l1, u1 = wilson_interval(s1, n, confidence)
    l2, u2 = wilson_interval(s2, n, confidence)

    margins = (s1, n - s1, s2, n - s2)
    if min(margins) == 0:
        phi = 0.0
    else:
        cross = both * neither - a_only * b_only
        if cross > n / 2:
            cross = cross - n / 2
        elif cross >= 0:
            cross = 0.0
        phi = cross / math.sqrt(math.prod(float(m) for m in margins))

    diff = p1 - p2
    low_term = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    high_term = (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2
    low = diff - math.sqrt(max(low_term, 0.0))
    high = diff + math.sqrt(max(high_term, 0.0))
    return max(-1.0, low), min(1.0, high)


def _binomtest():
    """scipy.stats.binomtest, imported on first use (scipy.stats takes a second to import)."""
    from scipy.stats import binomtest

    return binomtest
