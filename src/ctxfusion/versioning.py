"""Explicit versions of the computations whose outputs the project caches or reports.

Each computation (stream features, blur, each attack, each training procedure, each fusion
method, the claims) declares its version next to its code::

    BLUR = computation("blur", 1, "Gaussian blur inside the object boxes")

A cached tensor's key holds the versions of every computation that made it
(:func:`versioned`), beside the stream identity and the settings. A refactor that leaves every
output equal keeps every cache; a change that alters an output must bump the version, which
recomputes exactly what that computation made and what depends on it. ``tests/golden/`` holds a
small reference output per computation with the version it was made with, and fails, naming
the version to bump, when an output changes under an unchanged version (CONTRIBUTING.md).

This module sits at the bottom of the package: it imports nothing of ctxfusion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Computation:
    """One versioned computation: its ``name`` (unique), ``version`` (a positive integer) and
    what its version ``covers`` (the code a change to which must bump it)."""

    name: str
    version: int
    covers: str


#: every declared computation by name (filled as the modules that declare them are imported)
REGISTRY: dict[str, Computation] = {}


def computation(name: str, version: int, covers: str) -> Computation:
    """Declare (register) computation ``name`` at ``version``; returns it."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"computation {name!r}: the version must be an integer >= 1, "
                         f"got {version!r}")
    declared = Computation(name, version, covers)
    known = REGISTRY.get(name)
    if known is not None and known != declared:
        raise ValueError(f"computation {name!r} is declared twice: {known} and {declared}")
    REGISTRY[name] = declared
    return declared


def current_versions(*computations: Computation) -> dict[str, int]:
    """``{name: version}`` of ``computations`` as registered now (a test may bump one in
    :data:`REGISTRY`; every cache key then follows)."""
    return {c.name: REGISTRY.get(c.name, c).version for c in computations}


def versioned(description: Mapping, *computations: Computation) -> dict:
    """``description`` with the versions of the computations that make its tensors
    (under ``versions``, merged with any already there)."""
    if not computations:
        raise ValueError("a cached computation must name at least one versioned computation")
    merged = dict(description.get("versions", {}))
    merged.update(current_versions(*computations))
    return {**description, "versions": dict(sorted(merged.items()))}


def registered_versions() -> dict[str, int]:
    """``{name: version}`` of every computation declared so far (recorded in run.json)."""
    return {name: REGISTRY[name].version for name in sorted(REGISTRY)}
