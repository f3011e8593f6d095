"""The registry of dataset kinds: one config dataclass per kind, with its own prepare step.

A kind is a dataclass subclass of :class:`DatasetConfig` registered with
``@register_dataset_kind("name")``. Its fields are the config keys that kind takes (the config
loader builds the kind's class from ``kind:`` and rejects keys of other kinds), ``validate``
checks them and ``prepare(out, bad_images=..., progress=...)`` writes the manifest.
:func:`prepare_dataset` is the one dispatcher, used by ``ctxfusion run`` (with a cache keyed by
the settings) and by ``ctxfusion prepare`` (which builds the same config from its options:
``prepare_options`` names the fields it offers, the field metadata gives help and checks).

Light at import time (config.py imports it): the preparation modules are imported lazily.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, KeysView
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ctxfusion.data.manifest import SUBSETS
from ctxfusion.errors import ConfigError
from ctxfusion.versioning import computation, current_versions
from ctxfusion.vocabulary import BAD_IMAGE_POLICIES as BAD_IMAGE_POLICIES  # re-exported
from ctxfusion.vocabulary import CROWD_POLICIES as CROWD_POLICIES  # re-exported
from ctxfusion.vocabulary import INSTANCE_RULES as INSTANCE_RULES  # re-exported
from ctxfusion.vocabulary import STEPS

if TYPE_CHECKING:
    from ctxfusion.data.manifest import Manifest

#: fields that choose how much of a prepared dataset a run uses, not how it is prepared
USE_FIELDS = ("max_train_per_class", "max_test_per_class", "subsets", "steps", "image_size")
#: value checks a field can declare with ``check=``: (test, what the message says)
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    ">0": (lambda v: v > 0, "must be > 0"),
    "[0,1]": (lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    "(0,1)": (lambda v: 0 < v < 1, "must be in (0, 1)"),
    "(0,1]": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
}

_KINDS: dict[str, type[DatasetConfig]] = {}
#: the registered kind names (a live view of the registry)
DATASET_KINDS: KeysView[str] = _KINDS.keys()
C = TypeVar("C", bound="DatasetConfig")


def option(default: Any = dataclasses.MISSING, text: str = "", metavar: str | None = None,
           choices: tuple[str, ...] | None = None, check: str | None = None) -> Any:
    """A config field with its help ``text`` (shown by ``ctxfusion prepare``), an optional
    ``metavar``, ``choices`` and value ``check`` (a key of :data:`CHECKS`)."""
    meta = {"help": text, "metavar": metavar, "choices": choices, "check": check}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _all_subsets() -> list[str]:
    return list(SUBSETS)


@dataclass
class DatasetConfig:
    """One dataset: which kind, how much of it to use; each kind adds its own fields.

    ``context_strength`` is None except for kinds that draw their data with one (``scenes``).
    """

    context_strength: ClassVar[float | None] = None
    #: the fields ``ctxfusion prepare <kind>`` offers as options (empty: not offered)
    prepare_options: ClassVar[tuple[str, ...]] = ()
    #: one line of help for ``ctxfusion prepare``
    summary: ClassVar[str] = ""
    #: False: the kind reads an existing manifest (no output folder, no cache)
    cached: ClassVar[bool] = True

    name: str = option(text="dataset name (in the manifest and the run's tables)")
    kind: str = option()
    num_train: int = option(2400, check=">0")
    num_test: int = option(800, check=">0")
    max_train_per_class: int | None = option(None, check=">0")
    max_test_per_class: int | None = option(None, check=">0")
    image_size: int | None = option(None, check=">0")
    subsets: list[str] = field(default_factory=_all_subsets)
    steps: list[str] | None = None
    seed: int = option(0, "seed of the random split and of the subsets")

    def validate(self, where: str) -> None:
        """Check the common keys and every field's declared choices and check."""
        if _KINDS.get(self.kind) is not type(self):
            _check_choice(f"{where}.kind", self.kind, tuple(_KINDS))
            raise ConfigError(f"{where}.kind = {self.kind!r} does not match {type(self).__name__}")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ConfigError(
                f"{where}.name = {self.name!r}: use letters, digits, '.', '_' and '-' only"
            )
        for i, subset in enumerate(self.subsets):
            _check_choice(f"{where}.subsets[{i}]", subset, SUBSETS)
        for i, step in enumerate(self.steps or []):
            _check_choice(f"{where}.steps[{i}]", step, STEPS)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.metadata.get("choices"):
                _check_choice(f"{where}.{f.name}", value, f.metadata["choices"])
            if f.metadata.get("check"):
                test, text = CHECKS[f.metadata["check"]]
                if not test(value):
                    raise ConfigError(f"{where}.{f.name} = {value}: {text}")

    def prepare(self, out: Path | None, *, bad_images: str = "skip",
                progress: bool = True) -> Manifest:
        """Write the manifest of this dataset into ``out`` and return it."""
        raise NotImplementedError(f"dataset kind {self.kind!r} has no prepare step")


