"""run.json as typed sections: :class:`RunInfo` with one :class:`DatasetInfo` per dataset.

``from_json`` checks every value against the field's type (a wrong type raises a
:class:`~ctxfusion.errors.DataError` naming the file and the key, e.g. ``datasets``) and
tolerates keys older runs did not write (None, or empty). Keys a section does not declare are
kept in its ``extra`` and written back in place, so ``to_json(from_json(d)) == d`` for every
run.json the writer produced. ``to_json`` leaves out fields that are None unless they are
declared with :data:`KEEP_NULL` (written as null).
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from ctxfusion.errors import DataError

T = TypeVar("T")
#: metadata of a field written as null when None (the writer always records it)
KEEP_NULL = {"keep_null": True}
_EXTRA = "extra"
#: an eps: one value, or one per channel
Eps = float | list[float]
#: run.json ``status``: ``running`` (written at the start; also what a killed run leaves),
#: ``complete`` (every dataset and the report done), ``failed`` (an error ended it, see
#: ``error``), ``interrupted`` (Ctrl-C). A run.json without it (older runs) is complete.
RUN_STATUSES = ("running", "complete", "failed", "interrupted")


def _kind_of(value: Any) -> str:
    """A JSON value's kind, for messages."""
    if value is None:
        return "null"
    for kind, name in ((bool, "true/false"), (str, "a string"), (int | float, "a number"),
                       (list, "a list"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _expected(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(option) for option in get_args(tp))
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             type(None): "null", list: "a list", dict: "an object"}
    if is_dataclass(tp):
        return "an object"
    return names.get(origin or tp, str(tp))


def _fits(tp: Any, value: Any) -> bool:
    """Whether ``value`` has the outer kind of ``tp`` (items are checked later)."""
    origin = get_origin(tp) or tp
    if tp is Any:
        return True
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if is_dataclass(origin):
        return isinstance(value, dict)
    return isinstance(value, origin)


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    """``value`` checked against ``tp`` (nested sections become dataclasses)."""
    if get_origin(tp) in (Union, types.UnionType):
        tp = next((option for option in get_args(tp) if _fits(option, value)), None) or tp
    if not _fits(tp, value):
        shown = json.dumps(value, default=str)
        raise DataError(f"{where}: key {key!r} must be {_expected(tp)}, got {_kind_of(value)} "
                        f"{shown[:60]}")
    if is_dataclass(tp):
        return from_json(tp, value, where, key)
    origin, args = get_origin(tp), get_args(tp)
    if origin is list and args:
        return [_convert(args[0], item, where, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict and args:
        return {k: _convert(args[1], item, where, f"{key}.{k}") for k, item in value.items()}
    return value


def from_json(section: type[T], data: Any, where: str, key: str = "") -> T:
    """A section (dataclass) from a JSON object; ``where`` names the file in errors and
    ``key`` the section's place in it."""
    if not isinstance(data, dict):
        place = f"key {key!r}" if key else "top level"
        raise DataError(f"{where}: {place} must be a JSON object, got {_kind_of(data)}")
    hints = get_type_hints(section)
    names = [f.name for f in fields(section) if f.name != _EXTRA]
    values = {name: _convert(hints[name], data[name], where, f"{key}.{name}" if key else name)
              for name in names if name in data}
    if _EXTRA in hints:
        values[_EXTRA] = {k: v for k, v in data.items() if k not in names}
    return section(**values)


def _dump(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_json(value)
    if isinstance(value, list):
        return [_dump(item) for item in value]
    if isinstance(value, dict):
        return {k: _dump(item) for k, item in value.items()}
    return value


def to_json(section: Any) -> dict[str, Any]:
    """A section as a JSON object (field order; ``extra`` keys where the field stands)."""
    out: dict[str, Any] = {}
    for column in fields(section):
        value = getattr(section, column.name)
        if column.name == _EXTRA:
            out.update(value)
        elif value is not None or column.metadata.get("keep_null"):
            out[column.name] = _dump(value)
    return out


@dataclass(frozen=True)
class DatasetInfo:
    """``datasets.<name>``: what the run used of one dataset."""

    kind: str | None = None
    has_boxes: bool | None = None
    context_strength: float | None = field(default=None, metadata=KEEP_NULL)
    image_size: int | None = None
    subsets: dict[str, list[str]] = field(default_factory=dict)  # subset -> class names
    n_train: int | None = None
    n_test: int | None = None
    manifest: str | None = None
    notes: list[str] = field(default_factory=list)
    finetuned_fg: dict[str, Any] | None = None  # older runs: the fine-tuned fg stream
    finetuned_stream: dict[str, Any] | None = None  # the fine-tuned stream (role, description)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ThreatModel:
    """``threat_model``: the norm, the eps in each space and the attacks run."""

    norm: str | None = None
    eps_space: str | None = None
    epsilons_config: list[Eps] | None = None
    epsilons_pixel: list[Eps] | None = None
    epsilons_normalized: list[Eps] | None = None
    normalization_std: Eps | None = None
    attacks: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExampleInfo:
    """``examples.<dataset>``: how Fig. 3b's example was blurred."""

    blur_sigma: float | None = None
    mode: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PcaInfo:
    """``pca.<dataset>``: Fig. 2's blur sigma and number of classes."""

    sigma: float | None = None
    classes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AdvtrainInfo:
    """``advtrain.<dataset>/<subset>``: the adversarial retraining of the fg baseline."""

    eps_pixel: Eps | None = None
    eps: Eps | None = None
    eps_space: str | None = None
    adv_fraction: float | None = None
    epochs: int | None = None
    train_backbone: bool | None = None
    n_train: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CacheInfo:
    """``cache``: feature-cache hits and misses of the run."""

    hits: int | None = None
    misses: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """run.json: provenance, conventions, threat model and datasets of one run."""

    experiment: str | None = None
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds
    status: str | None = None  # one of RUN_STATUSES; None (older runs): complete
    error: str | None = None  # the message that ended a failed or interrupted run
    # rows of each table written (results, differences, weights, pca) and results.csv's
    # sha256 at the last write: readers refuse files that do not match (None: older runs)
    rows: dict[str, int] | None = None
    results_sha256: str | None = None
    config_path: str | None = field(default=None, metadata=KEEP_NULL)
    versions: dict[str, str] = field(default_factory=dict)  # package -> version
    # computation -> its version (ctxfusion.versioning); None: a run older than the versions
    computations: dict[str, int] | None = None
    device: str | None = None
    seed: int | None = None
    repeats: int | None = None
    seeds: list[int] | None = None
    alpha_reduction: str | None = None
    normalization: str | None = None
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> description
    classifiers: dict[str, list[str]] | None = None  # name -> the streams it reads
    threat_model: ThreatModel | None = None
    execution: dict[str, Any] | None = None  # world_size, backend, loader workers, precision
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)
    examples: dict[str, ExampleInfo] | None = None
    pca: dict[str, PcaInfo] | None = None
    advtrain: dict[str, AdvtrainInfo] | None = None
    cache: CacheInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any, where: str = "run.json") -> RunInfo:
        """Parse run.json's object (``where``: the file, for errors)."""
        info = from_json(cls, data, where)
        if info.status is not None and info.status not in RUN_STATUSES:
            raise DataError(f"{where}: key 'status' = {info.status!r}: valid values are "
                            f"{', '.join(RUN_STATUSES)}")
        return info

    @property
    def state(self) -> str:
        """The run's status: ``status``, or ``complete`` for older runs that lack it."""
        return self.status or "complete"

    def to_json(self) -> dict[str, Any]:
        """run.json's object."""
        return to_json(self)

    def dataset(self, name: str) -> DatasetInfo:
        """``datasets[name]``, or an empty :class:`DatasetInfo` when not recorded."""
        return self.datasets.get(name) or DatasetInfo()

    def example(self, dataset: str) -> ExampleInfo:
        """``examples[dataset]``, or an empty :class:`ExampleInfo` when not recorded."""
        return (self.examples or {}).get(dataset) or ExampleInfo()
