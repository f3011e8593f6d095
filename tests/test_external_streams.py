"""Library streams (``torchvision:<name>``, ``timm:<name>``) and preprocessing as data.

Everything runs offline on random weights and small inputs (64 px where the architecture
allows it).
"""

from __future__ import annotations

import sys

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from ctxfusion.errors import ConfigError, WeightsError
from ctxfusion.features import stream_identity
from ctxfusion.streams import Preprocessing, create_stream, external, list_streams, stream_info

SMALL = {"input_size": 64}
IMAGENET_MEAN = [0.485, 0.456, 0.406]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Caches in a temporary folder, downloads disabled, a fixed seed."""
    monkeypatch.setenv("CTXFUSION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CTXFUSION_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("CTXFUSION_OFFLINE", "1")
    torch.manual_seed(0)


def _images(size: int = 64) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))


def _normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _classifier_input(model: torch.nn.Module, classifier: torch.nn.Module,
                      x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(what reaches ``classifier``, the logits) when ``model`` runs on ``x``."""
    seen = []
    handle = classifier.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    return seen[-1], logits


@pytest.mark.parametrize(("model", "classifier"), [
    ("resnet18", "fc"), ("mobilenet_v3_small", "classifier.3"), ("efficientnet_b0", "classifier.1"),
    ("convnext_tiny", "classifier.2"),
])
def test_torchvision_features_are_the_pooled_penultimate(tmp_path, model, classifier):
    reference = torchvision.models.get_model(model, num_classes=1000).eval()
    path = tmp_path / f"{model}.pth"
    torch.save(reference.state_dict(), path)
    stream = create_stream(f"torchvision:{model}", weights=path, preprocessing=SMALL)
    x = _images()
    wanted, logits = _classifier_input(
        reference, reference.get_submodule(classifier), _normalize(x, IMAGENET_MEAN,
                                                                   stream.preprocessing.std))
    with torch.no_grad():
        features = stream(x)
        torch.testing.assert_close(stream.head(features), logits)
    assert features.shape == (2, stream.feature_dim) == wanted.shape
    torch.testing.assert_close(features, wanted)
    assert stream.labels[0] == "tench" and len(stream.labels) == 1000
    assert stream.weights.file_name == path.name and len(stream.weights_sha256) == 64


def test_timm_features_are_forward_head_pre_logits(tmp_path):
    reference = timm.create_model("resnet18", pretrained=False).eval()
    path = tmp_path / "resnet18.safetensors"
    save_file(reference.state_dict(), str(path))
    stream = create_stream("timm:resnet18", weights=path, preprocessing=SMALL)
    x = _images()
    inputs = _normalize(x, IMAGENET_MEAN, [0.229, 0.224, 0.225])
    with torch.no_grad():
        wanted = reference.forward_head(reference.forward_features(inputs), pre_logits=True)
        features = stream(x)
        torch.testing.assert_close(stream.classify(x), reference(inputs))
    assert features.shape == (2, 512) and stream.feature_dim == 512
    torch.testing.assert_close(features, wanted)


def test_timm_vit_tiny_has_a_fixed_input_size():
    stream = create_stream("timm:vit_tiny_patch16_224", weights="random")
    assert stream.preprocessing.mean == (0.5, 0.5, 0.5) and stream.input_size == 224
    with torch.no_grad():
        assert stream(_images(48)).shape == (2, 192) == (2, stream.feature_dim)
    with pytest.raises(ConfigError, match="'input_size' cannot change.*224 px"):
        create_stream("timm:vit_tiny_patch16_224", weights="random", preprocessing=SMALL)


def test_preprocessing_comes_from_library_metadata():
    resnet = stream_info("torchvision:resnet18")
    assert (resnet.input_size, list(resnet.preprocessing.mean)) == (224, IMAGENET_MEAN)
    assert resnet.feature_dim is None and resnet.domain == "object"
    assert resnet.weights.url.endswith(resnet.weights.file_name)
    assert stream_info("torchvision:inception_v3").input_size == 299
    vit = stream_info("timm:vit_tiny_patch16_224").preprocessing
    assert (vit.input_size, vit.mean, vit.std) == (224, (0.5,) * 3, (0.5,) * 3)
    assert "timm pretrained_cfg" in vit.description
    stream = create_stream("torchvision:mobilenet_v3_small", weights="random")
    described = stream.describe()
    assert described["preprocessing"] == stream_info(stream.name).preprocessing.to_dict()
    assert described["weights_file"] == "random" and described["feature_dim"] == 1024
    assert described["weights_source"] == "random initialisation (untrained)"


