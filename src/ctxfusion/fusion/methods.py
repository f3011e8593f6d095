"""Training the robust fusion methods on cached features (one call per trial or fold)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ctxfusion.fusion.heads import ExpertFusion, GatedFusion, drop_streams
from ctxfusion.models import LinearHead
from ctxfusion.train import minimise, train_linear_head
from ctxfusion.versioning import computation

#: the version of each robust fusion method (its training and its forward pass); each also
#: depends on ``head_training`` (:data:`ctxfusion.train.HEAD_TRAINING`)
METHOD_VERSIONS = {
    name: computation(f"fusion.{name}", 1, what) for name, what in (
        ("dropout", "linear head trained with stream dropout (fusion/methods.py, heads.py)"),
        ("blurtrain", "linear head trained on clean and blurred training features"),
        ("fgsmtrain", "linear head trained on clean and FGSM training features"),
        ("poe", "product of per-stream linear experts (fusion/heads.py)"),
        ("confidence", "per-stream experts weighted by their confidence (fusion/heads.py)"),
        ("gate", "learned gate over frozen per-stream experts (fusion/heads.py)"),
    )
}

#: one perturbed version of training images: per-stream features and their labels
Perturbed = tuple[list[torch.Tensor], torch.Tensor]


@dataclass
class TrainingSet:
    """The training images of a head: per-stream features (in the fused classifier's stream
    order) and labels, with the features of perturbed versions of (some of) them: one entry
    per blur sigma (inside the boxes) and per FGSM eps (crafted on the object classifier)."""

    features: list[torch.Tensor]
    labels: torch.Tensor
    blurred: list[Perturbed] = field(default_factory=list)
    attacked: list[Perturbed] = field(default_factory=list)

    def with_perturbed(self, versions: list[Perturbed]) -> Perturbed:
        """The clean features followed by every perturbed version's (one training set)."""
        features = [torch.cat([clean, *(v[0][i] for v in versions)])
                    for i, clean in enumerate(self.features)]
        return features, torch.cat([self.labels, *(v[1] for v in versions)])


@dataclass(frozen=True)
class Optimisation:
    """How every head is fitted: Adam, ``epochs`` passes, minibatches of ``batch_size``
    (None: full batch), ``gate_epochs`` for the gate; seeded."""

    epochs: int
    lr: float
    batch_size: int | None
    gate_epochs: int
    seed: int


def fit_methods(methods: Sequence[str], data: TrainingSet, num_classes: int,
                optimisation: Optimisation, dropout: float) -> dict[str, nn.Module]:
    """Every method of ``methods`` trained on ``data`` (:mod:`ctxfusion.fusion`); a method
    whose perturbed features ``data`` lacks (``blurtrain`` without blurred, ``fgsmtrain``
    without attacked features) is left out."""
    opt = optimisation
    out: dict[str, nn.Module] = {}

    def linear(features: list[torch.Tensor], labels: torch.Tensor) -> LinearHead:
        return train_linear_head(features, labels, num_classes, epochs=opt.epochs, lr=opt.lr,
                                 batch_size=opt.batch_size, seed=opt.seed)

    experts = [linear([f], data.labels) for f in data.features] \
        if {"poe", "confidence", "gate"} & set(methods) else []
    for method in methods:
        if method == "dropout":
            out[method] = train_dropout_head(data.features, data.labels, num_classes, dropout,
                                             opt)
        elif method == "blurtrain" and data.blurred:
            out[method] = linear(*data.with_perturbed(data.blurred))
        elif method == "fgsmtrain" and data.attacked:
            out[method] = linear(*data.with_perturbed(data.attacked))
        elif method == "poe":
            out[method] = ExpertFusion(copy.deepcopy(experts), "equal").eval()
        elif method == "confidence":
            out[method] = ExpertFusion(copy.deepcopy(experts), "confidence").eval()
        elif method == "gate":
            out[method] = train_gate(copy.deepcopy(experts), *data.with_perturbed(data.blurred),
                                     opt)
    return out


def train_dropout_head(features: list[torch.Tensor], labels: torch.Tensor, num_classes: int,
                       p: float, opt: Optimisation) -> LinearHead:
    """A linear head trained with stream dropout (:func:`drop_streams`, rate ``p``, each
    stream's mean over these training images), fresh masks at every step."""
    features = [f.float() for f in features]
    means = [f.mean(dim=0) for f in features]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(opt.seed)
        head = LinearHead([f.shape[1] for f in features], num_classes)
    masks = torch.Generator().manual_seed(opt.seed + 1)

    def loss(index: torch.Tensor | slice) -> torch.Tensor:
        kept = drop_streams([f[index] for f in features], means, p, masks)
        return F.cross_entropy(head(torch.cat(kept, dim=1)), labels[index])

    _minimise(head.parameters(), len(labels), loss, opt.epochs, opt)
    return head.eval()


def train_gate(experts: list[LinearHead], features: list[torch.Tensor], labels: torch.Tensor,
               opt: Optimisation) -> GatedFusion:
    """A :class:`GatedFusion` over frozen ``experts`` whose gate alone is trained on
    ``features`` (clean and perturbed: the gate has to see degraded streams to learn to
    look away from them)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(opt.seed)
        model = GatedFusion(experts)
    for parameter in model.experts.parameters():
        parameter.requires_grad_(False)
    x = torch.cat([f.float() for f in features], dim=1)

    def loss(index: torch.Tensor | slice) -> torch.Tensor:
        return F.cross_entropy(model(x[index]), labels[index])

    _minimise(model.gate.parameters(), len(labels), loss, opt.gate_epochs, opt)
    return model.eval()



def _minimise(parameters, n: int, loss: Callable[[torch.Tensor | slice], torch.Tensor],
              epochs: int, opt: Optimisation) -> None:
    """:func:`ctxfusion.train.minimise` with ``opt``'s settings and ``epochs`` passes."""
    minimise(parameters, n, loss, epochs=epochs, lr=opt.lr, batch_size=opt.batch_size,
             seed=opt.seed)
