"""Streams from backbones users already have: ``torchvision:<name>`` and ``timm:<name>``.

``create_stream("torchvision:resnet50")`` builds any classification model of
``torchvision.models`` (``torchvision.models.list_models(module=torchvision.models)``),
``create_stream("timm:convnext_tiny")`` any timm model (``timm.list_models()``; a pretrained
tag such as ``timm:resnet18.a1_in1k`` is allowed). The feature is the pooled penultimate
vector: torchvision's final classifier layer (the last ``Linear``, or 1x1 ``Conv2d`` for
SqueezeNet, producing the class logits) is replaced by the identity and kept as :meth:`head`;
timm's is ``forward_head(forward_features(x), pre_logits=True)``, its classifier
``get_classifier()``. ``feature_dim`` comes from one forward pass at build time.

``weights``: None = the library's own weights (torchvision's ``DEFAULT`` weights of the model,
found/downloaded like every ctxfusion weight file, torch hub's cache included; timm's from
``timm-<tag>.safetensors`` in ctxfusion's weights folders, the Hugging Face cache, else
``pretrained=True``; a download is tried only when its host answers within seconds, so an
offline machine fails at once with the file to place); a path = a
state dict (torch checkpoint read with ``weights_only=True``, or ``.safetensors``) checked
against the architecture, whose classifier may have another class count; ``"random"`` =
untrained weights (tests, smoke runs; ``describe()`` says so). Default preprocessing from the
library's metadata: torchvision's weights ``transforms()`` (mean, std, crop size), else
ImageNet mean/std at 224; timm's ``pretrained_cfg`` (mean, std, input_size). ``domain``
defaults to "object" (ImageNet-style pretraining); pass ``domain="scene"`` for a
scene-centric checkpoint.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from torch import nn

from ctxfusion.errors import ConfigError, WeightsError
from ctxfusion.network import unreachable_reason
from ctxfusion.streams.base import Preprocessing, Stream, WeightRecord
from ctxfusion.streams.registration import StreamEntry
from ctxfusion.streams.resnet import IMAGENET_MEAN, IMAGENET_STD
from ctxfusion.streams.weights import (
    cache_dir,
    file_sha256,
    is_offline,
    load_state_dict_checked,
    load_state_file,
    locate_weights,
    resolve_weights,
    verify_weights,
)

LIBRARIES = ("torchvision", "timm")
RANDOM = "random"
#: builder arguments torchvision sets itself when it loads pretrained weights
_TV_BUILD_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"init_weights": False},
}
_TV_TRANSFORM_INPUT = ("googlenet", "inception_v3")  # re-normalise inside when pretrained


def is_library_name(name: str) -> bool:
    """Whether ``name`` has a ``torchvision:`` or ``timm:`` prefix."""
    return name.split(":", 1)[0] in LIBRARIES and ":" in name


def hint() -> str:
    """Where to find valid library model names (for error messages)."""
    return ("torchvision:<name> (names: torchvision.models.list_models("
            "module=torchvision.models)) or timm:<name> (names: timm.list_models())")


def _import_timm():
    try:
        import timm
    except ImportError:
        raise ConfigError("timm streams need the timm package: pip install timm") from None
    return timm


def list_library_streams(library: str) -> list[str]:
    """``<library>:<model>`` for every classification model of ``library``, sorted."""
    if library == "torchvision":
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
    elif library == "timm":
        names = _import_timm().list_models()
    else:
        raise ConfigError(f"unknown library {library!r}; valid: {', '.join(LIBRARIES)}")
    return sorted(f"{library}:{name}" for name in names)


def _labels(names: list[str] | None, num_classes: int) -> list[str]:
    """The library's label names when they fit the classifier, else ``class_0..``."""
    if names is not None and len(names) == num_classes:
        return list(names)
    return [f"class_{i}" for i in range(num_classes)]


class _Backend:
    """What differs between torchvision and timm: names, metadata, building, pretrained."""

    library = ""

    def __init__(self, model: str) -> None:
        self.model = model
        self.stream_name = f"{self.library}:{model}"

    def preprocessing(self) -> Preprocessing:  # pragma: no cover - abstract
        raise NotImplementedError

    def label_names(self) -> list[str] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def record(self) -> WeightRecord | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def build(self, num_classes: int | None = None) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def head_key(self, net: nn.Module) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def pretrained(self) -> tuple[nn.Module, str]:  # pragma: no cover - abstract
        """The network with the library's weights, and their sha256 (file or state digest)."""
        raise NotImplementedError

    def wrap(self, net: nn.Module) -> LibraryStream:  # pragma: no cover - abstract
        """The stream around ``net``, with this model's default preprocessing."""
        raise NotImplementedError

    def entry(self) -> StreamEntry:
        """The registry view of this model (feature_dim None: known once built)."""
        return StreamEntry(
            self.stream_name, functools.partial(create_library_stream, self.stream_name),
            "object", None, self.preprocessing(), self.record(),
            f"{self.library} model {self.model!r}, features at the global pool",
        )


