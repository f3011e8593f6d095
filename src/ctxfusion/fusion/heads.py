"""The fusion heads: per-stream experts combined per image, and stream dropout.

Every head takes the streams' features concatenated, as :class:`~ctxfusion.models.LinearHead`
does, so a :class:`~ctxfusion.models.FusionClassifier` can wrap it and every perturbation and
attack of a run applies to it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ctxfusion.models import LinearHead

#: how :class:`ExpertFusion` weighs its experts
WEIGHTINGS = ("equal", "confidence")


class ExpertFusion(nn.Module):
    """One linear expert per stream; the output is the weighted sum of the experts'
    log-probabilities, weights summing to one per image. ``equal`` weighting is the product
    of experts (its argmax is that of the product of their probabilities); ``confidence``
    weighs each expert by ``1 - H(p) / log C`` (its normalised entropy), so an expert that is
    unsure on this image (a blurred object) gives way to the others."""

    def __init__(self, experts: Sequence[LinearHead], weighting: str = "equal") -> None:
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting = {weighting!r}: valid: {', '.join(WEIGHTINGS)}")
        self.experts = nn.ModuleList(experts)
        self.weighting = weighting
        self.in_dims = [expert.in_features for expert in experts]
        self.out_features = experts[0].out_features

    def expert_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(N, streams, classes): each expert's log-probabilities on its stream's features."""
        parts = torch.split(x, self.in_dims, dim=1)
        return torch.stack([expert(part).log_softmax(dim=1)
                            for expert, part in zip(self.experts, parts, strict=True)], dim=1)

    def weights(self, log_probs: torch.Tensor) -> torch.Tensor:
        """(N, streams) weights, each row summing to one."""
        n, streams, _ = log_probs.shape
        if self.weighting == "equal":
            return log_probs.new_full((n, streams), 1 / streams)
        confidence = (1 - normalised_entropy(log_probs)).clamp_min(1e-6)
        return confidence / confidence.sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = self.expert_log_probs(x)
        return (self.weights(log_probs).unsqueeze(-1) * log_probs).sum(dim=1)


def normalised_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy over the last axis divided by log(classes): 0 certain, 1 uniform."""
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    return entropy / math.log(log_probs.shape[-1])


class GatedFusion(ExpertFusion):
    """:class:`ExpertFusion` whose weights come from a small gate: per image, each expert's
    normalised entropy and top log-probability (scale-free summaries, so streams whose
    features differ 10x in scale need no standardisation) -> hidden layer -> softmax over
    the experts."""

    def __init__(self, experts: Sequence[LinearHead], hidden: int = 16) -> None:
        super().__init__(experts, "equal")
        streams = len(experts)
        self.gate = nn.Sequential(nn.Linear(2 * streams, hidden), nn.ReLU(),
                                  nn.Linear(hidden, streams))

    def weights(self, log_probs: torch.Tensor) -> torch.Tensor:
        summary = torch.cat([normalised_entropy(log_probs), log_probs.max(dim=-1).values],
                            dim=1)
        return self.gate(summary).softmax(dim=1)


def drop_streams(features: Sequence[torch.Tensor], means: Sequence[torch.Tensor], p: float,
                 generator: torch.Generator) -> list[torch.Tensor]:
    """Stream dropout: each image's features of each stream replaced by the stream's training
    mean with probability ``p``, independently per image and stream (so both streams of an
    image are replaced with probability p^2, and the rate of each is exactly p)."""
    out = []
    for feature, mean in zip(features, means, strict=True):
        drop = torch.rand(feature.shape[0], 1, generator=generator) < p
        out.append(torch.where(drop.to(feature.device), mean.to(feature), feature))
    return out
