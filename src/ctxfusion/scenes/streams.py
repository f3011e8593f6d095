"""The two small streams shipped with ctxfusion, pretrained on the procedural scenes.

``scenes-object-resnet18`` (domain "object", labels = the 24 object classes) and
``scenes-scene-resnet18`` (domain "scene", labels = the 16 scenes): the embedded analogues of
the ImageNet and Places365 ResNet18s. Weights live in ``ctxfusion/weights/`` as float16
safetensors (upcast on load) with their sha256, command, seed and accuracy in ``weights.json``;
``ctxfusion pretrain`` reproduces them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ctxfusion.errors import WeightsError
from ctxfusion.io import sha256_file
from ctxfusion.scenes.small_resnet import SmallResNet
from ctxfusion.streams.base import Preprocessing, Stream, WeightRecord
from ctxfusion.streams.registration import register_stream
from ctxfusion.streams.weights import check_state_tensors, register_packaged_weights

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
WEIGHTS_FORMAT = "ctxfusion-scenes-resnet/1"
SHIPPED_WIDTH = 16
_REQUIRED_METADATA = ("format", "domain", "width", "labels", "mean", "std", "image_size")


def read_weight_records(folder: str | os.PathLike) -> dict[str, dict]:
    """``files`` of ``<folder>/weights.json`` (file name -> record); {} when there is none."""
    path = Path(folder) / "weights.json"
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text())["files"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path} is not a ctxfusion weights record (needs a 'files' "
                           f"object): {exc}") from None


def _shipped_record(name: str) -> WeightRecord:
    file_name = f"{name}.safetensors"
    record = read_weight_records(WEIGHTS_DIR).get(file_name, {})
    return WeightRecord(file_name, record.get("sha256"), url=None,
                        source="shipped with ctxfusion", license="MIT")


def scenes_preprocessing(meta: dict) -> Preprocessing:
    """The preprocessing recorded with a scenes stream's weights (mean/std of its pretraining
    images, image size)."""
    return Preprocessing(
        int(meta["image_size"]), tuple(float(v) for v in meta["mean"]),
        tuple(float(v) for v in meta["std"]),
        "mean/std of the stream's pretraining scenes (recorded with its weights)",
    )


def _shipped_preprocessing(name: str) -> Preprocessing:
    """The default preprocessing of a shipped stream, from ``weights.json``."""
    record = read_weight_records(WEIGHTS_DIR).get(f"{name}.safetensors", {})
    meta = {"image_size": record.get("settings", {}).get("image_size", 64),
            "mean": record.get("mean", (0.5, 0.5, 0.5)), "std": record.get("std", (0.5, 0.5, 0.5))}
    return scenes_preprocessing(meta)


def load_scenes_weights(path: str | os.PathLike, domain: str,
                        expected_sha256: str | None) -> tuple[dict[str, torch.Tensor], dict, str]:
    """Verify and read a weights file: (float32 state dict, metadata, actual sha256).

    ``expected_sha256`` None means "use the record in weights.json beside the file, if any".
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; reproduce the shipped weights "
                           "with `ctxfusion pretrain --out DIR` and pass DIR/<name>.safetensors")
    actual = sha256_file(path)
    if expected_sha256 is None:
        expected_sha256 = read_weight_records(path.parent).get(path.name, {}).get("sha256")
    if expected_sha256 is not None and actual != expected_sha256:
        raise WeightsError(f"{path}: sha256 {actual} does not match the recorded "
                           f"{expected_sha256} (weights.json); the file is corrupt or replaced")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a damaged header
        raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from None
    try:
        meta = json.loads(header.get("ctxfusion", "{}"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: metadata key 'ctxfusion' is not JSON ({exc})") from None
    meta = meta if isinstance(meta, dict) else {}
    missing = [k for k in _REQUIRED_METADATA if k not in meta]
    if missing or meta.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(f"{path}: metadata 'ctxfusion' lacks {missing or 'format'} or its "
                           f"format is not "
                           f"{WEIGHTS_FORMAT!r}; only files written by `ctxfusion pretrain` load")
    if meta["domain"] != domain:
        raise WeightsError(f"{path} holds {meta['domain']!r} weights, but this stream needs "
                           f"domain {domain!r}")
    return {k: v.float() for k, v in state.items()}, meta, actual


class ScenesResNetStream(Stream):
    """A :class:`SmallResNet` pretrained on the scenes, normalising with its recorded mean/std."""

    def __init__(self, name: str, domain: str, weights_path: str | os.PathLike,
                 record: WeightRecord | None, expected_sha256: str | None) -> None:
        super().__init__()
        state, meta, actual = load_scenes_weights(weights_path, domain, expected_sha256)
        self.name, self.domain, self.weights, self.weights_sha256 = name, domain, record, actual
        self.labels = list(meta["labels"])
        self.set_preprocessing(scenes_preprocessing(meta))
        self.net = SmallResNet(width=int(meta["width"]), num_classes=len(self.labels))
        check_state_tensors(state, self.net.state_dict(), weights_path, name)
        result = self.net.load_state_dict(state, strict=False)
        bad = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if bad or result.unexpected_keys:
            raise WeightsError(f"{weights_path}: tensors do not fit a width-{meta['width']} "
                               f"SmallResNet (missing {bad[:3]}, unexpected "
                               f"{result.unexpected_keys[:3]})")
        self.feature_dim = self.net.feature_dim

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.fc(features)


def _factory(name: str, domain: str):
    def build(weights: str | os.PathLike | None = None) -> Stream:
        record = _shipped_record(name)
        if weights is None:
            if record.sha256 is None:
                raise WeightsError(f"no record for {record.file_name} in {WEIGHTS_DIR}/weights"
                                   ".json; run `ctxfusion pretrain --out src/ctxfusion/weights`")
            return ScenesResNetStream(name, domain, WEIGHTS_DIR / record.file_name, record,
                                      record.sha256)
        path = Path(weights)
        own = WeightRecord(path.name, None, url=None, source=f"file {path}")
        return ScenesResNetStream(name, domain, path, own, None)

    build.__name__ = f"create_{name.replace('-', '_')}"
    build.__doc__ = f"The {domain} stream {name!r} (shipped weights, or a file from pretrain)."
    return build


def _shipped_file(file_name: str):
    """Where the package keeps a shipped weight file (for ``ctxfusion streams``)."""
    return lambda: (WEIGHTS_DIR / file_name) if (WEIGHTS_DIR / file_name).is_file() else None


for _domain, _labels in (("object", "the 24 object classes"), ("scene", "the 16 scenes")):
    _name = f"scenes-{_domain}-resnet18"
    register_packaged_weights(f"{_name}.safetensors", _shipped_file(f"{_name}.safetensors"))
    register_stream(
        _name, domain=_domain, feature_dim=8 * SHIPPED_WIDTH,
        preprocessing=_shipped_preprocessing(_name),
        weights=_shipped_record(_name),
        description=f"width-{SHIPPED_WIDTH} ResNet18 pretrained on the procedural scenes to "
                    f"classify {_labels} (ctxfusion pretrain)",
    )(_factory(_name, _domain))
