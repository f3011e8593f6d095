"""Shared timing helper for the benchmarks: median wall time after warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def timed(fn: Callable[[], object], device: str, warmup: int, repeats: int) -> float:
    """Median seconds of ``fn()`` after ``warmup`` calls (oneDNN builds kernels on first use);
    CUDA work is synchronised around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
