"""Everything one run shares: config, device, streams, the feature cache, the recorder."""

from __future__ import annotations

import copy
import random
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ctxfusion.config import ExperimentConfig
from ctxfusion.errors import ConfigError
from ctxfusion.experiments.recorder import RunRecorder
from ctxfusion.features import FeatureCache, module_digest, stream_identity
from ctxfusion.models import Normalize
from ctxfusion.paths import expand_path, home_dir
from ctxfusion.perturb.views import make_view
from ctxfusion.streams import Stream, create_stream

#: normalisation statistics selectable by ``normalization`` (SPEC §2: the paper uses CIFAR-10's)
NORMALIZATION_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' but no CUDA device is available; use auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _apply_normalization(stream: Stream, normalization: str, recorder: RunRecorder) -> None:
    """Replace the stream's own mean/std when the config asks for dataset statistics."""
    if normalization == "stream":
        return
    module = getattr(stream, "normalize", None)
    if not isinstance(module, Normalize):
        recorder.note(
            f"normalization = {normalization} ignored for stream {stream.name}: "
            "it has its own preprocessing (not a mean/std normalisation)"
        )
        return
    mean, std = NORMALIZATION_STATS[normalization]
    module.mean.copy_(torch.tensor(mean).view(1, -1, 1, 1))
    module.std.copy_(torch.tensor(std).view(1, -1, 1, 1))


@dataclass
class RunContext:
    """The run-wide state handed to every step."""

    config: ExperimentConfig
    out: Path
    device: torch.device
    recorder: RunRecorder
    cache: FeatureCache
    streams: dict[str, Stream] = field(default_factory=dict)
    _identities: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)

    @classmethod
    def create(cls, config: ExperimentConfig, out: Path) -> RunContext:
        device = pick_device(config.device)
        recorder = RunRecorder(out=out, experiment=config.experiment)
        cache_root = (
            expand_path(config.cache_dir) if config.cache_dir else home_dir() / "features"
        )
        context = cls(config, out, device, recorder, FeatureCache(cache_root))
        for role in ("fg", "bg"):
            stream_config = getattr(config.streams, role)
            weights = str(expand_path(stream_config.weights)) if stream_config.weights else None
            stream = create_stream(stream_config.name, weights=weights)
            _apply_normalization(stream, config.normalization, recorder)
            context.streams[role] = stream.to(device)
        return context

    def identity(self, stream: nn.Module) -> dict:
        """:func:`ctxfusion.features.stream_identity` of a stream, computed once per object
        (streams are frozen once built; a changed stream is a new object, see copy_stream)."""
        if stream not in self._identities:
            self._identities[stream] = stream_identity(stream)
        return self._identities[stream]

    def copy_stream(self, stream: Stream, state: dict[str, torch.Tensor]) -> Stream:
        """A frozen copy of ``stream`` with the weights ``state`` (e.g. after fine-tuning)."""
        copied = copy.deepcopy(stream)
        copied.load_state_dict(state)
        copied.eval()
        for parameter in copied.parameters():
            parameter.requires_grad_(False)
        copied.weights_sha256 = module_digest(copied)
        return copied.to(self.device)

    def stream_views(self) -> dict[str, tuple[nn.Module, object]]:
        """``"<role>@<view>"`` -> (stream, view function) for every configured view."""
        pairs = {}
        for role, stream in self.streams.items():
            for view in getattr(self.config.streams, role).views:
                pairs[f"{role}@{view}"] = (stream, make_view(view))
        return pairs

    def normalization_std(self) -> torch.Tensor:
        """Per-channel std used to convert eps between pixel and normalised space."""
        name = self.config.normalization
        if name == "stream":
            module = getattr(self.streams["fg"], "normalize", None)
            if isinstance(module, Normalize):
                return module.std.flatten().cpu()
            name = "imagenet"
            self.recorder.note(
                f"the fg stream {self.streams['fg'].name} has no mean/std normalisation: "
                "normalised-space eps are converted with the ImageNet std"
            )
        return torch.tensor(NORMALIZATION_STATS[name][1])
