"""Unpacking dataset archives once (they may sit on read-only disks, like ../shared)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

from ctxfusion.errors import DataError


def unpack_once(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack the .tar(.gz) ``archive`` into ``target`` unless a finished unpack is there.

    The archive is unpacked into a temporary folder that is renamed into place, so an
    interrupted unpack is never mistaken for a finished one. Members that would escape the
    folder are refused (tarfile's ``data`` filter).
    """
    archive, target = Path(archive), Path(target)
    if (target / ".unpacked").exists():
        return target
    if not archive.is_file():
        raise DataError(f"archive {archive} not found")
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise DataError(f"cannot unpack {archive}: {exc}") from exc
    (partial / ".unpacked").touch()
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


def archive_cache_name(archive: str | os.PathLike) -> str:
    """A folder name for an archive's unpacked copy: its stem plus a hash of path and size."""
    archive = Path(archive)
    key = f"{archive.resolve()}:{archive.stat().st_size if archive.exists() else 0}"
    return f"{archive.name.split('.')[0]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
