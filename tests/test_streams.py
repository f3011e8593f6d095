"""The pretrained streams: real weights where available, synthetic checkpoints in real formats."""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import pickle
import shutil
import struct
import types
from pathlib import Path

import pytest
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image

from conftest import shared_path
from ctxfusion.cli import streams_cmd as streams_cli
from ctxfusion.errors import WeightsError
from ctxfusion.streams import create_stream, list_streams
from ctxfusion.streams.base import WeightRecord
from ctxfusion.streams.resnet import places365_labels
from ctxfusion.streams.weights import load_torch_checkpoint, resolve_weights

MY_STREAMS = [
    "resnet18-imagenet", "resnet18-places365", "efficientnet-lite0-imagenet",
    "squeezenet-places365",
]
SQUEEZE_DIR = ("weights", "places365-squeezenet")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Weights cache in a temporary folder; downloads disabled."""
    monkeypatch.setenv("CTXFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CTXFUSION_OFFLINE", "1")


@functools.lru_cache(maxsize=4)
def _random_resnet_state(num_classes: int) -> dict[str, torch.Tensor]:
    """A seeded random ResNet18 state dict (cached: tests only read it)."""
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=num_classes).state_dict()


class _Py2Pickler(pickle._Pickler):
    """Writes `str` as Python 2 byte strings (SHORT_BINSTRING), as CSAIL's checkpoints hold."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str) -> None:
        data = obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str


