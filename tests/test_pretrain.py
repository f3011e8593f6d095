"""Pretraining (a tiny real run through the CLI) and the two shipped streams."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ctxfusion.cli import main as cli_main
from ctxfusion.errors import ConfigError, WeightsError
from ctxfusion.io import sha256_file
from ctxfusion.scenes.benchmark import CLASS_NAMES, SCENE_NAMES
from ctxfusion.scenes.streams import WEIGHTS_DIR, read_weight_records
from ctxfusion.streams import create_stream, stream_info

STREAMS = {"scenes-object-resnet18": ("object", CLASS_NAMES),
           "scenes-scene-resnet18": ("scene", SCENE_NAMES)}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    status = cli_main(["pretrain", "--out", str(out), "--steps", "2", "--width", "4",
                       "--batch-size", "8", "--eval-images", "16", "--no-progress",
                       "--seed", "10001"])
    assert status == 0
    return out


def test_tiny_pretraining_writes_loadable_weights_and_record(tiny_run):
    records = read_weight_records(tiny_run)
    assert set(records) == {f"{name}.safetensors" for name in STREAMS}
    for name, (domain, labels) in STREAMS.items():
        record = records[f"{name}.safetensors"]
        assert record["sha256"] == sha256_file(tiny_run / f"{name}.safetensors")
        assert record["domain"] == domain and record["seed"] == 10001
        assert record["settings"]["width"] == 4 and record["settings"]["steps"] == 2
        assert "--steps 2" in record["command"] and 0 <= record["heldout_accuracy"] <= 1
        stream = create_stream(name, weights=str(tiny_run / f"{name}.safetensors"))
        assert stream.feature_dim == 32 and stream.labels == labels
        assert stream.weights_sha256 == record["sha256"]


def test_tampered_weights_are_refused(tiny_run, tmp_path):
    name = "scenes-object-resnet18.safetensors"
    (tmp_path / "weights.json").write_text((tiny_run / "weights.json").read_text())
    tensors = load_file(str(tiny_run / name))
    tensors["fc.bias"] = tensors["fc.bias"] + 1
    save_file(tensors, str(tmp_path / name), metadata={"format": "x"})
    with pytest.raises(WeightsError, match="does not match the recorded"):
        create_stream("scenes-object-resnet18", weights=str(tmp_path / name))


def test_wrong_domain_is_refused(tiny_run):
    with pytest.raises(WeightsError, match="domain 'scene'"):
        create_stream("scenes-scene-resnet18",
                      weights=str(tiny_run / "scenes-object-resnet18.safetensors"))


def test_benchmark_seeds_are_reserved(tmp_path):
    with pytest.raises(ConfigError, match="seed=5"):
        from ctxfusion.scenes.pretrain import pretrain_stream
        pretrain_stream("object", steps=1, seed=5)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_shipped_weights_match_record_and_load(name):
    record = read_weight_records(WEIGHTS_DIR)[f"{name}.safetensors"]
    path = WEIGHTS_DIR / f"{name}.safetensors"
    assert sha256_file(path) == record["sha256"] == stream_info(name).weights.sha256
    assert path.stat().st_size < 3_000_000
    stream = create_stream(name)
    domain, labels = STREAMS[name]
    assert stream.domain == domain and stream.labels == labels and stream.input_size == 64
    assert stream.feature_dim == stream_info(name).feature_dim
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    features = stream(x)
    assert features.shape == (2, stream.feature_dim)
    features.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert stream(torch.rand(1, 3, 48, 48)).shape == (1, stream.feature_dim)  # resized inside
    assert json.loads(json.dumps(stream.describe()))["weights_sha256"] == record["sha256"]


def test_pretraining_is_reproducible(tiny_run, tmp_path):
    args = ["pretrain", "--out", str(tmp_path), "--steps", "2", "--width", "4", "--batch-size",
            "8", "--eval-images", "16", "--no-progress", "--seed", "10001", "--domains", "scene"]
    assert cli_main(args) == 0
    name = "scenes-scene-resnet18.safetensors"
    assert sha256_file(tmp_path / name) == sha256_file(tiny_run / name)


def test_streams_command_finds_the_shipped_weights() -> None:
    from ctxfusion.cli.streams_cmd import stream_rows

    rows = {row["name"]: row for row in stream_rows()}
    for name in ("scenes-object-resnet18", "scenes-scene-resnet18"):
        assert rows[name]["present"] and rows[name]["present"].endswith(f"{name}.safetensors")
