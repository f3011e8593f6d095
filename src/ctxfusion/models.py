"""The fused model: streams, a linear head over their concatenated features, the alpha loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as the first layer of a model, so inputs stay in [0,1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LinearHead(nn.Linear):
    """A linear classifier over the concatenation of one or more streams' features.

    ``in_dims`` lists each stream's feature dimension in order; the weight matrix W
    (C x sum(in_dims)) splits column-wise into one slice per stream (SPEC §1: W_fg, W_bg).
    """

    def __init__(self, in_dims: Sequence[int], num_classes: int) -> None:
        super().__init__(sum(in_dims), num_classes)
        self.in_dims = list(in_dims)

    def stream_slice(self, index: int) -> slice:
        """Columns of the weight matrix that read stream ``index``."""
        start = sum(self.in_dims[:index])
        return slice(start, start + self.in_dims[index])

    def stream_weights(self, index: int) -> torch.Tensor:
        """The (C x d_index) block of the weight matrix for stream ``index``."""
        return self.weight[:, self.stream_slice(index)]

    def stream_weight_means(self) -> list[float]:
        """Mean |w| over each stream's slice ("contribution" of the stream, paper Fig. 4b/d)."""
        with torch.no_grad():
            return [
                float(self.stream_weights(i).abs().mean()) for i in range(len(self.in_dims))
            ]

    def scaled_weight_means(self, features: Sequence[torch.Tensor]) -> list[float]:
        """Mean over each stream's columns of mean|w_j| * std(f_j): the weights in units of
        the features they multiply. Streams whose features differ 10x in scale need weights
        that differ 10x for equal contributions, which mean |w| alone hides."""
        with torch.no_grad():
            return [
                float((self.stream_weights(i).abs().mean(dim=0) * f.float().std(dim=0)).mean())
                for i, f in enumerate(features)
            ]

    def logit_shares(self, features: Sequence[torch.Tensor]) -> list[float]:
        """Each stream's share of the logit variance on ``features`` (one (N, d_i) tensor per
        stream): the variance over images of the stream's partial logits f_i W_i^T, summed
        over classes, normalised to sum to 1 (cross terms left out)."""
        with torch.no_grad():
            variances = [
                float((f.float() @ self.stream_weights(i).T).var(dim=0).sum())
                for i, f in enumerate(features)
            ]
        total = sum(variances)
        return [v / total if total > 0 else float("nan") for v in variances]


def alpha_regularised_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    head: LinearHead,
    alpha: float,
    penalised_stream: int = 0,
) -> torch.Tensor:
    """``CE(logits, y) + alpha * ||W_s||_2^2`` with W_s the penalised stream's slice only.

    SPEC §1: penalising the object stream's slice (index 0) pushes the decision onto the scene
    stream. The bias and the other slices are not penalised.
    """
    loss = F.cross_entropy(logits, targets)
    if alpha:
        loss = loss + alpha * head.stream_weights(penalised_stream).pow(2).sum()
    return loss


class FusionClassifier(nn.Module):
    """Streams -> concatenated features -> linear head; one end-to-end differentiable module.

    ``views`` optionally gives, per stream, a callable ``view(images, boxes) -> images`` that
    decides which part of the image the stream sees (see ``ctxfusion.perturb.views``). Boxes
    for such views are bound with :meth:`with_boxes` so attack libraries can still call
    ``model(images)``.
    """

    def __init__(
        self,
        streams: Sequence[nn.Module],
        head: LinearHead,
        views: Sequence | None = None,
    ) -> None:
        super().__init__()
        if len(head.in_dims) != len(streams):
            raise ValueError(
                f"head expects {len(head.in_dims)} streams, got {len(streams)}"
            )
        self.streams = nn.ModuleList(streams)
        self.head = head
        self.views = list(views) if views is not None else [None] * len(streams)
        self._boxes: list[torch.Tensor] | None = None

    def with_boxes(self, boxes: list[torch.Tensor] | None) -> FusionClassifier:
        """Bind the boxes of the next batch (needed by `context`/`object` views); returns self."""
        self._boxes = boxes
        return self

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stream's features of ``x`` (after its view)."""
        outputs = []
        for stream, view in zip(self.streams, self.views, strict=True):
            seen = x if view is None else view(x, self._boxes)
            outputs.append(stream(seen))
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat(self.features(x), dim=1))
