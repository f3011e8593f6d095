"""Paired comparisons of classifiers on the same test images (``differences.csv``).

A claim such as "joint beats fg under blur" compares two accuracies measured on the same
images, so the comparison is paired: per image, both right, both wrong, or only one right.
Each row gives ``acc_a - acc_b`` with a paired 95 % interval and the exact McNemar p-value
(:func:`ctxfusion.stats.paired_difference`); a difference is a finding only when its interval
excludes zero.

Three settings group the results that may be compared:
- no attacker (``threat`` none: clean and blurred images), per perturbation and level;
- images crafted on one source model (``threat`` transfer, ``source`` = that model; the
  source itself is attacked white-box there, every other classifier sees transferred images);
- every classifier attacked through its own gradient (``threat`` whitebox, ``source`` own).
Within a setting, outcomes are paired on the test images both were measured on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ctxfusion.stats import paired_difference


class OutcomeKey(NamedTuple):
    """What one results row measured (the key of its per-image outcomes)."""

    dataset: str
    subset: str
    classifier: str
    source: str
    threat: str
    perturbation: str
    level: float
    seed: int


@dataclass(frozen=True)
class Outcome:
    """Per test image (``rows``: indices into the split), whether it was classified right."""

    rows: torch.Tensor
    correct: torch.Tensor


def compared_pairs(classifiers: set[str]) -> list[tuple[str, str]]:
    """(a, b) pairs a claim compares: every classifier against fg; every alpha-regularised
    joint head against bg, joint and fg-advtrain; joint against bg."""
    pairs = [(name, "fg") for name in sorted(classifiers) if name != "fg"]
    pairs += [(name, other) for name in sorted(classifiers) if name.startswith("joint-alpha")
              for other in ("bg", "joint", "fg-advtrain")]
    pairs.append(("joint", "bg"))
    return [(a, b) for a, b in pairs if a in classifiers and b in classifiers]


def _settings(outcomes: Mapping[OutcomeKey, Outcome]) -> Iterator[tuple[tuple, dict]]:
    """(setting, {classifier: outcome}) for each comparison setting (module docstring)."""
    groups: dict[tuple, dict[str, Outcome]] = {}
    for key, outcome in outcomes.items():
        common = (key.subset, key.perturbation, key.level, key.seed)
        if key.threat == "none":
            groups.setdefault(("", "none", *common), {})[key.classifier] = outcome
            continue
        groups.setdefault((key.source, "transfer", *common), {})[key.classifier] = outcome
        if key.threat == "whitebox":
            groups.setdefault(("own", "whitebox", *common), {})[key.classifier] = outcome
    yield from groups.items()


def _paired(a: Outcome, b: Outcome) -> tuple[np.ndarray, np.ndarray]:
    """The two outcome vectors restricted to the images both were measured on."""
    _, ia, ib = np.intersect1d(a.rows.numpy(), b.rows.numpy(), return_indices=True)
    return a.correct.numpy()[ia], b.correct.numpy()[ib]


def paired_differences(outcomes: Mapping[OutcomeKey, Outcome]) -> list[dict[str, Any]]:
    """One differences.csv row (without ``experiment``) per setting and compared pair."""
    datasets = {key.dataset for key in outcomes}
    rows = []
    for dataset in sorted(datasets):
        mine = {k: v for k, v in outcomes.items() if k.dataset == dataset}
        for (source, threat, subset, perturbation, level, seed), members in _settings(mine):
            for a, b in compared_pairs(set(members)):
                correct_a, correct_b = _paired(members[a], members[b])
                if not len(correct_a):
                    continue
                result = paired_difference(correct_a, correct_b)
                rows.append({
                    "dataset": dataset, "subset": subset, "source": source, "threat": threat,
                    "perturbation": perturbation, "level": level, "seed": seed,
                    "classifier_a": a, "classifier_b": b, "acc_a": result.acc_a,
                    "acc_b": result.acc_b, "diff": result.diff, "ci_low": result.ci_low,
                    "ci_high": result.ci_high, "n": result.n, "a_only": result.a_only,
                    "b_only": result.b_only, "mcnemar_p": result.mcnemar_p,
                })
    return rows
