"""Everything one run shares: config, device, streams, the feature cache, the recorder."""

from __future__ import annotations

import copy
import dataclasses
import random
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ctxfusion.config import NORMALIZATION_STATS, ExperimentConfig
from ctxfusion.distributed import SINGLE, Group
from ctxfusion.errors import ConfigError, CtxfusionError
from ctxfusion.execution import FLOAT32_CPU, Execution, default_num_workers
from ctxfusion.experiments.recorder import RunRecorder
from ctxfusion.features import FeatureCache, module_digest, stream_identity
from ctxfusion.paths import expand_path, home_dir
from ctxfusion.perturb.views import make_view
from ctxfusion.streams import Stream, create_stream, stream_info


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


def stream_preprocessing(config: ExperimentConfig, role: str,
                         recorder: RunRecorder) -> dict:
    """The preprocessing overrides of stream ``role``: its own ``mean``/``std``/``input_size``
    settings, else the run-wide ``normalization`` statistics for a mean/std stream."""
    stream_config = config.streams[role]
    overrides = stream_config.preprocessing()
    if config.normalization == "stream" or {"mean", "std"} & overrides.keys():
        return overrides
    if stream_info(stream_config.name).preprocessing.mean is None:
        recorder.note(
            f"normalization = {config.normalization} ignored for stream {role} "
            f"({stream_config.name}): it has its own preprocessing (not a mean/std one)"
        )
        return overrides
    mean, std = NORMALIZATION_STATS[config.normalization]
    return {**overrides, "mean": list(mean), "std": list(std)}


@dataclass
class RunContext:
    """The run-wide state handed to every step."""

    config: ExperimentConfig
    out: Path
    device: torch.device
    recorder: RunRecorder
    cache: FeatureCache
    group: Group = SINGLE  # this process's rank in a torchrun run (see ctxfusion.distributed)
    execution: Execution = FLOAT32_CPU  # precision and memory layout of forward passes
    streams: dict[str, Stream] = field(default_factory=dict)
    _identities: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)

    @classmethod
    def create(cls, config: ExperimentConfig, out: Path, group: Group = SINGLE) -> RunContext:
        device = pick_device(config.device)
        if device.type == "cuda":
            device = torch.device("cuda", group.local_rank)  # one GPU per rank of a node
            config = dataclasses.replace(  # a GPU takes larger batches
                config, batch_size=config.cuda.batch_size or config.batch_size,
                gradient_batch_size=config.cuda.gradient_batch_size
                or config.gradient_batch_size)
        execution = Execution.resolve(device, config.precision, config.memory_format)
        if config.num_workers is None:
            config = dataclasses.replace(config, num_workers=default_num_workers(device))
        recorder = RunRecorder(out=out, experiment=config.experiment, writes=group.is_main)
        cache_root = (
            expand_path(config.cache_dir) if config.cache_dir else home_dir() / "features"
        )
        context = cls(config, out, device, recorder, FeatureCache(cache_root), group, execution)
        for role, stream_config in config.streams.items():
            weights = stream_config.weights
            if weights and weights != "random":
                weights = str(expand_path(weights))
            try:
                stream = create_stream(stream_config.name, weights=weights,
                                       preprocessing=stream_preprocessing(config, role, recorder))
            except CtxfusionError as exc:  # the same error, naming the config key
                where = f"{config.source_path}: " if config.source_path else ""
                raise type(exc)(f"{where}streams.{role} ({stream_config.name}): {exc}") from None
            context.streams[role] = stream.to(device, memory_format=execution.torch_memory_format)
        return context

    def with_stream(self, role: str, stream: Stream) -> RunContext:
        """This context with stream ``role`` replaced (e.g. fine-tuned for one dataset);
        the recorder, cache and identities stay shared, this context is unchanged."""
        return dataclasses.replace(self, streams={**self.streams, role: stream})

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
            for view in self.config.streams[role].views:
                pairs[f"{role}@{view}"] = (stream, make_view(view))
        return pairs

    def normalization_std(self) -> torch.Tensor:
        """Per-channel std used to convert eps between pixel and normalised space: the first
        stream's (the object stream of the paper's configs)."""
        role, stream = next(iter(self.streams.items()))
        std = stream.preprocessing.std
        if std is not None:
            return torch.tensor(std, dtype=torch.float32)
        if self.config.normalization != "stream":
            return torch.tensor(NORMALIZATION_STATS[self.config.normalization][1])
        self.recorder.note(
            f"the first stream {role} ({stream.name}) has no mean/std normalisation: "
            "normalised-space eps are converted with the ImageNet std"
        )
        return torch.tensor(NORMALIZATION_STATS["imagenet"][1])
