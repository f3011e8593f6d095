"""Named stream factories, timm-style: ``create_stream("places365-resnet18")``.

Besides the registered streams, names with a library prefix build that library's models:
``torchvision:<name>`` and ``timm:<name>`` (see :mod:`ctxfusion.streams.external`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ctxfusion.errors import ConfigError
from ctxfusion.streams.base import Preprocessing, Stream, WeightRecord


@dataclass(frozen=True)
class StreamEntry:
    """A stream known by name: its factory and the facts known without building it.

    ``feature_dim`` is None for library streams (``torchvision:``/``timm:``), whose feature
    size is found by a forward pass when they are built.
    """

    name: str
    factory: Callable[..., Stream]
    domain: str
    feature_dim: int | None
    preprocessing: Preprocessing
    weights: WeightRecord | None
    description: str

    @property
    def input_size(self) -> int:
        """The default square input side (``preprocessing.input_size``)."""
        return self.preprocessing.input_size


_REGISTRY: dict[str, StreamEntry] = {}


def register_stream(
    name: str,
    *,
    domain: str,
    feature_dim: int,
    preprocessing: Preprocessing,
    weights: WeightRecord | None,
    description: str = "",
) -> Callable[[Callable[..., Stream]], Callable[..., Stream]]:
    """Decorator registering ``factory(weights: str | Path | None = None, **kw) -> Stream``.

    ``preprocessing`` is the stream's default; the factory's stream must carry an equal one
    (a file's own statistics may differ, e.g. a re-pretrained scenes stream).
    """

    def decorate(factory: Callable[..., Stream]) -> Callable[..., Stream]:
        if name in _REGISTRY:
            raise ValueError(f"stream {name!r} is registered twice")
        if ":" in name:
            raise ValueError(f"stream name {name!r}: ':' is reserved for library prefixes")
        _REGISTRY[name] = StreamEntry(
            name, factory, domain, feature_dim, preprocessing, weights, description
        )
        return factory

    return decorate


def _ensure_builtin_streams() -> None:
    # Importing the package registers every built-in stream.
    import ctxfusion.streams  # noqa: F401


def list_streams(library: str | None = None) -> list[str]:
    """Names of all registered streams, sorted; with ``library`` ("torchvision" or "timm"),
    the prefixed names of that library's classification models instead."""
    if library is not None:
        from ctxfusion.streams import external

        return external.list_library_streams(library)
    _ensure_builtin_streams()
    return sorted(_REGISTRY)


def stream_info(name: str) -> StreamEntry:
    """The entry of ``name`` (registered, or ``torchvision:``/``timm:``); ConfigError else."""
    _ensure_builtin_streams()
    if name in _REGISTRY:
        return _REGISTRY[name]
    from ctxfusion.streams import external

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
