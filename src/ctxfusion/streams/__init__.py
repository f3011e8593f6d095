"""Pretrained feature extractors ("streams") behind one registry."""

import importlib

from ctxfusion.streams.base import Stream, WeightRecord
from ctxfusion.streams.registry import create_stream, list_streams, register_stream, stream_info

# Built-in stream families; importing a module registers its streams.
_BUILTIN_MODULES = ("resnet", "efficientnet_lite", "squeezenet_places365", "scenes")
for _module in _BUILTIN_MODULES:
    try:
        importlib.import_module(f"ctxfusion.streams.{_module}")
    except ModuleNotFoundError as _exc:  # a family still being written
        if _exc.name != f"ctxfusion.streams.{_module}":
            raise

__all__ = [
    "Stream",
    "WeightRecord",
    "create_stream",
    "list_streams",
    "register_stream",
    "stream_info",
]
