"""The content-keyed feature cache: hits, crash safety, corruption recovery; extraction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ctxfusion.io
from ctxfusion.errors import ConfigError
from ctxfusion.features import (
    FeatureCache,
    cache_key,
    cached_extract,
    extract_features,
    module_digest,
)
from ctxfusion.perturb.views import make_view

DESCRIPTION = {"stream": "tiny-conv", "weights_sha256": "ab" * 32, "split": "test",
               "image_size": 16, "view": "full", "perturbation": {"kind": "blur", "level": 5.0},
               "versions": {"features": 1, "blur": 1}}


class CountingStream(nn.Module):
    """A tiny real conv stream that counts its forward calls."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x).relu().mean(dim=(2, 3))


def loader(n: int = 10) -> list:
    g = torch.Generator().manual_seed(3)
    images = torch.rand(n, 3, 16, 16, generator=g)
    labels = torch.arange(n) % 3
    boxes = [torch.tensor([[2.0, 2.0, 10.0, 12.0]]) for _ in range(n)]
    ids = torch.arange(100, 100 + n)
    return [(images[i : i + 4], labels[i : i + 4], boxes[i : i + 4], ids[i : i + 4])
            for i in range(0, n, 4)]


def compute() -> dict[str, torch.Tensor]:
    feats, labels, ids = extract_features({"s": CountingStream(0)}, loader())
    return {"features": feats["s"], "labels": labels, "ids": ids}


def test_key_is_canonical_and_content_sensitive():
    reordered = dict(reversed(list(DESCRIPTION.items())))
    assert cache_key(reordered) == cache_key(DESCRIPTION)
    assert cache_key({**DESCRIPTION, "split": "train"}) != cache_key(DESCRIPTION)
    with pytest.raises(ConfigError, match="JSON"):
        cache_key({"level": torch.tensor(1.0)})


def test_second_run_hits_the_cache(tmp_path):
    cache = FeatureCache(tmp_path)
    first = cache.get_or_compute(DESCRIPTION, compute)
    second = cache.get_or_compute(DESCRIPTION, lambda: pytest.fail("recomputed a cached entry"))
    assert (cache.hits, cache.misses) == (1, 1)
    for key in ("features", "labels", "ids"):
        assert torch.equal(first[key], second[key])
    assert first["features"].shape == (10, 4) and first["ids"][0] == 100


def test_crash_mid_write_leaves_no_trusted_file(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)

    def crash(src, dst):  # the temporary file is fully written, then the process "dies"
        assert Path(src).stat().st_size > 0
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as patch:
        patch.setattr(ctxfusion.io.os, "replace", crash)
        with pytest.raises(KeyboardInterrupt):
            cache.get_or_compute(DESCRIPTION, compute)
    assert not cache.path(DESCRIPTION).exists()
    # a SIGKILL would also leave the temporary: it is never read
    (tmp_path / f"{cache.path(DESCRIPTION).name}.tmp-999999").write_bytes(b"partial")
    again = cache.get_or_compute(DESCRIPTION, compute)
    assert cache.misses == 2 and cache.hits == 0
    assert torch.equal(again["features"], compute()["features"])


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_file_is_deleted_and_recomputed(tmp_path, damage):
    cache = FeatureCache(tmp_path)
    reference = cache.get_or_compute(DESCRIPTION, compute)
    path = cache.path(DESCRIPTION)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # a flipped bit in the last feature value: loads fine, fails the sha256 check
        data[-1] ^= 0x01
        path.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="deleting it and recomputing"):
        again = cache.get_or_compute(DESCRIPTION, compute)
    assert cache.misses == 2
    assert torch.equal(again["features"], reference["features"])
    assert cache.get_or_compute(DESCRIPTION, compute) is not None and cache.hits == 1


def test_extract_runs_each_stream_once_per_batch_and_perturbs_once():
    fg, bg = CountingStream(0), CountingStream(1)
    perturb_calls = []

    def perturb(images, labels, boxes):
        perturb_calls.append(len(images))
        return images.flip(-1)

    feats, labels, ids = extract_features({"fg": fg, "bg": bg}, loader(),
                                          perturb=perturb, views={"bg": make_view("context")})
    assert fg.calls == bg.calls == len(perturb_calls) == 3
    assert feats["fg"].shape == feats["bg"].shape == (10, 4)
    assert torch.equal(ids, torch.arange(100, 110)) and labels.shape == (10,)
    # the view reached only bg: fg's features equal the stream on the flipped images
    images = torch.cat([b[0] for b in loader()]).flip(-1)
    with torch.no_grad():
        torch.testing.assert_close(feats["fg"], fg(images))


def test_cached_extract_runs_only_missing_streams(tmp_path):
    cache = FeatureCache(tmp_path)
    fg, bg = CountingStream(0), CountingStream(1)
    descs = {"fg": {**DESCRIPTION, "stream": "fg"}, "bg": {**DESCRIPTION, "stream": "bg"}}
    cached_extract(cache, {"fg": descs["fg"]}, {"fg": fg}, loader())
    assert fg.calls == 3
    feats, labels, ids = cached_extract(cache, descs, {"fg": fg, "bg": bg}, loader())
    assert fg.calls == 3 and bg.calls == 3 and (cache.hits, cache.misses) == (1, 2)
    assert set(feats) == {"fg", "bg"} and torch.equal(ids, torch.arange(100, 110))


def test_two_item_batches_and_module_digest():
    data = TensorDataset(torch.rand(5, 3, 8, 8), torch.arange(5))
    feats, labels, ids = extract_features({"s": CountingStream(0)}, DataLoader(data, 2))
    assert torch.equal(ids, torch.arange(5)) and feats["s"].shape == (5, 4)
    a, b = CountingStream(0), CountingStream(0)
    assert module_digest(a) == module_digest(b)
    with torch.no_grad():
        b.conv.bias[0] += 1e-6
    assert module_digest(a) != module_digest(b)
