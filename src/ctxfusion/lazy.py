"""Lazy package exports (PEP 562): a package's public names, imported on first use.

``import ctxfusion.config`` runs ``ctxfusion/__init__.py`` and ``ctxfusion/perturb/__init__.py``
first; importing their re-exported names eagerly pulled torchvision (2 s) into every command,
``ctxfusion --help`` included. A package lists its exports here instead, by module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a module
    name, absolute) on first access of ``name`` and returns its attribute ``name``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