_PY2_PICKLE = types.ModuleType("py2_pickle")  # what torch.save calls of a pickle module
_PY2_PICKLE.Pickler = _Py2Pickler
_PY2_PICKLE.dump = lambda obj, f, protocol=2: _Py2Pickler(f, protocol).dump(obj)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Synthetic checkpoints in the real formats (random weights), written once per module."""
    root = tmp_path_factory.mktemp("checkpoints")
    imagenet = _random_resnet_state(1000)
    places = _random_resnet_state(365)
    csail = {"epoch": 90, "arch": "résnet18", "best_prec1": 54.7,
             "state_dict": {f"module.{k}": v for k, v in places.items()}}
    paths = {
        "imagenet": root / "my_resnet18.pth",
        "csail": root / "my_places.pth.tar",
        "csail_py2": root / "py2_places.pth.tar",
        "places10": root / "places_10way.pth.tar",
    }
    torch.save(imagenet, paths["imagenet"])
    torch.save(csail, paths["csail"])
    # Python 2's legacy (non-zip) format with byte-string keys, like the real CSAIL file.
    torch.save(csail, paths["csail_py2"], pickle_module=_PY2_PICKLE, pickle_protocol=2,
               _use_new_zipfile_serialization=False)
    ten = _random_resnet_state(10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in ten.items()}}, paths["places10"])
    return paths


def test_registry_lists_the_four_streams():
    names = list_streams()
    assert set(MY_STREAMS) <= set(names)


def test_places365_labels():
    labels = places365_labels()
    assert len(labels) == 365 and len(set(labels)) == 365
    assert labels[0] == "airfield" and labels[-1] == "zen_garden"
    assert "food_court" in labels and "mountain_snowy" in labels


def test_resnet18_imagenet_from_plain_state_dict(checkpoints):
    stream = create_stream("resnet18-imagenet", weights=checkpoints["imagenet"])
    assert (stream.domain, stream.feature_dim, len(stream.labels)) == ("object", 512, 1000)
    assert stream.labels[0] == "tench" and len(stream.weights_sha256) == 64
    reference = torchvision.models.resnet18()
    reference.load_state_dict(torch.load(checkpoints["imagenet"], weights_only=True))
    reference.eval()
    x = torch.rand(2, 3, 224, 224)
    normalised = TF.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    with torch.no_grad():
        assert stream(x).shape == (2, 512)
        torch.testing.assert_close(stream.classify(x), reference(normalised))


@pytest.mark.parametrize("kind", ["csail", "csail_py2"])
def test_resnet18_places365_from_csail_format(checkpoints, kind):
    stream = create_stream("resnet18-places365", weights=checkpoints[kind])
    assert (stream.domain, stream.feature_dim, len(stream.labels)) == ("scene", 512, 365)
    expected = _random_resnet_state(365)
    for key, value in stream.net.state_dict().items():
        torch.testing.assert_close(value, expected[key])
    with torch.no_grad():
        assert stream(torch.rand(1, 3, 224, 224)).shape == (1, 512)


def test_python2_checkpoint_needs_and_gets_latin1(checkpoints):
    path = checkpoints["csail_py2"]
    assert load_torch_checkpoint(path, encoding="latin1")["arch"] == "résnet18"
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        load_torch_checkpoint(path)  # utf-8 cannot decode the latin1 byte string


def test_wrong_class_count_is_a_clear_error(checkpoints, tmp_path):
    with pytest.raises(WeightsError, match=r"10-way classifier \(fc.weight.*365 classes"):
        create_stream("resnet18-places365", weights=checkpoints["places10"])
    plain_places = tmp_path / "places_plain.pth"
    torch.save(_random_resnet_state(365), plain_places)
    with pytest.raises(WeightsError, match="365-way classifier.*1000 classes"):
        create_stream("resnet18-imagenet", weights=plain_places)
    with pytest.raises(WeightsError, match="is a dict, expected a state dict"):
        create_stream("resnet18-imagenet", weights=checkpoints["csail"])  # CSAIL's wrapper


def test_registered_name_with_bad_hash_is_rejected(checkpoints, tmp_path):
    claimed = tmp_path / "resnet18-f37072fd.pth"  # torchvision's name, not its content
    shutil.copy(checkpoints["imagenet"], claimed)
    with pytest.raises(WeightsError, match=r"does not start with 'f37072fd'"):
        create_stream("resnet18-imagenet", weights=claimed)
    # The same file found in the cache by name is rejected as well.
    cache = tmp_path / "home" / "weights"
    cache.mkdir(parents=True)
    shutil.copy(claimed, cache / claimed.name)
    with pytest.raises(WeightsError, match="f37072fd"):
        create_stream("resnet18-imagenet")


def test_cached_file_without_known_hash_loads(checkpoints, tmp_path):
    cache = tmp_path / "home" / "weights"
    cache.mkdir(parents=True)
    shutil.copy(checkpoints["csail"], cache / "resnet18_places365.pth.tar")
    assert create_stream("resnet18-places365").feature_dim == 512


def test_missing_weights_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXFUSION_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(WeightsError) as info:
        create_stream("resnet18-places365")
    message = str(info.value)
    for part in ("'resnet18-places365'", "'resnet18_places365.pth.tar'",
                 "http://places2.csail.mit.edu/models_places365/resnet18_places365.pth.tar",
                 str(tmp_path / "home" / "weights" / "resnet18_places365.pth.tar"),
                 "CTXFUSION_OFFLINE=1"):
        assert part in message
    with pytest.raises(WeightsError, match="does not exist"):
        create_stream("resnet18-imagenet", weights=tmp_path / "nowhere.pth")


def test_squeezenet_bad_hash_is_rejected(tmp_path):
    source = shared_path(*SQUEEZE_DIR, "squeezenet_weights_places365.params")
    tampered = tmp_path / source.name
    data = bytearray(source.read_bytes())
    data[-10] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"has sha256 [0-9a-f]{64}, expected 162b8896"):
        create_stream("squeezenet-places365", weights=tampered)


def _stream_for_test(name: str, checkpoints: dict[str, Path]):
    if name == "resnet18-imagenet":
        return create_stream(name, weights=checkpoints["imagenet"])
    if name == "resnet18-places365":
        return create_stream(name, weights=checkpoints["csail"])
    if name == "squeezenet-places365":
        shared_path(*SQUEEZE_DIR, "squeezenet_weights_places365.params")
    return create_stream(name)


@pytest.mark.parametrize("name", MY_STREAMS)
def test_gradients_reach_the_input(name, checkpoints):
    stream = _stream_for_test(name, checkpoints)
    assert not any(p.requires_grad for p in stream.parameters())
    x = torch.rand(2, 3, 96, 80, requires_grad=True)  # resized inside the stream
    features = stream(x)
    assert features.shape == (2, stream.feature_dim)
    features.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def _square_crop(image: Image.Image, box: list[float]) -> Image.Image:
    """A square around the box (side = its longer edge, kept inside the image)."""
    x, y, w, h = box
    side = min(max(w, h), image.width, image.height)
    left = min(max(x + w / 2 - side / 2, 0), image.width - side)
    top = min(max(y + h / 2 - side / 2, 0), image.height - side)
    return image.crop((left, top, left + side, top + side))


def test_efficientnet_lite0_classifies_real_coco_crops(coco_mini):
    annotations = json.loads((coco_mini / "annotations" / "instances_train2017.json").read_text())
    category = {c["id"]: c["name"] for c in annotations["categories"]}
    files = {i["id"]: i["file_name"] for i in annotations["images"]}
    wanted = {"elephant": {"African elephant", "Indian elephant", "tusker"},
              "pizza": {"pizza"}, "refrigerator": {"refrigerator"}, "zebra": {"zebra"}}
    largest: dict[str, dict] = {}
    for ann in annotations["annotations"]:
        name = category[ann["category_id"]]
        if name in wanted and not ann["iscrowd"] and ann["area"] > largest.get(name, {}).get(
                "area", 0):
            largest[name] = ann
    crops = []
    for name in wanted:
        image = Image.open(coco_mini / "train2017" / files[largest[name]["image_id"]])
        crop = _square_crop(image.convert("RGB"), largest[name]["bbox"])
        crops.append(TF.to_tensor(crop.resize((224, 224), Image.BILINEAR)))
    stream = create_stream("efficientnet-lite0-imagenet")
    assert (stream.feature_dim, stream.domain, len(stream.labels)) == (1280, "object", 1000)
    with torch.no_grad():
        batch = torch.stack(crops)
        assert stream(batch).shape == (4, 1280)
        top5 = stream.classify(batch).topk(5, dim=1).indices
    hits = {name: bool(wanted[name] & {stream.labels[i] for i in row})
            for name, row in zip(wanted, top5.tolist(), strict=True)}
    assert sum(hits.values()) >= 3, hits


def test_squeezenet_places365_recognises_sample_scenes():
    samples = shared_path(*SQUEEZE_DIR, "samples")
    sensible = {
        "mountains.jpg": {"mountain", "mountain_snowy", "mountain_path", "valley", "glacier",
                          "canyon", "cliff", "river", "tundra", "butte"},
        "cam_example.jpg": {"food_court", "cafeteria", "fastfood_restaurant", "restaurant",
                            "dining_hall", "banquet_hall", "shopping_mall/indoor",
                            "market/indoor", "beer_hall", "pizzeria"},
    }
    images = []
    for file_name in sensible:
        image = Image.open(samples / file_name).convert("RGB").resize((256, 256), Image.BILINEAR)
        images.append(TF.center_crop(TF.to_tensor(image), [224, 224]))
    stream = create_stream("squeezenet-places365")
    assert (stream.feature_dim, stream.domain, len(stream.labels)) == (512, "scene", 365)
    with torch.no_grad():
        batch = torch.stack(images)
        assert stream(batch).shape == (2, 512)
        probabilities = stream.classify(batch).softmax(dim=1)
    assert probabilities.shape == (2, 365)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(2))
    for (file_name, names), row in zip(sensible.items(), probabilities, strict=True):
        top5 = {stream.labels[i] for i in row.topk(5).indices.tolist()}
        assert names & top5, (file_name, top5)


def test_squeezenet_conversion_is_cached_by_source_hash(tmp_path):
    shared_path(*SQUEEZE_DIR, "squeezenet_weights_places365.params")
    first = create_stream("squeezenet-places365")
    converted = list((tmp_path / "home" / "weights").glob("squeezenet_places365-*.safetensors"))
    assert [p.name for p in converted] == [f"squeezenet_places365-{first.weights_sha256[:16]}"
                                           ".safetensors"]
    second = create_stream("squeezenet-places365")  # now read from the safetensors file
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=key)


def test_streams_cli_lists_streams_and_presence(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CTXFUSION_SHARED", str(tmp_path / "no-shared"))
    parser = argparse.ArgumentParser()
    streams_cli.configure(parser)
    assert streams_cli.main(parser.parse_args(["--json"])) == 0
    rows = {row["name"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(MY_STREAMS) <= set(rows)
    places = rows["resnet18-places365"]
    assert (places["domain"], places["feature_dim"], places["input_size"]) == ("scene", 512, 224)
    assert places["present"] is None and places["url"].endswith("resnet18_places365.pth.tar")
    assert rows["squeezenet-places365"]["present"] is None  # shared folder pointed elsewhere
    assert streams_cli.main(parser.parse_args([])) == 0
    assert "resnet18_places365.pth.tar" in capsys.readouterr().out


def test_download_goes_to_the_cache_and_is_verified(tmp_path, monkeypatch):
    """The online path, with a file:// URL (urllib serves it; no network involved)."""
    monkeypatch.delenv("CTXFUSION_OFFLINE")
    monkeypatch.setenv("CTXFUSION_SHARED", str(tmp_path / "no-shared"))
    served = tmp_path / "server" / "w.bin"
    served.parent.mkdir()
    served.write_bytes(b"weights")
    good = WeightRecord("w.bin", hashlib.sha256(b"weights").hexdigest(), served.as_uri())
    path = resolve_weights(good, stream_name="demo")
    assert path == tmp_path / "home" / "weights" / "w.bin" and path.read_bytes() == b"weights"
    bad = WeightRecord("v.bin", "0" * 64, served.as_uri())
    with pytest.raises(WeightsError, match="expected 0000"):
        resolve_weights(bad, stream_name="demo")
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.bin"]  # nothing half-written
    monkeypatch.setenv("CTXFUSION_OFFLINE", "1")
    with pytest.raises(WeightsError, match="CTXFUSION_OFFLINE=1"):
        resolve_weights(bad, stream_name="demo")
