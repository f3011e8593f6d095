"""Paths derived from config or annotation fields stay inside their root.

An experiment name becomes ``runs/<experiment>``, a dataset name a folder of the cache, a
COCO ``file_name`` a file under ``--images``: a value that is absolute or climbs out with
``..`` would write or read elsewhere, so it is refused, naming the field and the value.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from ctxfusion.errors import ConfigError, CtxfusionError


def inside(root: str | os.PathLike, path: str | os.PathLike, field: str,
           error: type[CtxfusionError] = ConfigError) -> Path:
    """``path`` resolved (symbolic links followed); raise ``error`` naming ``field`` unless it
    lies inside ``root`` (resolved too)."""
    base, target = Path(root).resolve(), Path(path).resolve()
    if target != base and base not in target.parents:
        raise error(f"{field} = {str(path)!r}: resolves to {target}, outside {base}: give a "
                    "path inside it")
    return target


def relative_name_problem(name: str) -> str | None:
    """Why ``name`` (a path relative to a root, either slash) could leave that root: it is
    absolute or climbs with ``..``; None when it stays inside."""
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.drive or pure.root:
            return "an absolute path"
        if ".." in pure.parts:
            return "climbs out with '..'"
    return None


def check_relative(name: str, field: str, root: str,
                   error: type[CtxfusionError] = ConfigError) -> None:
    """Raise ``error`` naming ``field`` when ``name`` would leave ``root``."""
    problem = relative_name_problem(name)
    if problem:
        raise error(f"{field} = {name!r}: {problem}, so it would be used outside {root}: give "
                    f"a path relative to {root}, inside it")


def check_plain_name(name: str, field: str, used_as: str) -> None:
    """A name that becomes one folder (``used_as``): no separators, not ``.``/``..``, no
    NUL, not empty."""
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(f"{field} = {name!r}: not a plain name ({used_as}): use letters, "
                          "digits, '-', '_' or '.', without '/', '\\' or '..'")
