"""The table of registered streams and the ``@register_stream`` decorator that fills it.

Stream family modules (:mod:`ctxfusion.streams.resnet`, ...) import this module to register
their factories; :mod:`ctxfusion.streams.registry` imports those modules (its explicit list of
built-in families) and looks names up here. So imports run one way: this table at the
bottom, the families above it, the registry on top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


#: the registered streams by name (filled by ``@register_stream``)
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
