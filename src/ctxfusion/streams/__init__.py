"""Pretrained feature extractors ("streams") behind one registry.

Names with a ``torchvision:`` or ``timm:`` prefix build that library's models
(:mod:`ctxfusion.streams.external`).
"""

from ctxfusion.streams.base import Preprocessing, Stream, WeightRecord
from ctxfusion.streams.registry import BUILTIN_MODULES as BUILTIN_MODULES  # re-exported
from ctxfusion.streams.registry import create_stream, list_streams, register_stream, stream_info

__all__ = [
    "Preprocessing",
    "Stream",
    "WeightRecord",
    "create_stream",
    "list_streams",
    "register_stream",
    "stream_info",
]
