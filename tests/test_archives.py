"""Archives are unpacked once, atomically, and members escaping the folder are refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ctxfusion.data.archives import unpack_once
from ctxfusion.errors import DataError


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unpacks_once_and_reuses(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar.gz", {"top/x.txt": b"hello"})
    target = unpack_once(archive, tmp_path / "out")
    assert (target / "top" / "x.txt").read_bytes() == b"hello"
    (target / "top" / "x.txt").write_bytes(b"kept")
    assert unpack_once(archive, tmp_path / "out") == target
    assert (target / "top" / "x.txt").read_bytes() == b"kept"  # not unpacked again


def test_refuses_escaping_members_and_leaves_nothing(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", {"../escaped.txt": b"x"})
    with pytest.raises(DataError, match="cannot unpack"):
        unpack_once(archive, tmp_path / "sub" / "out")
    assert not (tmp_path / "sub" / "escaped.txt").exists()
    assert not (tmp_path / "sub" / "out").exists()
    assert not list((tmp_path / "sub").glob("out.partial-*"))


def test_missing_archive_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        unpack_once(tmp_path / "nope.tar.gz", tmp_path / "out")
