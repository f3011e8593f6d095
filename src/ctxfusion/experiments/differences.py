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
- every classifier attacked through its own gradient (``threat`` whitebox, ``source`` own);
- each defence under an attack adapted to it (``threat`` adaptive, ``source`` own), beside
  the undefended classifiers under the same white-box attack.
Each setting is per perturbation, region (image, box, background), level and seed. Within a
setting, outcomes are paired on the test images both were measured on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ctxfusion.roles import fused, fusion_parts, heldout_base, heldout_name, single
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
    region: str = "image"


@dataclass(frozen=True)
class Outcome:
    """Per test image (``rows``: indices into the split), whether it was classified right."""

    rows: torch.Tensor
    correct: torch.Tensor


def compared_pairs(classifiers: set[str],
                   sets: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(a, b) pairs a claim compares, among ``classifiers`` (``sets``: the configured
    classifiers and their streams): every classifier against the reference (the first
    one-stream classifier, fg); every alpha-regularised head against the other one-stream
    classifiers, its unregularised classifier and the adversarially retrained ones; every
    fused classifier against the other one-stream classifiers of its streams and against each
    smaller fused classifier whose streams it holds (joint3 against joint); every robust
    fusion method against its fused classifier (joint-gate against joint). Classifiers
    cross-fitted on held-out images (``-heldout``) are compared among themselves by the same
    rules, and each against the same classifier trained on the training split."""
    held = {heldout_base(name) for name in classifiers if heldout_base(name)}
    if held:  # the held-out family among itself, and each against its own training
        rest = {name for name in classifiers if not heldout_base(name)}
        own = [(heldout_name(a), heldout_name(b)) for a, b in compared_pairs(held, sets)]
        own += [(heldout_name(name), name) for name in sorted(held) if name in rest]
        return compared_pairs(rest, sets) + own
    ones, fuseds = single(sets), fused(sets)
    reference = ones[0] if ones else None
    others = [name for name in ones if name != reference]
    retrained = sorted(name for name in classifiers if name.endswith("-advtrain"))
    pairs = [(name, reference) for name in sorted(classifiers) if name != reference]
    pairs += [(name, other) for name in sorted(classifiers) if "-alpha" in name
              for other in [*others, name.split("-alpha")[0], *retrained]]
    for name in fuseds:
        pairs += [(name, one) for one in others if sets[one][0] in sets[name]]
        pairs += [(name, smaller) for smaller in fuseds
                  if set(sets[smaller]) < set(sets[name])]
    pairs += [(name, parts[0]) for name in sorted(classifiers)
              if (parts := fusion_parts(name))]
    return [(a, b) for a, b in pairs if a in classifiers and b in classifiers]


def _settings(outcomes: Mapping[OutcomeKey, Outcome]) -> Iterator[tuple[tuple, dict]]:
    """(setting, {classifier: outcome}) for each comparison setting (module docstring)."""
    groups: dict[tuple, dict[str, Outcome]] = {}
    defended: set[tuple] = set()  # the adaptive settings in which a defence was attacked
    for key, outcome in outcomes.items():
        common = (key.subset, key.perturbation, key.region, key.level, key.seed)
        if key.threat == "none":
            groups.setdefault(("", "none", *common), {})[key.classifier] = outcome
            continue
        if key.threat == "adaptive":
            groups.setdefault(("own", "adaptive", *common), {})[key.classifier] = outcome
            defended.add(common)
            continue
        groups.setdefault((key.source, "transfer", *common), {})[key.classifier] = outcome
        if key.threat == "whitebox":
            groups.setdefault(("own", "whitebox", *common), {})[key.classifier] = outcome
            # the undefended classifiers under the same attack, beside the defences
            groups.setdefault(("own", "adaptive", *common), {})[key.classifier] = outcome
    yield from ((setting, members) for setting, members in groups.items()
                if setting[1] != "adaptive" or setting[2:] in defended)


def _paired(a: Outcome, b: Outcome) -> tuple[np.ndarray, np.ndarray]:
    """The two outcome vectors restricted to the images both were measured on."""
    _, ia, ib = np.intersect1d(a.rows.numpy(), b.rows.numpy(), return_indices=True)
    return a.correct.numpy()[ia], b.correct.numpy()[ib]


def paired_differences(outcomes: Mapping[OutcomeKey, Outcome],
                       sets: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """One differences.csv row (without ``experiment``) per setting and compared pair
    (:func:`compared_pairs` of the classifier ``sets``)."""
    datasets = {key.dataset for key in outcomes}
    rows = []
    for dataset in sorted(datasets):
        mine = {k: v for k, v in outcomes.items() if k.dataset == dataset}
        for (source, threat, subset, perturbation, region, level, seed), members in \
                _settings(mine):
            for a, b in compared_pairs(set(members), sets):
                correct_a, correct_b = _paired(members[a], members[b])
                if not len(correct_a):
                    continue
                result = paired_difference(correct_a, correct_b)
                rows.append({
                    "dataset": dataset, "subset": subset, "source": source, "threat": threat,
                    "perturbation": perturbation, "region": region, "level": level,
                    "seed": seed,
                    "classifier_a": a, "classifier_b": b, "acc_a": result.acc_a,
                    "acc_b": result.acc_b, "diff": result.diff, "ci_low": result.ci_low,
                    "ci_high": result.ci_high, "n": result.n, "a_only": result.a_only,
                    "b_only": result.b_only, "mcnemar_p": result.mcnemar_p,
                })
    return rows
