"""Named stream factories, timm-style: ``create_stream("places365-resnet18")``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ctxfusion.errors import ConfigError
from ctxfusion.streams.base import Stream, WeightRecord


@dataclass(frozen=True)
class StreamEntry:
    """A registered stream: its factory and the facts known without building it."""

    name: str
    factory: Callable[..., Stream]
    domain: str
    feature_dim: int
    input_size: int
    weights: WeightRecord | None
    description: str


_REGISTRY: dict[str, StreamEntry] = {}


def register_stream(
    name: str,
    *,
    domain: str,
    feature_dim: int,
    input_size: int,
    weights: WeightRecord | None,
    description: str = "",
) -> Callable[[Callable[..., Stream]], Callable[..., Stream]]:
    """Decorator registering ``factory(weights: str | Path | None = None, **kw) -> Stream``."""

    def decorate(factory: Callable[..., Stream]) -> Callable[..., Stream]:
        if name in _REGISTRY:
            raise ValueError(f"stream {name!r} is registered twice")
        _REGISTRY[name] = StreamEntry(
            name, factory, domain, feature_dim, input_size, weights, description
        )
        return factory

    return decorate


def _ensure_builtin_streams() -> None:
    # Importing the package registers every built-in stream.
    import ctxfusion.streams  # noqa: F401


def list_streams() -> list[str]:
    """Names of all registered streams, sorted."""
    _ensure_builtin_streams()
    return sorted(_REGISTRY)


def stream_info(name: str) -> StreamEntry:
    """The registry entry of ``name``; a clear error listing valid names otherwise."""
    _ensure_builtin_streams()
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown stream {name!r}; registered streams: {valid}") from None


def create_stream(name: str, weights: str | None = None, **kwargs) -> Stream:
    """Build the stream ``name`` with its registered weights, or those at path ``weights``.

    The returned stream is in eval mode with gradients disabled on its parameters (streams are
    frozen in the method); gradients still flow to the input, which attacks need.
    """
    entry = stream_info(name)
    stream = entry.factory(weights=weights, **kwargs)
    stream.eval()
    for parameter in stream.parameters():
        parameter.requires_grad_(False)
    return stream
