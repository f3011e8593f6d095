"""Named stream factories, timm-style: ``create_stream("places365-resnet18")``.

Besides the registered streams, names with a library prefix build that library's models:
``torchvision:<name>`` and ``timm:<name>`` (see :mod:`ctxfusion.streams.external`).

The registry sits above what it registers: the built-in stream families are imported below
(an explicit list; a new family adds its line), each registering its streams into the table
of :mod:`ctxfusion.streams.registration` with ``@register_stream``, which no family needs
this module for.
"""

from __future__ import annotations

from collections.abc import Mapping

# The built-in stream families: importing a module registers its streams.
import ctxfusion.scenes.streams as _scenes_streams
import ctxfusion.streams.efficientnet_lite as _efficientnet_lite
import ctxfusion.streams.external as external
import ctxfusion.streams.resnet as _resnet
import ctxfusion.streams.squeezenet_places365 as _squeezenet_places365
from ctxfusion.errors import ConfigError
from ctxfusion.streams.base import Stream
from ctxfusion.streams.registration import _REGISTRY
from ctxfusion.streams.registration import StreamEntry as StreamEntry  # re-exported
from ctxfusion.streams.registration import register_stream as register_stream  # re-exported

#: the modules of the built-in stream families (imported above)
BUILTIN_MODULES = tuple(module.__name__ for module in (
    _resnet, _efficientnet_lite, _squeezenet_places365, _scenes_streams))


def list_streams(library: str | None = None) -> list[str]:
    """Names of all registered streams, sorted; with ``library`` ("torchvision" or "timm"),
    the prefixed names of that library's classification models instead."""
    if library is not None:
        return external.list_library_streams(library)
    return sorted(_REGISTRY)


def stream_info(name: str) -> StreamEntry:
    """The entry of ``name`` (registered, or ``torchvision:``/``timm:``); ConfigError else."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if external.is_library_name(name):
        return external.library_entry(name)
    valid = ", ".join(sorted(_REGISTRY))
    raise ConfigError(
        f"unknown stream {name!r}; registered streams: {valid}; or a library model as "
        f"'{external.hint()}'"
    )


def create_stream(
    name: str,
    weights: str | None = None,
    preprocessing: Mapping[str, object] | None = None,
    **kwargs,
) -> Stream:
    """Build the stream ``name`` with its registered weights, or those at path ``weights``.

    ``preprocessing`` overrides fields of the stream's default preprocessing (``mean``,
    ``std``, ``input_size``; validated, ConfigError naming the stream and key otherwise).
    The returned stream is in eval mode with gradients disabled on its parameters (streams are
    frozen in the method); gradients still flow to the input, which attacks need.
    """
    entry = stream_info(name)
    stream = entry.factory(weights=weights, **kwargs)
    if preprocessing:
        stream.set_preprocessing(stream.preprocessing.override(preprocessing, name))
    stream.eval()
    for parameter in stream.parameters():
        parameter.requires_grad_(False)
    return stream
