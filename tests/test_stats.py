"""Accuracy intervals and paired comparisons against published values and their properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctxfusion.errors import DataError
from ctxfusion.stats import PairedDifference, paired_difference, wilson_interval


def table(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness vectors of classifiers a and b with the given paired 2x2 counts."""
    a = [True] * both + [True] * a_only + [False] * b_only + [False] * neither
    b = [True] * both + [False] * a_only + [True] * b_only + [False] * neither
    return np.array(a), np.array(b)


def wilson_closed_form(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson (1927) written out, as an independent check of the scipy-based function."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_wilson_known_value():
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # textbook 8/10 example
    for k, n in [(0, 7), (3, 7), (7, 7), (450, 800)]:
        assert wilson_interval(k, n) == pytest.approx(wilson_closed_form(k, n), abs=1e-9)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 20), (5, 20), (20, 20), (317, 1000)])
def test_wilson_contains_the_estimate_inside_unit_interval(k, n):
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert low < high
    narrow = wilson_interval(k, n, confidence=0.5)
    assert low <= narrow[0] <= narrow[1] <= high  # a lower level gives a narrower interval


def test_wilson_empty_is_nan():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_newcombe_reproduces_published_example():
    """Cavo et al. (2012) via Fagerland, Lydersen & Laake, Statistical Analysis of Contingency
    Tables (2017), ch. 8: table [[59, 6], [16, 80]]; Newcombe square-and-add (Newcombe 1998
    method 10) 95 % CI -0.1186 to -0.0046; McNemar exact conditional P = 0.052479."""
    result = paired_difference(*table(59, 6, 16, 80))
    assert result.n == 161 and (result.a_only, result.b_only) == (6, 16)
    assert result.diff == pytest.approx(-0.0621, abs=1e-4)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.1186, -0.0046), abs=1e-4)
    assert result.mcnemar_p == pytest.approx(0.052479, abs=1e-6)
    assert result.significant  # the interval excludes 0 although McNemar's P is just above 0.05


@pytest.mark.parametrize("counts", [(59, 6, 16, 80), (1, 1, 7, 12), (0, 3, 0, 5), (9, 0, 0, 0),
                                    (0, 0, 0, 4), (30, 20, 2, 1)])
def test_paired_interval_properties(counts):
    result = paired_difference(*table(*counts))
    assert isinstance(result, PairedDifference)
    assert -1.0 <= result.ci_low <= result.diff <= result.ci_high <= 1.0
    assert result.diff == pytest.approx(result.acc_a - result.acc_b)
    # Swapping a and b negates the difference and its interval; the p-value is unchanged.
    a, b = table(*counts)
    swapped = paired_difference(b, a)
    assert swapped.diff == pytest.approx(-result.diff)
    assert (swapped.ci_low, swapped.ci_high) == pytest.approx((-result.ci_high, -result.ci_low))
    assert (swapped.a_only, swapped.b_only) == (result.b_only, result.a_only)
    assert swapped.mcnemar_p == pytest.approx(result.mcnemar_p)


def test_interval_shrinks_with_more_images():
    a, b = table(12, 5, 2, 6)
    widths = []
    for k in (1, 4, 16, 64):
        result = paired_difference(np.tile(a, k), np.tile(b, k))
        assert result.diff == pytest.approx(3 / 25)
        widths.append(result.ci_high - result.ci_low)
    assert all(w1 > w2 for w1, w2 in zip(widths, widths[1:], strict=False))


def test_identical_classifiers_do_not_differ():
    rng = np.random.default_rng(0)
    correct = rng.random(50) < 0.7
    result = paired_difference(correct, correct.copy())
    assert result.diff == 0.0 and result.a_only == result.b_only == 0
    assert result.ci_low < 0.0 < result.ci_high
    assert result.mcnemar_p == 1.0 and not result.significant


def test_mcnemar_exact_p_value():
    result = paired_difference(*table(5, 10, 0, 5))
    assert result.mcnemar_p == pytest.approx(2 * 0.5**10)
    assert paired_difference(*table(5, 3, 3, 5)).mcnemar_p == 1.0


def test_clear_difference_is_significant_and_tiny_one_is_not():
    clear = paired_difference(*table(95, 55, 5, 45))  # 200 images: a right on 150, b on 100
    assert (clear.acc_a, clear.acc_b) == (0.75, 0.5)
    assert clear.significant and clear.ci_low > 0 and clear.mcnemar_p < 1e-6
    tiny = paired_difference(*table(100, 3, 2, 95))
    assert not tiny.significant and tiny.ci_low < 0 < tiny.ci_high and tiny.mcnemar_p > 0.5


def test_accepts_torch_and_integer_vectors():
    a, b = table(30, 20, 2, 1)
    expected = paired_difference(a, b)
    assert paired_difference(torch.from_numpy(a), torch.from_numpy(b)) == expected
    assert paired_difference(a.astype(np.int64), b.astype(np.int64)) == expected
    preds, labels = torch.tensor([1, 2, 3, 0]), torch.tensor([1, 2, 0, 0])
    assert paired_difference(preds == labels, labels == labels).b_only == 1


def test_empty_and_mismatched_inputs():
    empty = paired_difference(np.array([], bool), np.array([], bool))
    assert (empty.n, empty.a_only, empty.b_only, empty.mcnemar_p) == (0, 0, 0, 1.0)
    for value in (empty.acc_a, empty.acc_b, empty.diff, empty.ci_low, empty.ci_high):
        assert math.isnan(value)
    assert not empty.significant
    with pytest.raises(DataError, match=r"5 .*3|3 .*5"):
        paired_difference(np.ones(5, bool), np.ones(3, bool))
    with pytest.raises(DataError, match="0 and 1"):
        paired_difference(np.array([0, 2]), np.array([0, 1]))