def test_override_changes_features_and_cache_identity(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    base = create_stream("timm:resnet18", weights=path, preprocessing=SMALL)
    other = create_stream("timm:resnet18", weights=path,
                          preprocessing={**SMALL, "mean": [0.5] * 3, "std": [0.25] * 3})
    assert other.weights_sha256 == base.weights_sha256  # same file, other preprocessing
    identity = stream_identity(other)
    assert identity != stream_identity(base)
    assert identity["preprocessing"]["mean"] == [0.5] * 3
    assert "overridden: input_size, mean, std" in identity["preprocessing"]["description"]
    torch.testing.assert_close(other.normalize.std.flatten(), torch.full((3,), 0.25))
    with torch.no_grad():
        assert not torch.allclose(base(_images()), other(_images()))


def test_weights_file_round_trip_and_other_class_counts(tmp_path):
    source = create_stream("torchvision:resnet18", weights="random", preprocessing=SMALL)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    path = tmp_path / "ten.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}},
               path)
    stream = create_stream("torchvision:resnet18", weights=path, preprocessing=SMALL)
    assert stream.labels == [f"class_{i}" for i in range(10)]
    x = _images()
    with torch.no_grad():
        assert stream.classify(x).shape == (2, 10)
        torch.testing.assert_close(stream.classify(x), reference(_normalize(x, IMAGENET_MEAN,
                                                                            source.preprocessing.std)))
        assert not torch.allclose(stream(x), source(x))


def test_mismatched_weights_file_is_a_weights_error(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(WeightsError, match=r"does not fit stream 'torchvision:resnet18'.*"
                                           r"unexpected keys: layer1\.2"):
        create_stream("torchvision:resnet18", weights=path)
    with pytest.raises(WeightsError, match="does not exist"):
        create_stream("timm:resnet18", weights=tmp_path / "nowhere.safetensors")
    claimed = tmp_path / "resnet18-f37072fd.pth"  # torchvision's file name, other content
    claimed.write_bytes(path.read_bytes())
    with pytest.raises(WeightsError, match="does not start with 'f37072fd'"):
        create_stream("torchvision:resnet18", weights=claimed)


def test_missing_library_weights_offline_say_pass_a_path(monkeypatch):
    with pytest.raises(WeightsError, match="weights: PATH"):
        create_stream("torchvision:resnet18")
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(WeightsError, match="CTXFUSION_OFFLINE=1.*weights: PATH"):
        create_stream("timm:resnet18")


def test_unknown_names_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError, match=r"torchvision model 'resnet19'.*list_models"):
        create_stream("torchvision:resnet19", weights="random")
    with pytest.raises(ConfigError, match=r"timm model 'nonet'.*timm\.list_models\(\)"):
        stream_info("timm:nonet")
    with pytest.raises(ConfigError, match=r"unknown stream 'keras:x'.*torchvision:<name>"):
        stream_info("keras:x")
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    external._backend.cache_clear()
    with pytest.raises(ConfigError, match="pip install timm"):
        create_stream("timm:resnet18", weights="random")
    external._backend.cache_clear()


def test_list_streams_by_library():
    assert "torchvision:resnet18" in list_streams("torchvision")
    assert "timm:resnet18" in list_streams("timm")
    assert not any(":" in name for name in list_streams())
    with pytest.raises(ConfigError, match="valid: torchvision, timm"):
        list_streams("keras")


