"""Pretrained feature extractors ("streams") behind one registry.

Names with a ``torchvision:`` or ``timm:`` prefix build that library's models
(:mod:`ctxfusion.streams.external`).
"""

import importlib

from ctxfusion.streams.base import Preprocessing, Stream, WeightRecord
from ctxfusion.streams.registry import create_stream, list_streams, register_stream, stream_info

#: built-in stream families; importing a module registers its streams
BUILTIN_MODULES = (
    "ctxfusion.streams.resnet",
    "ctxfusion.streams.efficientnet_lite",
    "ctxfusion.streams.squeezenet_places365",
    "ctxfusion.scenes.streams",
)
for _module in BUILTIN_MODULES:
    importlib.import_module(_module)

__all__ = [
    "Preprocessing",
    "Stream",
    "WeightRecord",
    "create_stream",
    "list_streams",
    "register_stream",
    "stream_info",
]
