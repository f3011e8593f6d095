"""The paper's two ResNet18 streams: ImageNet (object-centric) and Places365 (scene-centric).

Both are torchvision's ``resnet18`` with ImageNet mean/std normalisation inside the model
(:data:`IMAGENET_PREPROCESSING`); the feature is the 512-d global-average-pooled output of
``layer4``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.models import ResNet18_Weights, resnet18

from ctxfusion.errors import WeightsError
from ctxfusion.streams.base import Preprocessing, Stream, WeightRecord
from ctxfusion.streams.registration import register_stream
from ctxfusion.streams.weights import (
    file_sha256,
    load_state_dict_checked,
    load_torch_checkpoint,
    register_packaged_weights,
    resolve_weights,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: torchvision's ImageNet evaluation statistics at 224 px
IMAGENET_PREPROCESSING = Preprocessing(
    224, IMAGENET_MEAN, IMAGENET_STD, "ImageNet mean/std (torchvision), RGB in [0,1]"
)

_TV_WEIGHTS = ResNet18_Weights.IMAGENET1K_V1
#: torchvision's record: the full sha256 is not published offline; the file name carries the
#: prefix ``f37072fd`` that torch hub checks, and ``resolve_weights`` checks the same prefix.
RESNET18_IMAGENET = WeightRecord(
    file_name=os.path.basename(_TV_WEIGHTS.url),
    sha256=None,
    url=_TV_WEIGHTS.url,
    source="torchvision ResNet18_Weights.IMAGENET1K_V1",
    license="BSD-3-Clause (torchvision)",
)
#: CSAIL's checkpoint (Python 2 pickle, DataParallel keys). Its sha256 is not known offline, so
#: files under this name are not hash-checked; their structure (365-way fc) always is.
RESNET18_PLACES365 = WeightRecord(
    file_name="resnet18_places365.pth.tar",
    sha256=None,
    url="http://places2.csail.mit.edu/models_places365/resnet18_places365.pth.tar",
    source="CSAILVision/places365 (Zhou et al., Places: A 10 million image database)",
    license="CC BY (Places365 models, CSAIL)",
)


def _torch_hub_copy() -> Path | None:
    """torchvision's own download of the same file, when the user already has it."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_IMAGENET.file_name
    return path if path.is_file() else None


register_packaged_weights(RESNET18_IMAGENET.file_name, _torch_hub_copy)

_CATEGORIES = Path(__file__).with_name("places365_categories.txt")


def places365_labels() -> list[str]:
    """The 365 Places365 category names in index order (``/a/airfield 0`` -> ``airfield``)."""
    names = []
    for line in _CATEGORIES.read_text(encoding="utf-8").splitlines():
        if line.startswith("/"):
            path, index = line.rsplit(" ", 1)
            if int(index) != len(names):
                raise WeightsError(f"{_CATEGORIES}: category {line!r} is out of order")
            names.append(path[3:])  # drop the "/a/" initial-letter folder, as CSAIL's demo does
    return names


class ResNet18Stream(Stream):
    """torchvision ResNet18 with its pretrained classifier; ImageNet normalisation inside."""

    feature_dim = 512

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.set_preprocessing(IMAGENET_PREPROCESSING)
        self.net = resnet18(weights=None, num_classes=num_classes)

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return torch.flatten(net.avgpool(x), 1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.fc(features)


def _build(name: str, domain: str, labels: list[str], record: WeightRecord,
           state_dict: object, path: Path) -> ResNet18Stream:
    stream = ResNet18Stream(num_classes=len(labels))
    stream.name, stream.domain, stream.labels, stream.weights = name, domain, labels, record
    load_state_dict_checked(stream.net, state_dict, path, name, head_key="fc.weight")
    stream.weights_sha256 = file_sha256(path)
    return stream


@register_stream(
    "resnet18-imagenet", domain="object", feature_dim=512, preprocessing=IMAGENET_PREPROCESSING,
    weights=RESNET18_IMAGENET,
    description="the paper's object stream: torchvision ResNet18, ImageNet-1k (IMAGENET1K_V1)",
)
def resnet18_imagenet(weights: str | os.PathLike | None = None) -> ResNet18Stream:
    """torchvision ResNet18 on ImageNet; ``weights``: a plain state dict file, or None."""
    name = "resnet18-imagenet"
    path = resolve_weights(RESNET18_IMAGENET, weights, name)
    labels = list(_TV_WEIGHTS.meta["categories"])
    return _build(name, "object", labels, RESNET18_IMAGENET, load_torch_checkpoint(path), path)


def _strip_data_parallel(checkpoint: object, path: Path) -> object:
    """CSAIL format ``{"state_dict": {"module.conv1.weight": ...}}`` -> a plain state dict."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state, dict):
        raise WeightsError(
            f"checkpoint {path} holds {type(state).__name__}, expected a dict with key "
            "'state_dict' (CSAIL's format) or a plain state dict"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


@register_stream(
    "resnet18-places365", domain="scene", feature_dim=512, preprocessing=IMAGENET_PREPROCESSING,
    weights=RESNET18_PLACES365,
    description="the paper's scene stream: CSAIL ResNet18 trained on Places365",
)
def resnet18_places365(weights: str | os.PathLike | None = None) -> ResNet18Stream:
    """CSAIL's Places365 ResNet18; ``weights``: CSAIL's ``.pth.tar`` (or a plain state dict)."""
    name = "resnet18-places365"
    path = resolve_weights(RESNET18_PLACES365, weights, name)
    checkpoint = load_torch_checkpoint(path, encoding="latin1")  # saved under Python 2
    state = _strip_data_parallel(checkpoint, path)
    return _build(name, "scene", places365_labels(), RESNET18_PLACES365, state, path)