def test_gradients_reach_the_input_of_a_library_stream():
    stream = create_stream("torchvision:resnet18", weights="random", preprocessing=SMALL)
    assert not any(p.requires_grad for p in stream.parameters())
    x = _images(80).requires_grad_(True)
    stream(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --- preprocessing as data on the built-in streams ---------------------------------------


@pytest.mark.parametrize("name", ["scenes-object-resnet18", "scenes-scene-resnet18"])
def test_registered_preprocessing_matches_the_built_stream(name):
    stream = create_stream(name)
    assert stream_info(name).preprocessing == stream.preprocessing
    assert stream.input_size == 64 and stream.describe()["preprocessing"]["input_size"] == 64


def test_builtin_stream_overrides_change_features_and_identity():
    name = "scenes-object-resnet18"
    base = create_stream(name)
    x = _images()
    with torch.no_grad():
        base_features = base(x)
    for override in ({"mean": [0.5] * 3, "std": [0.25] * 3}, {"input_size": 48}):
        stream = create_stream(name, preprocessing=override)
        assert stream_identity(stream) != stream_identity(base)
        with torch.no_grad():
            assert not torch.allclose(stream(x), base_features)
    assert create_stream(name, preprocessing={"input_size": 48}).input_size == 48
    assert stream_identity(create_stream(name, preprocessing={})) == stream_identity(base)


@pytest.mark.parametrize(("override", "message"), [
    ({"size": 64}, r"unknown key\(s\) size; valid keys: mean, std, input_size"),
    ({"std": [0.2, 0.0, 0.2]}, "'std' must be 3 positive numbers"),
    ({"mean": [0.5, 0.5]}, "'mean' must be 3 numbers"),
    ({"mean": "0.5"}, "'mean' must be 3 numbers"),
    ({"input_size": -3}, "'input_size' must be a positive int"),
    ({"input_size": True}, "'input_size' must be a positive int"),
    ({"input_size": "64"}, "'input_size' must be a positive int"),
])
def test_bad_overrides_name_the_stream_and_key(override, message):
    with pytest.raises(ConfigError, match=r"stream 'scenes-object-resnet18'.*" + message):
        create_stream("scenes-object-resnet18", preprocessing=override)


def test_mean_std_cannot_override_a_scaling_preprocessing():
    lite = stream_info("efficientnet-lite0-imagenet").preprocessing
    assert lite.mean is None and "255" in lite.description
    with pytest.raises(ConfigError, match="not a mean/std normalisation"):
        lite.override({"mean": [0.5] * 3}, "efficientnet-lite0-imagenet")
    assert lite.override({"input_size": 96}, "x").input_size == 96


def test_preprocessing_record():
    record = Preprocessing(32, (0.1, 0.2, 0.3), (1.0, 1.0, 1.0), "demo")
    assert record.to_dict() == {"input_size": 32, "mean": [0.1, 0.2, 0.3],
                                "std": [1.0, 1.0, 1.0], "description": "demo"}
    assert record.override({}, "x") is record
    with pytest.raises(ConfigError, match="must be a mapping"):
        record.override([("mean", 1)], "x")


def _refuse_connections(monkeypatch) -> None:
    """No socket can connect (an offline machine): the probe and any download fail at once."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("offline", ["1", None])
def test_uncached_library_weights_fail_at_once_naming_the_file(monkeypatch, tmp_path, offline):
    """With or without CTXFUSION_OFFLINE, no retry: one error naming the file and its place."""
    import time

    import huggingface_hub

    if offline is None:
        monkeypatch.delenv("CTXFUSION_OFFLINE")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _refuse_connections(monkeypatch)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    start = time.perf_counter()
    with pytest.raises(WeightsError) as caught:
        create_stream("timm:resnet18")
    message = str(caught.value)
    assert "\n" not in message
    assert "resnet18.a1_in1k/resolve/main/model.safetensors" in message
    assert str(tmp_path / "home" / "weights" / "timm-resnet18.a1_in1k.safetensors") in message
    with pytest.raises(WeightsError, match=r"(?i)place (it|the file) at .*18-f37072fd\.pth"):
        create_stream("torchvision:resnet18")
    assert time.perf_counter() - start < 10


def test_placed_timm_weights_are_found_in_the_cache(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    placed = tmp_path / "home" / "weights" / "timm-resnet18.a1_in1k.safetensors"
    placed.parent.mkdir(parents=True)
    save_file(timm.create_model("resnet18").state_dict(), str(placed))
    stream = create_stream("timm:resnet18", preprocessing=SMALL)
    assert stream.feature_dim == 512


def test_unanswered_host_is_reported_within_the_probe_timeout(monkeypatch):
    """A name lookup or connection that hangs (a silent firewall) is cut at the timeout."""
    import socket
    import time

    from ctxfusion.network import unreachable_reason

    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    reason = unreachable_reason("https://example.org/weights.pth", timeout=0.5)
    assert reason == "no answer from example.org within 0.5 s"
    assert time.perf_counter() - start < 3


_UNKNOWN_MODEL_RUN: dict[str, float] = {}


@pytest.mark.parametrize("offline", ["1", None])
def test_run_naming_uncached_timm_weights_exits_2_before_any_work(tmp_path, offline):
    """``ctxfusion run`` with empty caches fails in seconds with the file to place."""
    import os
    import subprocess
    import time

    config = tmp_path / "timm.yaml"
    config.write_text(
        "experiment: timm-offline\nstreams:\n  fg: {name: 'timm:resnet18'}\ndatasets:\n"
        "  - {name: s, kind: scenes, context_strength: 0.8, num_train: 200, num_test: 100}\n",
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("CTXFUSION_OFFLINE", "HF_HUB_OFFLINE")}
    env.update(CTXFUSION_HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"),
               TORCH_HOME=str(tmp_path / "torch"),
               HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens: hermetic even when online
    if offline:
        env["CTXFUSION_OFFLINE"] = offline
    command = [sys.executable, "-m", "ctxfusion.cli", "run", str(config), "--out",
               str(tmp_path / "run")]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "timm-resnet18.a1_in1k.safetensors" in errors[0]
    assert str(tmp_path / "home" / "weights") in errors[0]
    assert not (tmp_path / "run" / "results.csv").exists()
    # The same run naming an unknown timm model fails at the same point without any weights
    # lookup: imports (about 6 s of CPU) set the pace of both; the lookup adds no waiting
    # (huggingface_hub's retries used to sleep for about a minute).
    if "seconds" not in _UNKNOWN_MODEL_RUN:
        config.write_text(config.read_text(encoding="utf-8").replace("resnet18", "nonet"),
                          encoding="utf-8")
        start = time.perf_counter()
        baseline = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        _UNKNOWN_MODEL_RUN["seconds"] = time.perf_counter() - start
        assert baseline.returncode == 2 and "unknown timm model 'nonet'" in baseline.stderr
    imports = _UNKNOWN_MODEL_RUN["seconds"]
    assert seconds < 1.3 * imports + 8, (seconds, imports)
