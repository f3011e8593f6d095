"""SqueezeNet v1.1 (with batch norm) on Places365: the scene-centric stream that runs offline.

Weights: urbste/squeezenet_places365, a Lasagne parameter pickle (152 numpy arrays, layer
order). They are read with :mod:`ctxfusion.streams.lasagne`'s restricted unpickler and converted
once into a safetensors state dict in the cache, keyed by the source file's sha256.
Preprocessing (inside the model): RGB -> BGR, 0..255, minus the Places365 mean image
(``mean_bgr_256.npy``, centre-cropped to 224), divided by 255.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import nn

from ctxfusion.errors import WeightsError
from ctxfusion.io import atomic_save_tensors
from ctxfusion.streams.base import Preprocessing, Stream, WeightRecord
from ctxfusion.streams.lasagne import load_lasagne_params
from ctxfusion.streams.registration import register_stream
from ctxfusion.streams.resnet import places365_labels
from ctxfusion.streams.weights import (
    cache_dir,
    file_sha256,
    load_state_dict_checked,
    resolve_weights,
)

SQUEEZENET_PLACES365 = WeightRecord(
    file_name="squeezenet_weights_places365.params",
    sha256="162b88966e38f586d4224bcc4324078e32fc484ac1824cc73876e9775b0fcc16",
    url="https://raw.githubusercontent.com/urbste/squeezenet_places365/master/"
    "squeezenet_weights_places365.params",
    source="github.com/urbste/squeezenet_places365 (Lasagne; mean image converted from CSAIL's "
    "places365CNN_mean.binaryproto)",
    license="none stated by the author: research use, do not redistribute",
)
MEAN_IMAGE_FILE = "mean_bgr_256.npy"
PLACES_PREPROCESSING = Preprocessing(
    224, None, None,
    "RGB -> BGR, x*255 minus the Places365 mean image (resized to the input), divided by 255",
)
_SLOPE = (0.3 + 0.8) / 2  # Lasagne RReLU at test time: leaky ReLU with the mean slope
# (squeeze, expand) channels of fire2..fire9; a 3x3/2 max pool follows fire3 and fire5.
_FIRES = [(16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256)]


class ConvBN(nn.Module):
    """Lasagne ``BatchNormLayer(Conv2DLayer(...))`` followed by the leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2)
        # Lasagne: y = (x - mean) * gamma * inv_std + beta; eps 0 with var = 1 / inv_std^2.
        self.bn = nn.BatchNorm2d(c_out, eps=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), _SLOPE)


class Fire(nn.Module):
    """squeeze 1x1 -> (expand 1x1 || expand 3x3), concatenated."""

    def __init__(self, c_in: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = ConvBN(c_in, squeeze, 1)
        self.expand1x1 = ConvBN(squeeze, expand, 1)
        self.expand3x3 = ConvBN(squeeze, expand, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], dim=1)


