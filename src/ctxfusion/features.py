"""Feature extraction and the content-keyed on-disk feature cache (DESIGN: frozen streams).

Frozen streams make features a pure function of (stream weights, images, perturbation, view),
so they are computed once and cached under ``root/<sha256 of the description>.safetensors``.
The description is any JSON-able dict that pins that content: stream name and
``weights_sha256``, manifest sha256, split, subset, image size, view, perturbation kind and
level, and the :func:`module_digest` of the model that crafted an attack. Streams enter a
description through :func:`stream_identity` (the digest of every weight and buffer, so a
changed normalisation or a fine-tuned backbone is another stream), and every description
carries the explicit versions of the computations that made its tensors
(:mod:`ctxfusion.versioning`): a change that alters an output bumps its version and never
reuses tensors of the old code, while a refactor that leaves outputs equal keeps the cache.

A cache file is trusted only if it loads, carries this format, the same canonical
description, and a sha256 of its tensors that matches; anything else (a truncated file from a
killed run, a bit flip, a hash collision in the name) is deleted and recomputed with a warning.
Writes are atomic (``ctxfusion.io.atomic_save_tensors``), so a crash leaves at most a
``*.tmp-<pid>`` file, which is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from tqdm.auto import tqdm

from .distributed import SINGLE, Group, must_load, sharded_get_or_compute
from .errors import ConfigError, DataError
from .execution import Execution
from .io import atomic_save_tensors
from .versioning import computation

FORMAT = "ctxfusion-features/1"
#: the layout of a cache key; 2: the versions of the computations inside the description
#: (1 was a hash over the source of whole modules)
KEY_LAYOUT = 2
TENSOR_KEYS = ("features", "labels", "ids")

Perturb = Callable[[torch.Tensor, torch.Tensor, list[torch.Tensor]], torch.Tensor]


def canonical_json(description: Mapping) -> str:
    """Sorted-key, whitespace-free JSON: equal descriptions give equal strings."""
    try:
        return json.dumps(description, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"feature-cache description must hold only JSON values (str, number, bool, None, "
            f"lists, dicts); got {description!r}: {err}"
        ) from err


def cache_key(description: Mapping) -> str:
    """sha256 (hex) of the canonical JSON of ``description``."""
    return hashlib.sha256(canonical_json(description).encode("utf-8")).hexdigest()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of ``tensors`` in key order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key]
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def module_digest(module: nn.Module) -> str:
    """sha256 over a module's state_dict (names, dtypes, shapes, bytes) in key order.

    Keys perturbations crafted on a model: retrain the model and its attacks get a new key.
    """
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


#: the version of feature extraction: image decoding and resizing (``data/``), the streams'
#: preprocessing and forward passes (``streams/``, ``scenes/`` streams), number format and layout
#: (``execution.py``) and :func:`extract_features` itself. Every cached tensor depends on it.
FEATURES = computation(
    "features", 1, "image loading and resizing, stream preprocessing and forward passes, "
    "feature extraction (data/, streams/, execution.py, features.py)")


def stream_identity(stream: nn.Module) -> dict:
    """What decides a stream's features: its name, input size, its full preprocessing
    (``Stream.preprocessing.to_dict()``: input size, mean/std, description) and the digest of
    all its weights and buffers (normalisation statistics and a fine-tuned backbone included)."""
    preprocessing = getattr(stream, "preprocessing", None)
    return {
        "name": getattr(stream, "name", type(stream).__name__),
        "input_size": getattr(stream, "input_size", None),
        "preprocessing": preprocessing.to_dict() if preprocessing is not None else None,
        "state": module_digest(stream),
    }


class FeatureCache:
    """Features of one stream on one (perturbed) split, stored as safetensors by content key."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _versioned(description: Mapping) -> dict:
        """The key's content: every description names the versions of the computations that
        made its tensors (:func:`ctxfusion.versioning.versioned`), so no tensor of an older
        computation is ever found under a newer key."""
        if not description.get("versions"):
            raise ValueError(
                "a feature-cache description must carry the versions of the computations that "
                f"make its tensors (ctxfusion.versioning.versioned); got {dict(description)!r}")
        return {"layout": KEY_LAYOUT, "what": dict(description)}

    def path(self, description: Mapping) -> Path:
        """Where the features for ``description`` (under this code version) live."""
        return self.root / f"{cache_key(self._versioned(description))}.safetensors"

    def load(self, description: Mapping) -> dict[str, torch.Tensor] | None:
        """The cached tensors, or None when absent; a corrupt file is deleted with a warning."""
        path = self.path(description)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            problem = self._check(meta, tensors, canonical_json(self._versioned(description)))
        except Exception as err:  # safetensors raises several types on truncated files
            problem = f"unreadable ({type(err).__name__}: {err})"
        if problem is None:
            return tensors
        warnings.warn(f"feature cache file {path} is {problem}; deleting it and recomputing",
                      RuntimeWarning, stacklevel=2)
        path.unlink(missing_ok=True)
        return None

    @staticmethod
    def _check(meta: dict, tensors: dict[str, torch.Tensor], description: str) -> str | None:
        if meta.get("format") != FORMAT:
            return f"not in format {FORMAT} (metadata format={meta.get('format')!r})"
        if meta.get("description") != description:
            return "for another description"
        names = json.loads(meta.get("names", "[]"))
        if sorted(tensors) != names:
            return f"missing tensors (has {sorted(tensors)}, recorded {names})"
        if meta.get("sha256") != tensors_digest(tensors):
            return "corrupt (sha256 of its tensors does not match its metadata)"
        return None

    def save(self, description: Mapping, tensors: Mapping[str, torch.Tensor]) -> Path:
        """Store named tensors atomically (features of a split are ``features`` (N,D),
        ``labels`` (N,), ``ids`` (N,); experiments also store several feature sets, trained
        heads and fine-tuned weights under one description)."""
        if not tensors:
            raise DataError("nothing to cache: the tensor mapping is empty")
        if "features" in tensors:
            _check_feature_tensors(tensors)
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        metadata = {"format": FORMAT,
                    "description": canonical_json(self._versioned(description)),
                    "sha256": tensors_digest(tensors), "names": json.dumps(sorted(tensors))}
        return atomic_save_tensors(self.path(description), tensors, metadata=metadata)

    def get_or_compute(
        self,
        description: Mapping,
        compute_fn: Callable[[], Mapping[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        """Cached tensors for ``description``, else ``compute_fn()`` stored and returned."""
        cached = self.load(description)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        tensors = dict(compute_fn())
        self.save(description, tensors)
        return {k: v.detach().cpu() for k, v in tensors.items()}


def _check_feature_tensors(tensors: Mapping[str, torch.Tensor]) -> None:
    missing = [k for k in TENSOR_KEYS if k not in tensors]
    if missing:
        raise DataError(f"feature tensors lack {missing}; need {list(TENSOR_KEYS)}")
    n = tensors["features"].shape[0]
    if tensors["features"].dim() != 2 or any(
        tensors[k].shape != (n,) for k in ("labels", "ids")
    ):
        raise DataError(
            "feature tensors must be features (N,D), labels (N,), ids (N,); got "
            + ", ".join(f"{k} {tuple(tensors[k].shape)}" for k in TENSOR_KEYS)
        )


def _unpack(batch: Sequence, offset: int) -> tuple:
    if len(batch) == 4:
        return tuple(batch)
    if len(batch) == 2:
        images, labels = batch
        ids = torch.arange(offset, offset + len(labels))
        return images, labels, [torch.zeros(0, 4) for _ in range(len(labels))], ids
    raise DataError(
        f"a loader batch must be (images, labels, boxes, ids) or (images, labels); "
        f"got {len(batch)} items"
    )


def extract_features(
    streams: Mapping[str, nn.Module],
    loader: Iterable,
    *,
    perturb: Perturb | None = None,
    views: Mapping[str, Callable | None] | None = None,
    device: torch.device | str = "cpu",
    desc: str = "features",
    execution: Execution | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Run every stream on each (perturbed) batch once -> ({name: (N,D)}, labels, ids).

    ``perturb(images, labels, boxes) -> images`` is applied once per batch (it may need
    gradients, e.g. FGSM, so it runs outside ``no_grad``) and its output is shared by all
    streams, so each stream's features of one perturbed batch are computed once and reused by
    every head that reads them (fg head, joint heads at every alpha). ``views`` maps a stream
    name to a callable ``view(images, boxes)`` applied before that stream only.
    ``execution``: number format and memory layout of the forward passes (default: float32,
    contiguous, on ``device``).
    """
    execution = execution or Execution(torch.device(device))
    device = execution.device
    views = dict(views or {})
    unknown = set(views) - set(streams)
    if unknown:
        raise ConfigError(f"views given for unknown streams {sorted(unknown)}; "
                          f"streams: {sorted(streams)}")
    for stream in streams.values():
        stream.to(device, memory_format=execution.torch_memory_format).eval()
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in streams}
    labels_out, ids_out, seen = [], [], 0
    for batch in tqdm(loader, desc=f"{desc} [{', '.join(streams)}]", unit="batch", leave=False):
        images, labels, boxes, ids = _unpack(batch, seen)
        images, labels = images.to(device, non_blocking=True), labels.to(device)
        boxes = [b.to(device) for b in boxes]
        if perturb is not None:
            images = perturb(images, labels, boxes).detach()
        with execution.forward():
            for name, stream in streams.items():
                view = views.get(name)
                seen_images = images if view is None else view(images, boxes)
                outputs[name].append(stream(execution.layout(seen_images)).float().cpu())
        labels_out.append(labels.cpu())
        ids_out.append(torch.as_tensor(ids).cpu())
        seen += len(labels)
    if not labels_out:
        raise DataError("the loader yielded no batches: nothing to extract features from")
    features = {name: torch.cat(chunks) for name, chunks in outputs.items()}
    return features, torch.cat(labels_out), torch.cat(ids_out)


def cached_extract(
    cache: FeatureCache,
    descriptions: Mapping[str, Mapping],
    streams: Mapping[str, nn.Module],
    loader: Iterable,
    *,
    group: Group = SINGLE,
    **kwargs,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """:func:`extract_features` through the cache: one pass computes every missing stream.

    ``descriptions[name]`` keys stream ``name``'s features; streams already cached are not run.
    Under ``torchrun`` (``group``), the batches of ``loader`` are split across the ranks
    (:func:`ctxfusion.distributed.sharded_get_or_compute`).
    """
    found = {name: cache.load(descriptions[name]) for name in streams}
    missing = group.broadcast([name for name in streams if found[name] is None])
    for name in set(streams) - set(missing):  # cached, as rank 0 found it
        if found[name] is None:
            found[name] = must_load(cache, descriptions[name])
    cache.hits += len(streams) - len(missing)
    if missing:
        cache.misses += len(missing)
        views = {k: v for k, v in (kwargs.pop("views", None) or {}).items() if k in missing}

        def compute(part: Iterable, _positions: list[int] | None) -> dict[str, dict]:
            features, labels, ids = extract_features(
                {name: streams[name] for name in missing}, part, views=views, **kwargs)
            return {name: {"features": features[name], "labels": labels, "ids": ids}
                    for name in missing}

        found.update(sharded_get_or_compute(
            cache, {name: descriptions[name] for name in missing}, loader, compute, group))
    first = next(iter(found.values()))
    for name, tensors in found.items():
        if not (torch.equal(tensors["ids"], first["ids"])
                and torch.equal(tensors["labels"], first["labels"])):
            raise DataError(
                f"cached features of stream {name!r} cover other images or another order than "
                f"those of {next(iter(found))!r}; the descriptions do not pin the same data"
            )
    return ({name: found[name]["features"] for name in streams}, first["labels"], first["ids"])
