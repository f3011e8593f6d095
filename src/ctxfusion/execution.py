"""How a run uses its device: number format, memory layout, image-decoding workers.

``precision``, ``memory_format`` and ``num_workers`` of the config, resolved for the device:
``auto`` is bfloat16 autocast on a GPU and float32 on a CPU; channels_last on both (measured
faster on this project's CPU for ResNet18 and EfficientNet-Lite0: BENCHMARKS.md); image
decoding in worker processes on a GPU and in the main process on a CPU (measured: workers
take cores from the model there). Only forward passes that need no gradient go through
:meth:`Execution.forward` (feature extraction, classifying attacked images); attack gradients
and training always run in float32.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .errors import ConfigError

_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


@dataclass(frozen=True)
class Execution:
    """The resolved settings of one device."""

    device: torch.device
    precision: str = "float32"  # float32 | bfloat16
    memory_format: str = "contiguous"  # contiguous | channels_last

    @classmethod
    def resolve(cls, device: torch.device, precision: str = "auto",
                memory_format: str = "auto") -> Execution:
        """``auto`` -> bfloat16 on CUDA, float32 elsewhere; channels_last everywhere."""
        if precision == "auto":
            precision = "bfloat16" if device.type == "cuda" else "float32"
        if memory_format == "auto":
            memory_format = "channels_last"
        if precision not in ("float32", "bfloat16") or memory_format not in _FORMATS:
            raise ConfigError(f"precision = {precision!r}, memory_format = {memory_format!r}: "
                              "valid are float32|bfloat16 and contiguous|channels_last")
        return cls(device, precision, memory_format)

    @property
    def torch_memory_format(self) -> torch.memory_format:
        return _FORMATS[self.memory_format]

    def layout(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` on the device in the chosen memory layout."""
        images = images.to(self.device, non_blocking=True)
        if images.dim() == 4 and self.memory_format != "contiguous":
            images = images.contiguous(memory_format=self.torch_memory_format)
        return images

    @contextlib.contextmanager
    def forward(self) -> Iterator[None]:
        """No autograd (``inference_mode``) and, for bfloat16, autocast on the device."""
        with torch.inference_mode():
            if self.precision == "float32":
                yield
            else:
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    yield

    def describe(self) -> dict:
        return {"precision": self.precision, "memory_format": self.memory_format}


FLOAT32_CPU = Execution(torch.device("cpu"))


def default_num_workers(device: torch.device) -> int:
    """Image-decoding worker processes for ``num_workers: null``: none on a CPU (the model
    uses every core), on a GPU the cores of this process's share of the node, at most 8."""
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    per_rank = (cores or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(8, per_rank - 1))