def _classifier_path(net: nn.Module) -> str:
    """The last Linear (or 1x1 Conv2d, SqueezeNet) registered: torchvision's final classifier."""
    found = ""
    for path, module in net.named_modules():
        if isinstance(module, nn.Linear) or (
                isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)):
            found = path
    if not found:
        raise ConfigError(f"cannot find the classifier layer of {type(net).__name__}: this "
                          "model is not supported as a stream")
    return found


class TorchvisionBackend(_Backend):
    library = "torchvision"

    def __init__(self, model: str) -> None:
        import torchvision

        super().__init__(model)
        if model not in torchvision.models.list_models(module=torchvision.models):
            raise ConfigError(
                f"unknown torchvision model {model!r} in stream {self.stream_name!r}; valid "
                "names: torchvision.models.list_models(module=torchvision.models), e.g. "
                "resnet50, efficientnet_b0, convnext_tiny, vit_b_16"
            )
        try:
            self.enum = torchvision.models.get_model_weights(model).DEFAULT
        except (ValueError, AttributeError, KeyError):
            self.enum = None

    def preprocessing(self) -> Preprocessing:
        if self.enum is None:
            return Preprocessing(224, IMAGENET_MEAN, IMAGENET_STD,
                                 "ImageNet mean/std (no torchvision weights metadata)")
        t = self.enum.transforms()
        return Preprocessing(
            int(t.crop_size[0]), tuple(map(float, t.mean)), tuple(map(float, t.std)),
            f"torchvision {self.enum}.transforms(): mean/std, crop {t.crop_size[0]} (torchvision "
            f"resizes to {t.resize_size[0]} then centre-crops; ctxfusion resizes to the crop)",
        )

    def label_names(self) -> list[str] | None:
        return list(self.enum.meta["categories"]) if self.enum is not None else None

    def record(self) -> WeightRecord | None:
        if self.enum is None:
            return None
        return WeightRecord(os.path.basename(self.enum.url), None, url=self.enum.url,
                            source=f"torchvision {self.enum}", license="see torchvision")

    def build(self, num_classes: int | None = None) -> nn.Module:
        import torchvision

        kwargs: dict = dict(_TV_BUILD_KWARGS.get(self.model, {}))
        if self.model in _TV_TRANSFORM_INPUT:
            kwargs["transform_input"] = self.enum is not None
        if self.enum is not None and self.model.startswith("vit_"):
            kwargs["image_size"] = self.enum.meta["min_size"][0]
        names = self.label_names()
        kwargs["num_classes"] = num_classes or (len(names) if names else 1000)
        return torchvision.models.get_model(self.model, weights=None, **kwargs)

    def head_key(self, net: nn.Module) -> str:
        return f"{_classifier_path(net)}.weight"

    def pretrained(self) -> tuple[nn.Module, str]:
        record = self.record()
        if record is None:
            raise WeightsError(f"torchvision has no pretrained weights for {self.model!r}: pass "
                               f"weights: PATH (a state dict) or weights: {RANDOM}")
        hub_copy = Path(torch.hub.get_dir()) / "checkpoints" / record.file_name
        try:
            path = resolve_weights(record, None, self.stream_name, extra_locations=[hub_copy])
        except WeightsError as exc:
            raise WeightsError(f"{exc}. In a config: weights: PATH") from None
        net = self.build()
        _load_checked(net, load_state_file(path, self.stream_name), path, self)
        return net, file_sha256(path)

    def wrap(self, net: nn.Module) -> LibraryStream:
        return TorchvisionStream(net, self.preprocessing(), _classifier_path(net))


