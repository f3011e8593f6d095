"""What a stream is: a pretrained feature extractor over [0,1] RGB images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class WeightRecord:
    """Where a stream's weights come from, declared as data next to the architecture.

    ``sha256`` is checked on every load; ``url`` serves online users (None when the file is
    not downloadable, e.g. shipped with the package or built from another package).
    """

    file_name: str
    sha256: str | None
    url: str | None = None
    source: str = ""
    license: str = ""


class Stream(nn.Module):
    """A frozen-able backbone: pixel-space images in, a feature vector out.

    Subclasses implement :meth:`preprocess` (their own normalisation, channel order, scaling),
    :meth:`extract` (the backbone up to the global-average-pooled penultimate activations) and
    :meth:`head` (the pretrained classifier on those features, for sanity checks).
    """

    name: str = ""
    feature_dim: int = 0
    input_size: int = 224
    domain: str = "object"  # "object" (object-centric pretraining) or "scene" (scene-centric)
    labels: list[str]
    weights: WeightRecord | None = None
    weights_sha256: str = ""

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """Resize to the stream's input size when needed (bilinear, differentiable)."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear",
                align_corners=False, antialias=False,
            )
        return x

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extract(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def head(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) in [0,1] -> (N, feature_dim) features."""
        return self.extract(self.preprocess(self.resize(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) in [0,1] -> logits over :attr:`labels` from the pretrained classifier."""
        return self.head(self.forward(x))

    def describe(self) -> dict:
        """A JSON-friendly record of the stream (for run directories and ``ctxfusion streams``)."""
        return {
            "name": self.name,
            "feature_dim": self.feature_dim,
            "input_size": self.input_size,
            "domain": self.domain,
            "num_labels": len(self.labels),
            "weights_file": self.weights.file_name if self.weights else None,
            "weights_sha256": self.weights_sha256,
        }
