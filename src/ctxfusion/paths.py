"""Where ctxfusion keeps caches and finds the optional real assets."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def home_dir() -> Path:
    """``$CTXFUSION_HOME`` (default ``~/.cache/ctxfusion``): weights, features, datasets."""
    home = os.environ.get("CTXFUSION_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "ctxfusion"


def shared_dir() -> Path:
    """``$CTXFUSION_SHARED``: a read-only folder of real assets (default: ``shared`` beside
    the repository root, for a source checkout)."""
    env = os.environ.get("CTXFUSION_SHARED")
    return Path(env).expanduser() if env else _REPO_ROOT.parent / "shared"


def expand_path(value: str | os.PathLike) -> Path:
    """Expand ``~`` and environment variables. ``$CTXFUSION_SHARED`` and ``$CTXFUSION_DATA``
    (default ``$CTXFUSION_HOME/data``, where the paper's datasets are expected) always have
    their defaults."""
    os.environ.setdefault("CTXFUSION_SHARED", str(shared_dir()))
    os.environ.setdefault("CTXFUSION_DATA", str(home_dir() / "data"))
    return Path(os.path.expandvars(os.path.expanduser(str(value))))