def _check_choice(key: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{key} = {value!r}: valid values are {', '.join(valid)}")


def register_dataset_kind(name: str) -> Callable[[type[C]], type[C]]:
    """Class decorator: register a :class:`DatasetConfig` dataclass as the kind ``name``."""

    def decorate(cls: type[C]) -> type[C]:
        if not (dataclasses.is_dataclass(cls) and issubclass(cls, DatasetConfig)):
            raise TypeError(f"@register_dataset_kind({name!r}) decorates a DatasetConfig "
                            "dataclass")
        if name in _KINDS:
            raise ValueError(f"dataset kind {name!r} is already registered")
        _KINDS[name] = cls
        return cls

    return decorate


def unregister_dataset_kind(name: str) -> None:
    """Remove a registered kind (tests register toy ones)."""
    _KINDS.pop(name, None)


def dataset_kind(name: Any, where: str = "kind") -> type[DatasetConfig]:
    """The config class of kind ``name``; ConfigError listing the registered kinds if none."""
    _check_choice(where, name, tuple(_KINDS))
    return _KINDS[name]


def kind_for_mapping(data: dict[str, Any], where: str) -> tuple[type[DatasetConfig], dict]:
    """The kind class a config mapping names, and the mapping with the keys it takes.

    A key of another kind is rejected (listing the kind's keys) unless its value is None or
    that key's default there: resolved configs of older versions list every kind's keys.
    """
    if "kind" not in data:
        raise ConfigError(f"{where}kind is required; valid kinds: {', '.join(_KINDS)}")
    cls = dataset_kind(data["kind"], f"{where}kind")
    own = {f.name for f in dataclasses.fields(cls)}
    kept = {}
    for key, value in data.items():
        if key in own:
            kept[key] = value
        elif not any(_is_default(other, key, value) for other in _KINDS.values()):
            raise ConfigError(f"{where}{key}: unknown key for a dataset of kind {data['kind']}; "
                              f"valid keys here: {', '.join(sorted(own))}")
    return cls, kept


def _is_default(cls: type, key: str, value: Any) -> bool:
    """``key`` is a field of ``cls`` and ``value`` is None or that field's default."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return key in fields and (value is None or fields[key].default == value)


def make_dataset_config(kind: str, where: str = "", **values: Any) -> DatasetConfig:
    """Build and validate the config of ``kind`` from keyword values (``ctxfusion prepare``)."""
    cls = dataset_kind(kind, f"{where}.kind" if where else "kind")
    config = cls(kind=kind, **values)
    config.validate(where)
    return config


#: the version of dataset preparation: rendering the embedded benchmark, pruning (SPEC section
#: 2), splits and subsets, manifests (``data/``, ``scenes/benchmark.py``, ``scenes/render.py``)
PREPARATION = computation("datasets", 1, "dataset preparation: benchmark rendering, pruning, "
                          "splits, subsets, manifests (data/, scenes/)")


def settings_key(dataset: DatasetConfig) -> str:
    """A hash of the settings that decide how ``dataset`` is prepared (not :data:`USE_FIELDS`)
    and of the preparation's version: a bumped :data:`PREPARATION` prepares it again, into a
    folder of its own, and everything computed from it is computed again."""
    settings = {k: v for k, v in vars(dataset).items() if k not in USE_FIELDS}
    settings["versions"] = current_versions(PREPARATION)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def prepare_dataset(dataset: DatasetConfig, out: str | Path | None = None, *,
                    bad_images: str = "skip", progress: bool = True) -> Manifest:
    """Build the manifest of ``dataset`` through its kind: the one dispatcher.

    ``out=None`` (``ctxfusion run``): ``$CTXFUSION_HOME/datasets/<name>-<settings hash>/``,
    reused while the settings are unchanged (the manifest is written last, atomically, so a
    folder without one is rebuilt). ``out`` given (``ctxfusion prepare``): always rebuilt there.
    """
    kind = dataset_kind(dataset.kind)
    if not isinstance(dataset, kind):
        raise ConfigError(f"dataset {dataset.name}: a {type(dataset).__name__} is not of kind "
                          f"{dataset.kind!r}")
    if out is None and kind.cached:
        from ctxfusion.data.manifest import MANIFEST_NAME, load_manifest
        from ctxfusion.paths import home_dir

        out = home_dir() / "datasets" / f"{dataset.name}-{settings_key(dataset)}"
        if (out / MANIFEST_NAME).is_file():
            return load_manifest(out)
    return dataset.prepare(Path(out) if out is not None else None, bad_images=bad_images,
                           progress=progress)


def unpack_archive(archive: str | Path) -> Path:
    """Unpack a dataset archive once into ``$CTXFUSION_HOME/archives``."""
    from ctxfusion.data.archives import archive_cache_name, unpack_once
    from ctxfusion.paths import home_dir

    return unpack_once(archive, home_dir() / "archives" / archive_cache_name(archive))


def source_path(value: str | None, archive: str | None) -> Path | None:
    """A configured path: ``~`` and variables expanded, relative to the unpacked archive."""
    from ctxfusion.paths import expand_path

    base = unpack_archive(expand_path(archive)) if archive else None
    if value is None:
        return base
    path = expand_path(value)
    return base / path if base is not None and not path.is_absolute() else path


@dataclass(kw_only=True)
class PrunedConfig(DatasetConfig):
    """The SPEC section 2 pruning settings of a COCO-format kind (not a kind itself)."""

    num_classes: int = option(24, "keep the N categories with the most surviving (train) "
                              "images, ties by category id", "N", check=">0")
    classes: list[str] | None = option(None, "explicit class names instead of num_classes",
                                       "a,b,c")
    instance_rule: str = option(
        "image", "image: all annotations of one category and at most max_instances of them; "
        "category: the label (category with the largest box area) has at most max_instances "
        "annotations, other objects are context", choices=INSTANCE_RULES)
    max_instances: int = option(2, "most instances allowed by the instance rule", "K",
                                check=">0")
    max_foreground: float = option(0.5, "largest allowed fraction of the image covered by the "
                                   "union of the kept boxes", "F", check="(0,1]")
    crowd: str = option("drop", "images with an iscrowd annotation: drop them, or ignore the "
                        "crowd annotations", choices=CROWD_POLICIES)
    subset_size: int = option(8, "classes per Dissimilar/Similar subset", "K", check=">0")

    def prune(self, out: Path, files: dict[str, Path | None], *, bad_images: str,
              progress: bool, test_fraction: float = 0.25) -> Manifest:
        """Run ``prepare_coco`` on ``files`` (annotations, images, test_*) with these rules."""
        from ctxfusion.data.coco import prepare_coco

        return prepare_coco(
            **files, out=out, num_classes=self.num_classes, classes=self.classes,
            seed=self.seed, instance_rule=self.instance_rule, max_instances=self.max_instances,
            max_foreground=self.max_foreground, crowd=self.crowd, bad_images=bad_images,
            test_fraction=test_fraction, subset_size=self.subset_size, dataset=self.name,
            progress=progress)


@register_dataset_kind("scenes")
@dataclass(kw_only=True)
class ScenesConfig(PrunedConfig):
    """The embedded procedural benchmark (``ctxfusion.scenes``): num_train and num_test
    images drawn with ``context_strength`` in [0, 1], then pruned like COCO."""

    context_strength: float | None = option(None, check="[0,1]")

    def validate(self, where: str) -> None:
        super().validate(where)
        if self.context_strength is None:
            raise ConfigError(f"{where}.context_strength = None: "
                              "a scenes dataset needs a context strength in [0, 1]")

    def prepare(self, out: Path | None, *, bad_images: str = "skip",
                progress: bool = True) -> Manifest:
        from ctxfusion.scenes.benchmark import generate_scenes

        raw = Path(out) / "raw"
        generate_scenes(raw, num_train=self.num_train, num_test=self.num_test,
                        context_strength=self.context_strength, seed=self.seed)
        files = {"annotations": raw / "instances_train.json", "images": raw / "train",
                 "test_annotations": raw / "instances_test.json", "test_images": raw / "test"}
        return self.prune(out, files, bad_images=bad_images, progress=progress)


@register_dataset_kind("coco")
@dataclass(kw_only=True)
class CocoConfig(PrunedConfig):
    """Prune a COCO-format dataset (one category, <= 2 instances, foreground <= 50%), keep
    the N classes with most images, split 75/25 (seeded, stratified) or use the dataset's own
    test split, and draw the All/Dissimilar/Similar subsets."""

    prepare_options = ("annotations", "images", "num_classes", "classes", "seed",
                       "instance_rule", "max_instances", "max_foreground", "crowd",
                       "test_annotations", "test_images", "test_fraction", "subset_size", "name")
    summary = "COCO-format instances JSON + image folder, pruned as in SPEC section 2"

    annotations: str = option(text="COCO instances JSON (train split when test_annotations "
                              "is given)", metavar="FILE")
    images: str = option(text="folder the JSON's file_name entries are relative to",
                         metavar="DIR")
    test_annotations: str | None = option(None, "COCO JSON of the dataset's own test split "
                                          "(replaces the random split)", "FILE")
    test_images: str | None = option(None, "image folder of test_annotations", "DIR")
    test_fraction: float = option(0.25, "fraction of each class put in test by the random "
                                  "split", "F", check="(0,1)")
    archive: str | None = option(None, "a .tar.gz unpacked once into the cache; the paths "
                                 "are then relative to it", "FILE")

    def prepare(self, out: Path | None, *, bad_images: str = "skip",
                progress: bool = True) -> Manifest:
        files = {key: source_path(getattr(self, key), self.archive) if getattr(self, key)
                 else None for key in ("annotations", "images", "test_annotations",
                                       "test_images")}
        return self.prune(out, files, bad_images=bad_images, progress=progress,
                          test_fraction=self.test_fraction)


@register_dataset_kind("cifar10")
@dataclass(kw_only=True)
class Cifar10Config(DatasetConfig):
    """CIFAR-10 from ROOT/cifar-10-batches-py (exported once as PNGs into OUT/images) or from
    ROOT/train/<class>/ and ROOT/test/<class>/; official class order."""

    prepare_options = ("root", "archive", "download")
    summary = "CIFAR-10 from the official python batches or an ImageFolder tree"

    root: str | None = option(None, "folder holding cifar-10-batches-py/ or train/ and test/ "
                              "(relative to the unpacked archive when both are given)", "DIR")
    archive: str | None = option(None, "a .tar.gz of such a folder, unpacked once into the "
                                 "cache", "FILE")
    download: bool = option(False, "download the official python batches into root (needs "
                            "internet)")

    def validate(self, where: str) -> None:
        super().validate(where)
        if not (self.root or self.archive):
            raise ConfigError(f"{where}: a cifar10 dataset needs `root` or `archive`")

    def prepare(self, out: Path | None, *, bad_images: str = "skip",
                progress: bool = True) -> Manifest:
        from ctxfusion.data.cifar import prepare_cifar10

        return prepare_cifar10(source_path(self.root, self.archive), out, download=self.download,
                               bad_images=bad_images, progress=progress)


@register_dataset_kind("imagefolder")
@dataclass(kw_only=True)
class ImageFolderConfig(DatasetConfig):
    """ROOT/train/<class>/ and ROOT/test/<class>/ (or val/) keep their split; otherwise
    ROOT/<class>/ is split per class at random (seeded)."""

    prepare_options = ("root", "test_fraction", "seed", "name")
    summary = "any ImageFolder tree (box-free experiments)"

    root: str = option(text="the ImageFolder root (relative to the unpacked archive if one "
                       "is given)", metavar="DIR")
    archive: str | None = option(None, "a .tar.gz unpacked once into the cache", "FILE")
    test_fraction: float = option(0.25, "fraction of each class put in test when there is no "
                                  "test/ folder", "F", check="(0,1)")

    def prepare(self, out: Path | None, *, bad_images: str = "skip",
                progress: bool = True) -> Manifest:
        from ctxfusion.data.imagefolder import prepare_imagefolder

        return prepare_imagefolder(source_path(self.root, self.archive), out,
                                   test_fraction=self.test_fraction, seed=self.seed,
                                   bad_images=bad_images, dataset=self.name, progress=progress)


@register_dataset_kind("manifest")
@dataclass(kw_only=True)
class ManifestConfig(DatasetConfig):
    """An existing manifest.json (or its folder) written by ``ctxfusion prepare``."""

    cached = False

    manifest: str = option(text="the manifest.json or its folder", metavar="PATH")

    def prepare(self, out: Path | None, *, bad_images: str = "skip",
                progress: bool = True) -> Manifest:
        from ctxfusion.data.manifest import load_manifest
        from ctxfusion.paths import expand_path

        return load_manifest(expand_path(self.manifest))
