"""One run directory, one writer, no silent overwrite.

:class:`RunDirLock` holds an OS-level lock on ``<out>/.lock`` for the life of a run: the
kernel releases it when the process ends, however it ends (a killed run leaves no stale
lock). :func:`inspect_run_dir` compares the resolved config of the run already in ``out``
with the new one and refuses a different one unless ``--overwrite`` was given, in which case
:func:`move_aside` moves the old run to a sibling folder (it is never deleted).
"""

from __future__ import annotations

# fcntl.flock (stdlib, Linux and macOS) rather than the filelock package: the lock is the
# kernel's, released when the process dies, and the holder's pid is written into the file
# we lock, so a refused writer can name it.
import errno
import fcntl
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctxfusion.errors import ConfigError, DataError
from ctxfusion.schema import RunInfo, RunPaths

#: errno of a lock that another process holds
_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
#: the lock file inside a run directory (kept: removing it would race with a new writer)
LOCK_NAME = ".lock"
#: config keys that change how a run executes, not its results (a resume may change them,
#: e.g. a lower batch_size after running out of memory)
EXECUTION_KEYS = ("device", "batch_size", "gradient_batch_size", "num_workers", "cuda",
                  "cache_dir")
#: what :func:`inspect_run_dir` decides: a new run, resume, nothing to do, or replace
FRESH, RESUME, COMPLETE, REPLACE = "fresh", "resume", "complete", "replace"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys (``blur.sigmas``, ``datasets[0].seed``) to leaf values."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every result-changing key whose value differs (execution
    settings, :data:`EXECUTION_KEYS`, are ignored)."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    missing = object()
    lines = []
    for key in sorted(set(flat_old) | set(flat_new)):
        if key.split(".")[0].split("[")[0] in EXECUTION_KEYS:
            continue
        before, after = flat_old.get(key, missing), flat_new.get(key, missing)
        if before != after:
            shown = ["(absent)" if v is missing else json.dumps(v, default=str)
                     for v in (before, after)]
            lines.append(f"{key}: {shown[0]} -> {shown[1]}")
    return lines


def _recorded_config(paths: RunPaths) -> dict[str, Any] | None:
    """The run's config.yaml, or None when it was never written."""
    if not paths.config_yaml.is_file():
        return None
    try:
        data = yaml.safe_load(paths.config_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--out {paths.root}: {paths.config_yaml.name} cannot be read ({exc}):"
                          " give a new --out, or --overwrite to move this run aside") from None
    return data if isinstance(data, dict) else None


def inspect_run_dir(out: Path, config: dict[str, Any], overwrite: bool = False) -> str:
    """What to do with ``out`` for a run of the resolved ``config`` (its ``to_dict()``):
    :data:`FRESH`, :data:`RESUME` (same config, incomplete), :data:`COMPLETE` (same config,
    finished) or :data:`REPLACE` (``overwrite``: move the old run aside). A different config
    without ``overwrite`` raises ConfigError listing the differing keys. Writes nothing;
    ``out`` passed :func:`~ctxfusion.experiments.recorder.check_run_dir` already."""
    paths = RunPaths(out)
    if not paths.run_json.is_file():
        return FRESH
    if overwrite:
        return REPLACE
    try:
        info = RunInfo.from_json(json.loads(paths.run_json.read_text(encoding="utf-8")),
                                 str(paths.run_json))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, DataError) as exc:
        raise ConfigError(f"--out {out}: {paths.run_json.name} cannot be read ({exc}): give a "
                          "new --out, or --overwrite to move this run aside") from None
    recorded = _recorded_config(paths)
    if recorded is not None:
        new = yaml.safe_load(yaml.safe_dump(config, sort_keys=False))  # as config.yaml has it
        differences = config_differences(recorded, new)
        if differences:
            shown = "; ".join(differences[:12])
            more = f" (and {len(differences) - 12} more)" if len(differences) > 12 else ""
            raise ConfigError(
                f"--out {out} holds a run (status: {info.state}) whose config differs: "
                f"{shown}{more}; refusing to overwrite it: give a new --out, or pass "
                "--overwrite to move the old run aside (it is kept, not deleted)")
    return COMPLETE if info.state == "complete" else RESUME


def move_aside(out: Path) -> Path:
    """Move every entry of ``out`` but the lock into a new sibling folder
    ``<out>.replaced-<time>`` and return it (the lock stays: the writer keeps holding it)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = out.with_name(f"{out.name}.replaced-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = out.with_name(f"{out.name}.replaced-{stamp}-{n}")
    aside.mkdir()
    for entry in sorted(out.iterdir()):
        if entry.name != LOCK_NAME:
            os.rename(entry, aside / entry.name)
    return aside


@dataclass
class RunDirLock:
    """An exclusive lock on ``out`` (``<out>/.lock``), held from :meth:`acquire` to
    :meth:`release` or the end of the process. Folders it had to create are removed again on
    release when nothing but the lock was written into them."""

    out: Path
    _fd: int | None = None
    _created: list[Path] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.out / LOCK_NAME

    def acquire(self) -> None:
        """Take the lock or raise ConfigError naming the directory and the holder's pid."""
        missing = []
        folder = Path(os.path.abspath(self.out))
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        self.out.mkdir(parents=True, exist_ok=True)
        self._created = missing  # innermost first
        for _ in range(5):  # the file may be replaced between open and flock: try again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in _HELD:
                    raise
                raise self._held() from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            os.close(fd)
        raise ConfigError(f"--out {self.out}: could not lock {self.path}: try again")

    def refuse_if_held(self) -> None:
        """The error of :meth:`acquire` if another process holds the lock now; takes nothing
        and creates nothing (the run command asks this first, before its slow imports)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return  # no lock file: nobody holds it (acquire decides for good)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _HELD:
                raise self._held() from None
            raise
        finally:
            os.close(fd)  # closing releases the probe's own lock

    def _held(self) -> ConfigError:
        return ConfigError(
            f"--out {self.out}: another ctxfusion run is writing into it ({self._holder()}): "
            "one run directory has one writer; wait for it to finish (the same command then "
            "resumes or reports it complete), or give another --out")

    def _holder(self) -> str:
        """``pid N`` of the lock's holder (it writes its pid right after locking)."""
        for _ in range(20):
            try:
                text = self.path.read_text(encoding="utf-8").strip()
            except OSError:
                text = ""
            if text.isdigit():
                return f"pid {text}"
            time.sleep(0.05)
        return "pid unknown"

    def release(self) -> None:
        """Release the lock; remove the lock file and the folders :meth:`acquire` created
        when nothing else was written there."""
        if self._fd is None:
            return
        try:
            self._cleanup()
        finally:
            os.close(self._fd)
            self._fd = None

    def _cleanup(self) -> None:
        try:
            if {p.name for p in self.out.iterdir()} != {LOCK_NAME}:
                return
            self.path.unlink()
        except OSError:
            return
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                return

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
