"""Which classifiers an experiment trains, and training/evaluating them on cached features.

Features are keyed ``"<role>@<view>"`` (``fg@full``, ``bg@context``). A classifier reads one
or more keys, concatenated (late fusion): its streams' default views, or one stream's further
view (``joint@context``); ``joint-alpha<a>`` reads the alpha classifier's default views with
the penalised stream's slice penalised (see :mod:`ctxfusion.roles`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ctxfusion.config import ExperimentConfig
from ctxfusion.models import LinearHead
from ctxfusion.roles import alpha_name
from ctxfusion.train import train_linear_head


@dataclass(frozen=True)
class ClassifierSpec:
    """A head to train: its result name, the feature keys it reads, its alpha and the
    position (in ``inputs``) of the stream whose weight slice alpha penalises."""

    name: str
    inputs: tuple[str, ...]
    alpha: float = 0.0
    penalized: int = 0


@dataclass
class SubsetData:
    """Rows of a split that belong to one class subset, labels re-indexed to the subset."""

    rows: torch.Tensor
    labels: torch.Tensor
    classes: list[str]


@dataclass
class Trial:
    """One repeat of one class subset: the heads trained with ``seed`` on ``train``'s rows,
    evaluated on ``test``'s rows. ``extra_streams`` holds stream-views that exist only for
    this trial (the backbone of an adversarially retrained fg), keyed like ``fg@full``."""

    subset: str
    seed: int
    train: SubsetData
    test: SubsetData
    heads: dict[str, LinearHead] = field(default_factory=dict)
    specs: list[ClassifierSpec] = field(default_factory=list)
    extra_streams: dict[str, tuple] = field(default_factory=dict)
    clean_features: dict[str, torch.Tensor] = field(default_factory=dict)  # whole test split

    def spec(self, name: str) -> ClassifierSpec:
        return next(s for s in self.specs if s.name == name)


def feature_key(role: str, view: str) -> str:
    return f"{role}@{view}"


def classifier_specs(config: ExperimentConfig) -> list[ClassifierSpec]:
    """Every classifier of the experiment, in report order: each configured classifier on
    its streams' default views, then once per further view of each of its streams
    (``<classifier>@<view>``), then the alpha-regularised heads."""
    streams = config.streams
    specs = []
    for name, members in config.classifiers.items():
        default = [feature_key(role, streams[role].views[0]) for role in members]
        specs.append(ClassifierSpec(name, tuple(default)))
        for position, role in enumerate(members):
            for view in streams[role].views[1:]:
                inputs = list(default)
                inputs[position] = feature_key(role, view)
                specs.append(ClassifierSpec(f"{name}@{view}", tuple(inputs)))
    target = config.heads.alpha_classifier
    if target is not None:
        members = config.classifiers[target]
        inputs = tuple(feature_key(role, streams[role].views[0]) for role in members)
        penalized = members.index(config.heads.penalized_stream)
        specs += [ClassifierSpec(alpha_name(config, alpha), inputs, alpha, penalized)
                  for alpha in config.heads.alphas]
    return specs


def select_subset(labels: torch.Tensor, all_classes: list[str], subset: list[str]) -> SubsetData:
    """Rows whose label is one of ``subset``'s classes; labels mapped to positions in it."""
    index = {name: i for i, name in enumerate(all_classes)}
    mapping = torch.full((len(all_classes),), -1, dtype=torch.long)
    for position, name in enumerate(subset):
        mapping[index[name]] = position
    mapped = mapping[labels]
    rows = torch.nonzero(mapped >= 0).flatten()
    return SubsetData(rows=rows, labels=mapped[rows], classes=list(subset))


def subsample_per_class(data: SubsetData, fraction: float, seed: int) -> SubsetData:
    """A seeded sample of ``fraction`` of each class's rows (at least one per class), in row
    order; ``fraction`` 1 returns ``data`` unchanged."""
    if fraction >= 1:
        return data
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        size = max(1, round(fraction * len(members)))
        keep.append(rng.choice(members, size=size, replace=False))
    index = torch.from_numpy(np.sort(np.concatenate(keep)))
    return replace(data, rows=data.rows[index], labels=data.labels[index])


def stratified_sample(data: SubsetData, max_images: int, seed: int) -> SubsetData:
    """At most ``max_images`` rows drawn evenly across classes (seeded): classes take turns,
    each giving its next randomly ordered row, so every class is covered before any class
    gives a second image. Returned in row order."""
    if len(data.rows) <= max_images:
        return data
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    queues = [list(rng.permutation(np.flatnonzero(labels == label)))
              for label in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < max_images:
        for queue in queues:
            if queue and len(picked) < max_images:
                picked.append(int(queue.pop(0)))
    index = torch.tensor(sorted(picked))
    return replace(data, rows=data.rows[index], labels=data.labels[index])


@contextmanager
def single_thread() -> Iterator[None]:
    """Heads are tiny matrices: one CPU thread beats several, which mostly synchronise
    (measured here: 0.04 s vs 1 s per head on a loaded 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_heads(
    config: ExperimentConfig,
    specs: list[ClassifierSpec],
    features: dict[str, torch.Tensor],
    subset: SubsetData,
    seed: int,
) -> dict[str, LinearHead]:
    """Train every head of ``specs`` on the subset's rows of cached train features."""
    heads = {}
    for spec in specs:
        inputs = [features[key][subset.rows] for key in spec.inputs]
        with single_thread():
            heads[spec.name] = train_linear_head(
                inputs, subset.labels, len(subset.classes), alpha=spec.alpha,
                alpha_reduction=config.heads.alpha_reduction,
                penalised_stream=spec.penalized, epochs=config.heads.epochs, lr=config.heads.lr,
                batch_size=config.heads.batch_size, seed=seed,
            )
    return heads


@torch.no_grad()
def head_correct(
    head: LinearHead, spec: ClassifierSpec, features: dict[str, torch.Tensor],
    rows: torch.Tensor | None, labels: torch.Tensor,
) -> torch.Tensor:
    """Per image, whether ``head`` classifies the given rows of ``features`` (all rows when
    ``rows`` is None) correctly: a bool tensor aligned with ``labels``."""
    inputs = [features[key] if rows is None else features[key][rows] for key in spec.inputs]
    logits = head(torch.cat(inputs, dim=1))
    return logits.argmax(dim=1) == labels