class TimmBackend(_Backend):
    library = "timm"

    def __init__(self, model: str) -> None:
        self.timm = _import_timm()
        super().__init__(model)
        if not self.timm.is_model(model):
            raise ConfigError(
                f"unknown timm model {model!r} in stream {self.stream_name!r}; valid names: "
                "timm.list_models() (with pretrained tags: timm.list_models(pretrained=True)), "
                "e.g. resnet50, convnext_tiny, vit_small_patch16_224"
            )
        from timm.models import get_pretrained_cfg

        self.cfg = get_pretrained_cfg(model)

    def preprocessing(self) -> Preprocessing:
        cfg = self.cfg
        if cfg is None:
            return Preprocessing(224, IMAGENET_MEAN, IMAGENET_STD,
                                 "ImageNet mean/std (no timm pretrained_cfg)")
        height, width = cfg.input_size[-2:]
        if height != width:
            raise ConfigError(f"stream {self.stream_name!r}: input size {height}x{width} is not "
                              "square; ctxfusion streams take square inputs")
        tag = f".{cfg.tag}" if cfg.tag else ""
        return Preprocessing(int(height), tuple(map(float, cfg.mean)), tuple(map(float, cfg.std)),
                             f"timm pretrained_cfg of {cfg.architecture}{tag}: mean/std, "
                             f"input_size {height}")

    def label_names(self) -> list[str] | None:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(self.cfg.to_dict()) if self.cfg is not None else None
        if not subset:
            return None
        return [d.split(",")[0] for d in ImageNetInfo(subset).label_descriptions()]

    def record(self) -> WeightRecord | None:
        if self.cfg is None:
            return None
        url = f"https://huggingface.co/{self.cfg.hf_hub_id}" if self.cfg.hf_hub_id else self.cfg.url
        name = self.cfg.hf_hub_id or os.path.basename(self.cfg.url or self.model)
        return WeightRecord(name, None, url=url or None, source=f"timm {self.model}",
                            license=self.cfg.license or "")

    def build(self, num_classes: int | None = None, pretrained: bool = False) -> nn.Module:
        kwargs = {"num_classes": num_classes} if num_classes else {}
        return self.timm.create_model(self.model, pretrained=pretrained, **kwargs)

    def head_key(self, net: nn.Module) -> str:
        classifier = net.pretrained_cfg.get("classifier") or "fc"
        return f"{classifier[0] if isinstance(classifier, tuple | list) else classifier}.weight"

    def local_file_name(self) -> str:
        """The name under which ctxfusion looks for the weights in its own folders."""
        tag = (self.cfg.hf_hub_id.rsplit("/", 1)[-1] if self.cfg and self.cfg.hf_hub_id
               else self.model)
        return f"timm-{tag}.safetensors"

    def download_url(self) -> str | None:
        """The URL of the weights file (Hugging Face's ``model.safetensors``, else timm's)."""
        if self.cfg is None:
            return None
        if self.cfg.hf_hub_id:
            from huggingface_hub import constants

            return f"{constants.ENDPOINT}/{self.cfg.hf_hub_id}/resolve/main/model.safetensors"
        return self.cfg.url or None

    def _cached_file(self) -> Path | None:
        """A local copy: ``timm-<tag>.safetensors`` in ctxfusion's cache or shared weights
        folder, else the Hugging Face cache's copy, else None."""
        placed = locate_weights(WeightRecord(self.local_file_name(), None))
        if placed is not None:
            return placed
        if self.cfg is None or not self.cfg.hf_hub_id:
            return None
        from huggingface_hub import try_to_load_from_cache

        for file_name in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(self.cfg.hf_hub_id, file_name)
            if isinstance(found, str):
                return Path(found)
        return None

    def pretrained(self) -> tuple[nn.Module, str]:
        cached = self._cached_file()
        if cached is not None:
            net = self.build()
            _load_checked(net, load_state_file(cached, self.stream_name), cached, self)
            return net, file_sha256(cached)
        url = self.download_url()
        place = (f"download {url} and place it at {cache_dir() / self.local_file_name()}, or "
                 "pass weights: PATH (a state dict or .safetensors file)")
        where = f"pretrained weights of {self.stream_name!r}"
        if url is None:
            raise WeightsError(f"timm has no {where}: pass weights: PATH or weights: {RANDOM}")
        if is_offline():
            raise WeightsError(f"{where} are not cached and downloads are disabled "
                               f"(CTXFUSION_OFFLINE=1): {place}")
        reason = unreachable_reason(url)
        if reason is not None:  # huggingface_hub would retry for about a minute
            raise WeightsError(f"{where} are not cached and cannot be downloaded ({reason}): "
                               f"{place}")
        try:
            net = self.build(pretrained=True)
        except Exception as exc:  # network and hub errors come in many types
            raise WeightsError(f"could not download the {where} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}): "
                               f"{place}") from None
        from ctxfusion.features import module_digest

        return net, module_digest(net)

    def wrap(self, net: nn.Module) -> LibraryStream:
        return TimmStream(net, self.preprocessing())


