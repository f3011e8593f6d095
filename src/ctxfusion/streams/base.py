"""What a stream is: a pretrained feature extractor over [0,1] RGB images."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ctxfusion.errors import ConfigError
from ctxfusion.models import Normalize

#: the keys a config may override in a stream's preprocessing
PREPROCESSING_KEYS = ("mean", "std", "input_size")


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


def _numbers(value: object, positive: bool) -> tuple[float, ...] | None:
    """``value`` as 3 finite floats (all > 0 when ``positive``), or None when it is not."""
    if isinstance(value, str | bytes) or not hasattr(value, "__len__") or len(value) != 3:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    floats = tuple(float(v) for v in value)
    if not all(math.isfinite(v) and (v > 0 or not positive) for v in floats):
        return None
    return floats


@dataclass(frozen=True)
class Preprocessing:
    """How a stream wants its input: square side ``input_size`` and per-channel mean/std.

    ``mean``/``std`` None: the stream's own preprocessing is not a mean/std normalisation
    (e.g. a BGR, 0..255 scaling); ``description`` says what it is. Like timm's pretrained
    configs, this is data: a config can override it (:meth:`override`) without code.
    """

    input_size: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    description: str = ""

    @property
    def is_mean_std(self) -> bool:
        """Whether the stream normalises with ``(x - mean) / std`` (overridable)."""
        return self.mean is not None and self.std is not None

    def to_dict(self) -> dict:
        """A JSON-friendly copy (lists for mean/std): run records and cache keys."""
        return {
            "input_size": self.input_size,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "description": self.description,
        }

    def override(self, overrides: Mapping[str, object], stream_name: str) -> Preprocessing:
        """A copy with ``overrides`` (keys: mean, std, input_size) validated; ConfigError else."""
        where = f"preprocessing of stream {stream_name!r}"
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{where} must be a mapping of {', '.join(PREPROCESSING_KEYS)}; "
                              f"got {type(overrides).__name__}")
        unknown = sorted(set(map(str, overrides)) - set(PREPROCESSING_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: "
                              f"{', '.join(PREPROCESSING_KEYS)}")
        changes: dict[str, object] = {}
        for key in ("mean", "std"):
            if key not in overrides:
                continue
            if not self.is_mean_std:
                raise ConfigError(
                    f"{where}: {key!r} cannot be set, this stream's preprocessing is not a "
                    f"mean/std normalisation ({self.description or 'its own scaling'}); only "
                    "'input_size' can be overridden"
                )
            values = _numbers(overrides[key], positive=key == "std")
            if values is None:
                kind = "3 positive numbers" if key == "std" else "3 numbers"
                raise ConfigError(f"{where}: {key!r} must be {kind} (one per RGB channel), got "
                                  f"{overrides[key]!r}")
            changes[key] = values
        if "input_size" in overrides:
            size = overrides["input_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                raise ConfigError(f"{where}: 'input_size' must be a positive int (pixels, square "
                                  f"side), got {size!r}")
            changes["input_size"] = size
        if not changes:
            return self
        note = f"overridden: {', '.join(sorted(changes))}"
        description = f"{self.description}; {note}" if self.description else note
        return replace(self, description=description, **changes)


class Stream(nn.Module):
    """A frozen-able backbone: pixel-space images in, a feature vector out.

    Every instance carries ``preprocessing`` (:class:`Preprocessing`); set it with
    :meth:`set_preprocessing`, which builds ``self.normalize`` from its mean/std. Subclasses
    implement :meth:`extract` (the backbone up to the global-average-pooled penultimate
    activations) and :meth:`head` (the pretrained classifier on those features, for sanity
    checks), and override :meth:`preprocess` only when their preprocessing is not mean/std.
    """

    name: str = ""
    feature_dim: int = 0
    domain: str = "object"  # "object" (object-centric pretraining) or "scene" (scene-centric)
    labels: list[str]
    weights: WeightRecord | None = None
    weights_sha256: str = ""
    preprocessing: Preprocessing
    #: True when the architecture accepts one input size only (e.g. ViT position embeddings)
    fixed_input_size: bool = False

    @property
    def input_size(self) -> int:
        """The square side the stream expects (``preprocessing.input_size``)."""
        return self.preprocessing.input_size

    def set_preprocessing(self, preprocessing: Preprocessing) -> None:
        """Adopt ``preprocessing``; a mean/std one (re)builds ``self.normalize`` from it."""
        current: Preprocessing | None = self.__dict__.get("preprocessing")
        if current is not None:
            if self.fixed_input_size and preprocessing.input_size != current.input_size:
                raise ConfigError(
                    f"preprocessing of stream {self.name!r}: 'input_size' cannot change, the "
                    f"architecture takes {current.input_size} px inputs only"
                )
            if current.is_mean_std != preprocessing.is_mean_std:
                raise ConfigError(f"stream {self.name!r}: mean/std cannot be added to or removed "
                                  "from its preprocessing")
        self.preprocessing = preprocessing
        if preprocessing.is_mean_std:
            old = self._modules.get("normalize")
            normalize = Normalize(preprocessing.mean, preprocessing.std)
            self.normalize = normalize.to(old.mean.device) if old is not None else normalize

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """Resize to the stream's input size when needed (bilinear, differentiable)."""
        size = self.preprocessing.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False, antialias=False,
            )
        return x

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` with the preprocessing's statistics (override otherwise)."""
        if not self.preprocessing.is_mean_std:  # pragma: no cover - such streams override
            raise NotImplementedError(f"stream {self.name!r} must implement preprocess()")
        return self.normalize(x)

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
            "weights_source": self.weights.source if self.weights else None,
            "weights_sha256": self.weights_sha256,
            "preprocessing": self.preprocessing.to_dict(),
        }
