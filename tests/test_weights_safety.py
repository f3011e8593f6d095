"""Checkpoints that would run code when loaded are refused by both loaders, and run nothing."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ctxfusion.errors import UnsafeCheckpointError, WeightsError
from ctxfusion.streams import create_stream
from ctxfusion.streams.lasagne import load_lasagne_params
from ctxfusion.streams.weights import load_torch_checkpoint


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CTXFUSION_OFFLINE", "1")


class _CreatesFile:
    """Unpickling this object calls ``open(target, "w")``: it creates ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def _crafted_torch_checkpoint(tmp_path: Path, target: Path) -> Path:
    path = tmp_path / "crafted.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": _CreatesFile(target)}, path)
    return path


def _crafted_lasagne_params(tmp_path: Path, target: Path) -> Path:
    path = tmp_path / "crafted.params"
    # Protocol 4: numpy arrays then need only the allowed globals (protocol 2 under Python 3
    # would add `_codecs.encode`), so the refusal below is the payload's, nothing else's.
    payload = [np.zeros(3, np.float32), _CreatesFile(target)]
    path.write_bytes(pickle.dumps(payload, protocol=4))
    return path


def test_crafted_payloads_are_live(tmp_path):
    """Control: unrestricted loading of the crafted files does create the file."""
    target = tmp_path / "pwned_control"
    torch.load(_crafted_torch_checkpoint(tmp_path, target), weights_only=False)
    assert target.exists()
    target.unlink()
    pickle.loads(_crafted_lasagne_params(tmp_path, target).read_bytes())
    assert target.exists()


def test_torch_loader_refuses_crafted_checkpoint(tmp_path):
    target = tmp_path / "pwned"
    path = _crafted_torch_checkpoint(tmp_path, target)
    with pytest.raises(UnsafeCheckpointError, match="refused to load checkpoint .*crafted.pth"):
        load_torch_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        load_torch_checkpoint(path, encoding="latin1")
    with pytest.raises(UnsafeCheckpointError):
        create_stream("resnet18-places365", weights=path)
    for library_stream in ("torchvision:resnet18", "timm:resnet18"):
        with pytest.raises(UnsafeCheckpointError):
            create_stream(library_stream, weights=path)
    assert not target.exists()


def test_damaged_safetensors_file_is_a_weights_error(tmp_path):
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        create_stream("timm:resnet18", weights=path)


def test_lasagne_loader_refuses_crafted_pickle(tmp_path):
    target = tmp_path / "pwned"
    path = _crafted_lasagne_params(tmp_path, target)
    with pytest.raises(UnsafeCheckpointError, match=r"crafted.params.*global (io|builtins)\.open"):
        load_lasagne_params(path)
    # Through the stream factory too (a mean image in the cache gets it as far as unpickling).
    mean = tmp_path / "home" / "weights" / "mean_bgr_256.npy"
    mean.parent.mkdir(parents=True)
    np.save(mean, np.zeros((3, 256, 256), np.float32))
    with pytest.raises(UnsafeCheckpointError):
        create_stream("squeezenet-places365", weights=path)
    assert not target.exists()


def test_lasagne_loader_reads_arrays_and_rejects_other_content(tmp_path):
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4, np.float64)]
    good = tmp_path / "good.params"
    good.write_bytes(pickle.dumps(arrays, protocol=4))
    loaded = load_lasagne_params(good)
    assert len(loaded) == 2
    assert all(np.array_equal(a, b) for a, b in zip(loaded, arrays, strict=True))
    not_a_list = tmp_path / "dict.params"
    not_a_list.write_bytes(pickle.dumps({"W": np.zeros(2)}, protocol=4))
    with pytest.raises(WeightsError, match="expected a list of numpy arrays"):
        load_lasagne_params(not_a_list)
    truncated = tmp_path / "truncated.params"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(WeightsError, match="cannot read Lasagne parameter file"):
        load_lasagne_params(truncated)