def _load_checked(net: nn.Module, state: dict, source: Path, backend: _Backend) -> None:
    """Load ``state`` into ``net`` (auxiliary heads unused at inference dropped)."""
    expected = net.state_dict()
    state = {k: v for k, v in state.items()
             if k in expected or not k.split(".")[0].lower().startswith("aux")}
    load_state_dict_checked(net, state, source, backend.stream_name, backend.head_key(net))


class LibraryStream(Stream):
    """A torchvision or timm model as a stream (see the module docstring)."""

    def __init__(self, net: nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.set_preprocessing(preprocessing)
        self.net = net


class TorchvisionStream(LibraryStream):
    """torchvision model whose final classifier layer is replaced by the identity."""

    def __init__(self, net: nn.Module, preprocessing: Preprocessing,
                 classifier_path: str) -> None:
        parent_path, _, leaf = classifier_path.rpartition(".")
        parent = net.get_submodule(parent_path)
        classifier = getattr(parent, leaf)
        setattr(parent, leaf, nn.Identity())
        super().__init__(net, preprocessing)
        self.classifier = classifier
        self.fixed_input_size = isinstance(getattr(net, "image_size", None), int)

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.net(x), 1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """The pretrained classifier layer (SqueezeNet: its 1x1 conv, before ReLU and pool)."""
        if isinstance(self.classifier, nn.Conv2d):
            return self.classifier(features[:, :, None, None]).flatten(1)
        return self.classifier(features)


class TimmStream(LibraryStream):
    """timm model: features = ``forward_head(forward_features(x), pre_logits=True)``."""

    def __init__(self, net: nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__(net, preprocessing)
        self.fixed_input_size = bool(net.pretrained_cfg.get("fixed_input_size", False))

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        classifier = self.net.get_classifier()
        if not isinstance(classifier, nn.Module):
            raise NotImplementedError(f"stream {self.name!r}: timm returns several classifiers")
        return classifier(features)


@functools.lru_cache(maxsize=32)
def _backend(name: str) -> _Backend:
    library, _, model = name.partition(":")
    if not model:
        raise ConfigError(f"stream {name!r} names no model; expected {hint()}")
    return TorchvisionBackend(model) if library == "torchvision" else TimmBackend(model)


def library_entry(name: str) -> StreamEntry:
    """The registry entry of a ``torchvision:``/``timm:`` stream name (ConfigError if unknown)."""
    return _backend(name).entry()


def _network(backend: _Backend, weights: str | os.PathLike | None,
             ) -> tuple[nn.Module, WeightRecord | None, str]:
    """(network, weight record, sha256) for ``weights``: None, "random" or a path."""
    if weights is None:
        net, sha256 = backend.pretrained()
        return net, backend.record(), sha256
    if str(weights) == RANDOM:
        from ctxfusion.features import module_digest

        net = backend.build()
        record = WeightRecord(RANDOM, None, source="random initialisation (untrained)")
        return net, record, module_digest(net)
    path = Path(weights).expanduser()
    record = backend.record()
    if record is not None and path.name == record.file_name and path.is_file():
        verify_weights(path, record, backend.stream_name)  # claims to be the library's file
    state = load_state_file(path, backend.stream_name)
    net = backend.build()
    head = state.get(backend.head_key(net))
    if head is not None and head.ndim >= 1 and head.shape[0] != _num_outputs(net, backend):
        net = backend.build(num_classes=int(head.shape[0]))  # fine-tuned to other classes
    _load_checked(net, state, path, backend)
    return net, WeightRecord(path.name, None, source=f"file {path}"), file_sha256(path)


def _num_outputs(net: nn.Module, backend: _Backend) -> int:
    return int(net.state_dict()[backend.head_key(net)].shape[0])


def create_library_stream(name: str, weights: str | os.PathLike | None = None,
                          domain: str = "object") -> Stream:
    """Build ``torchvision:<model>`` or ``timm:<model>`` (see the module docstring)."""
    if domain not in ("object", "scene"):
        raise ConfigError(f"stream {name!r}: domain must be 'object' or 'scene', got {domain!r}")
    backend = _backend(name)
    net, record, sha256 = _network(backend, weights)
    num_classes = _num_outputs(net, backend)
    net.eval()
    stream = backend.wrap(net)
    stream.name, stream.domain, stream.weights, stream.weights_sha256 = (
        name, domain, record, sha256)
    stream.labels = _labels(backend.label_names(), num_classes)
    size = stream.input_size
    with torch.no_grad():
        dummy = stream.extract(stream.preprocess(torch.zeros(1, 3, size, size)))
    stream.feature_dim = int(dummy.shape[1])
    return stream