class SqueezeNetPlaces365Stream(Stream):
    """SqueezeNet v1.1 + BN; feature: the 512 channels after fire9, average-pooled."""

    name = "squeezenet-places365"
    feature_dim = 512
    domain = "scene"

    def __init__(self, mean_bgr: torch.Tensor) -> None:
        super().__init__()
        self.set_preprocessing(PLACES_PREPROCESSING)
        self.register_buffer("mean_bgr", mean_bgr.reshape(1, 3, 224, 224).float())
        self.conv1 = ConvBN(3, 64, 3, stride=2)
        fires, c_in = [], 64
        for squeeze, expand in _FIRES:
            fires.append(Fire(c_in, squeeze, expand))
            c_in = 2 * expand
        self.fires = nn.ModuleList(fires)
        self.conv10 = nn.Conv2d(512, 365, 1)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean_bgr
        if mean.shape[-2:] != x.shape[-2:]:  # an input_size override: resize the mean image
            mean = F.interpolate(mean, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (x.flip(1) * 255.0 - mean) / 255.0

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images -> the (N, 512, 13, 13) activations after fire9."""
        x = F.max_pool2d(self.conv1(x), 3, 2)
        for index, fire in enumerate(self.fires):
            x = fire(x)
            if index in (1, 3):  # a 3x3/2 max pool after fire3 and after fire5
                x = F.max_pool2d(x, 3, 2)
        return x

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).mean(dim=(2, 3))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """conv10 + leaky ReLU on pooled features.

        conv10 is 1x1, so its linear part commutes with the pooling; the leaky ReLU after it
        does not, so this differs slightly from the original order, which :meth:`classify` uses.
        """
        logits = F.conv2d(features[:, :, None, None], self.conv10.weight, self.conv10.bias)
        return F.leaky_relu(logits.flatten(1), _SLOPE)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the 365 categories in the original order: conv10, leaky ReLU, pool."""
        x = self.trunk(self.preprocess(self.resize(x)))
        return F.leaky_relu(self.conv10(x), _SLOPE).mean(dim=(2, 3))


def _layer_names() -> list[str]:
    """Module prefixes of the 25 conv+BN layers in Lasagne's parameter order."""
    names = ["conv1"]
    for index in range(len(_FIRES)):
        names += [f"fires.{index}.{part}" for part in ("squeeze", "expand1x1", "expand3x3")]
    return names


def lasagne_to_state_dict(params: list[np.ndarray], source: str) -> dict[str, torch.Tensor]:
    """The 152 Lasagne arrays -> this module's state dict.

    Per conv+BN layer: W, b, beta, gamma, mean, inv_std; then conv10's W, b. Lasagne's
    Conv2DLayer flips filters by default (a true convolution), PyTorch correlates: the
    kernels are flipped spatially here.
    """
    layers = _layer_names()
    if len(params) != 6 * len(layers) + 2:
        raise WeightsError(
            f"{source}: {len(params)} arrays, expected {6 * len(layers) + 2} "
            "(SqueezeNet v1.1 + batch norm, Places365)"
        )
    state: dict[str, torch.Tensor] = {}
    for i, name in enumerate(layers):
        w, b, beta, gamma, mean, inv_std = (torch.from_numpy(np.array(a, np.float32))
                                            for a in params[6 * i: 6 * i + 6])
        state[f"{name}.conv.weight"] = w.flip(-2, -1).contiguous()
        state[f"{name}.conv.bias"] = b
        state[f"{name}.bn.weight"] = gamma
        state[f"{name}.bn.bias"] = beta
        state[f"{name}.bn.running_mean"] = mean
        state[f"{name}.bn.running_var"] = inv_std.pow(-2)
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    state["conv10.weight"] = torch.from_numpy(np.array(params[-2], np.float32)).flip(-2, -1)
    state["conv10.bias"] = torch.from_numpy(np.array(params[-1], np.float32))
    return {k: v.contiguous() for k, v in state.items()}


def _converted_state(path: Path, sha256: str) -> dict[str, torch.Tensor]:
    """The converted state dict, from the cache when a conversion of this exact file exists."""
    converted = cache_dir() / f"squeezenet_places365-{sha256[:16]}.safetensors"
    if converted.is_file():
        try:
            with safe_open(converted, framework="pt") as handle:
                if (handle.metadata() or {}).get("source_sha256") == sha256:
                    return {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError, ValueError):
            pass  # an unreadable cache entry is rebuilt below
    state = lasagne_to_state_dict(load_lasagne_params(path), str(path))
    atomic_save_tensors(converted, state, metadata={"source_sha256": sha256, "source": str(path)})
    return state


def _mean_image(params_path: Path) -> torch.Tensor:
    """The 3x256x256 BGR mean image, centre-cropped to 224 (beside the weights, or cached)."""
    places = [params_path.with_name(MEAN_IMAGE_FILE), cache_dir() / MEAN_IMAGE_FILE]
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        raise WeightsError(
            f"mean image {MEAN_IMAGE_FILE!r} for stream 'squeezenet-places365' not found; looked "
            f"at {', '.join(map(str, places))}. It is CSAIL's places365CNN_mean.binaryproto as a "
            "float32 numpy array of shape (3, 256, 256), BGR: place it at one of these paths"
        )
    try:
        mean = np.load(found, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise WeightsError(f"cannot read mean image {found}: {exc}") from exc
    if mean.shape != (3, 256, 256):
        raise WeightsError(f"mean image {found} has shape {mean.shape}, expected (3, 256, 256)")
    return torch.from_numpy(np.ascontiguousarray(mean[:, 16:240, 16:240], dtype=np.float32))


@register_stream(
    "squeezenet-places365", domain="scene", feature_dim=512, preprocessing=PLACES_PREPROCESSING,
    weights=SQUEEZENET_PLACES365,
    description="SqueezeNet v1.1 + batch norm on Places365 (Lasagne weights; runs offline)",
)
def squeezenet_places365(weights: str | os.PathLike | None = None) -> Stream:
    """SqueezeNet Places365; ``weights``: the Lasagne ``.params`` file, or None to resolve it."""
    name = SqueezeNetPlaces365Stream.name
    path = resolve_weights(SQUEEZENET_PLACES365, weights, name)
    sha256 = file_sha256(path)
    stream = SqueezeNetPlaces365Stream(_mean_image(path))
    stream.labels = places365_labels()
    stream.weights = SQUEEZENET_PLACES365
    state = _converted_state(path, sha256)
    state["mean_bgr"] = stream.mean_bgr
    load_state_dict_checked(stream, state, path, name, head_key="conv10.weight")
    stream.weights_sha256 = sha256
    return stream
