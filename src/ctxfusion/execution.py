"""How forward passes run on the run's device: number format and memory layout.

``precision`` and ``memory_format`` of the config, resolved for the device: on a GPU, bfloat16
autocast and channels_last by default; on a CPU, float32 and the contiguous layout (measured
faster here: BENCHMARKS.md). Only forward passes that need no gradient go through
:meth:`Execution.forward` (feature extraction, classifying attacked images); attack gradients
and training always run in float32.
"""

from __future__ import annotations

import contextlib
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
        """``auto`` -> bfloat16 / channels_last on CUDA, float32 / contiguous elsewhere."""
        gpu = device.type == "cuda"
        if precision == "auto":
            precision = "bfloat16" if gpu else "float32"
        if memory_format == "auto":
            memory_format = "channels_last" if gpu else "contiguous"
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
