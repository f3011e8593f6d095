"""Atomic file writes and content hashes.

A run killed at any moment must leave either the old file or the complete new one, never a
truncated file that a later run would trust; hence write-to-temporary-then-rename.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

#: the name of a temporary file (or folder) written by this process: ``<name>.tmp-<pid>``
_TEMPORARY_NAME = re.compile(r".+\.tmp-(\d+)")


def _temporary_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (another user's counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def remove_stale_temp_files(root: str | os.PathLike) -> list[Path]:
    """Remove the ``*.tmp-<pid>`` files and folders under ``root`` whose writer (``pid``) is
    no longer alive: left by a run that was killed mid-write. Returns what was removed;
    a missing ``root`` or an entry that cannot be removed is skipped."""
    removed: list[Path] = []
    for folder, dirs, files in os.walk(root):
        for name in [*files, *dirs]:
            match = _TEMPORARY_NAME.fullmatch(name)
            if not match or pid_alive(int(match.group(1))):
                continue
            path = Path(folder) / name
            try:
                if name in dirs and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError:
                continue
            removed.append(path)
        dirs[:] = [d for d in dirs if Path(folder, d) not in removed]
    return removed


def writable_folder_problem(path: str | os.PathLike) -> str | None:
    """Why a folder cannot be created or written at ``path`` (it is a file, it lies under a
    file, it or its nearest existing parent is not writable), or None when it can."""
    path = Path(os.path.abspath(path))
    if path.exists() and not path.is_dir():
        return "is a file, not a folder"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so no folder can be created under it"
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "it" if existing == path else f"its parent {existing}"
        return f"{where} is not writable by this user"
    return None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_path(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_tensors(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Save tensors as safetensors atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_path(path)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                  metadata=metadata)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
