"""Experiment configs: dataclasses read from YAML, validated with errors that name the key.

Every key of a config is a field below; unknown keys and bad values are rejected with the
file, the dotted key and what is valid, e.g.
``configs/demo.yaml: blur.sigmas[2] = -1: a sigma must be > 0``.
``--set key=value`` overrides use the same dotted keys (``datasets[0].num_train=100``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctxfusion.config_yaml import DuplicateKeyError, UniqueKeyLoader, check_finite
from ctxfusion.containment import check_plain_name
from ctxfusion.data.kinds import DATASET_KINDS as DATASET_KINDS  # re-exported
from ctxfusion.data.kinds import DatasetConfig, kind_for_mapping
from ctxfusion.data.manifest import SUBSETS
from ctxfusion.errors import ConfigError
from ctxfusion.perturb.attacks import EPS_SPACES
from ctxfusion.perturb.attacks import ITERATIVE_ATTACKS as WHITEBOX_ATTACKS
from ctxfusion.perturb.blur import BLUR_MODES
from ctxfusion.perturb.corruptions import CORRUPTIONS
from ctxfusion.perturb.views import VIEWS
from ctxfusion.roles import FUSION_METHODS
from ctxfusion.roles import resolve as resolve_roles
from ctxfusion.schema.rows import ALPHA_REDUCTIONS, REGIONS
from ctxfusion.vocabulary import STEPS as STEPS  # re-exported

# Vocabularies owned by the modules that implement them (live views of their registries):
# VIEWS (perturb.views), DATASET_KINDS (data.kinds), EPS_SPACES and WHITEBOX_ATTACKS (the
# iterative attacks of perturb.attacks), BLUR_MODES (perturb.blur); STEPS (ctxfusion.vocabulary).
#: dataset statistics selectable by ``normalization`` (SPEC §2: the paper uses CIFAR-10's);
#: ``stream`` keeps each stream's own preprocessing
NORMALIZATION_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
NORMALIZATIONS = ("stream", *NORMALIZATION_STATS)


@dataclass
class StreamConfig:
    """One stream (a role of the config): a registered name (or ``torchvision:<model>``,
    ``timm:<model>``), an optional weight file, the views it is evaluated with and optional
    overrides of its preprocessing (``mean``, ``std``, ``input_size``).

    The first view is the stream's default (classifier names carry no suffix); further views
    add classifiers named ``<classifier>@<view>`` (e.g. ``bg@context``, ``joint@context``).
    """

    name: str
    weights: str | None = None
    views: list[str] = field(default_factory=lambda: ["full"])
    mean: list[float] | None = None
    std: list[float] | None = None
    input_size: int | None = None

    def validate(self, where: str) -> None:
        if not self.views:
            raise ConfigError(f"{where}.views is empty: give at least one of {', '.join(VIEWS)}")
        for i, view in enumerate(self.views):
            _check_choice(f"{where}.views[{i}]", view, VIEWS)
        if len(set(self.views)) != len(self.views):
            raise ConfigError(f"{where}.views = {self.views}: a view is listed twice")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if values is not None and len(values) != 3:
                raise ConfigError(f"{where}.{key} = {values}: give 3 numbers (R, G, B)")
        if self.std is not None and not all(s > 0 for s in self.std):
            raise ConfigError(f"{where}.std = {self.std}: every std must be > 0")
        _check_positive(where, self, "input_size")
        from ctxfusion.streams import stream_info  # deferred: building the registry is slow

        try:
            stream_info(self.name)
        except ConfigError as exc:
            raise ConfigError(f"{where}.name = {self.name!r}: {exc}") from None

    def preprocessing(self) -> dict[str, Any]:
        """The preprocessing overrides this config sets (empty: the stream's own)."""
        return {key: getattr(self, key) for key in ("mean", "std", "input_size")
                if getattr(self, key) is not None}


@dataclass
class BlurConfig:
    """Gaussian blur inside the object boxes (SPEC §3); sigmas in pixels of the working size."""

    sigmas: list[float] = field(default_factory=lambda: [0.001, 1, 3, 5, 10, 20, 45])
    mode: str = "image"
    example_sigma: float = 45.0

    def validate(self, where: str) -> None:
        _check_choice(f"{where}.mode", self.mode, BLUR_MODES)
        if not self.sigmas:
            raise ConfigError(f"{where}.sigmas is empty: give at least one sigma > 0")
        for i, sigma in enumerate(self.sigmas):
            if not sigma > 0:
                raise ConfigError(f"{where}.sigmas[{i}] = {sigma}: a sigma must be > 0")
        _check_positive(where, self, "example_sigma")


@dataclass
class FgsmConfig:
    """FGSM sweep (SPEC §3): crafted on each source model, evaluated on every classifier.

    eps_space ``pixel``: eps in [0,1] pixel space. ``normalized``: the paper's convention, eps
    on the normalised input, converted with the per-channel std of ``normalization``.
    ``whitebox``: also attack every other classifier through its own gradient (threat
    ``whitebox``) on the class-stratified sample of ``whitebox.max_images`` test images, so
    every classifier of a comparison meets both the transfer and the white-box attack. Every
    classifier classifies each of those images too: with the sources' sweeps, a transfer
    matrix (crafted on, classified by) at every eps.
    ``regions``: where FGSM may change pixels (``image``; ``box``, ``background`` need boxes);
    beyond ``image``, every classifier is attacked through its own gradient on the sample.
    """

    epsilons: list[float] = field(default_factory=lambda: [0, 0.002, 0.005, 0.01, 0.02, 0.05])
    eps_space: str = "pixel"
    sources: list[str] | None = None
    whitebox: bool = True
    regions: list[str] = field(default_factory=lambda: ["image"])

    def validate(self, where: str) -> None:
        _check_choice(f"{where}.eps_space", self.eps_space, EPS_SPACES)
        _check_epsilons(f"{where}.epsilons", self.epsilons, self.eps_space)
        _check_regions(f"{where}.regions", self.regions)


@dataclass
class WhiteboxConfig:
    """Iterative white-box attacks on the fused model itself (beyond the paper, SPEC §6).

    Every white-box evaluation runs on one seeded sample of at most ``max_images`` test
    images per subset, drawn evenly across classes (so it covers every class).

    ``regions``: where the attacks may change pixels; the regions beyond ``image`` run at
    ``region_epsilons`` (default: ``epsilons``). ``adaptive``: defences (``joint-alpha<a>``
    heads, classifiers with a view such as ``joint@context``, ``fg-advtrain``) attacked through
    their own gradient with the first attack that can be restricted to a region (not
    AutoAttack), at ``region_epsilons``, in every region (and in
    the background for a view that hides the boxes): threat ``adaptive``. ``sanity``: the
    unbounded attack (eps = 1, the whole [0,1] range) on each target and its input gradients'
    check, for the report's sanity checks.
    """

    attacks: list[str] = field(default_factory=lambda: ["pgd"])
    epsilons: list[float] = field(default_factory=lambda: [0.005, 0.01, 0.02])
    steps: int = 10
    restarts: int = 1
    max_images: int = 256
    targets: list[str] | None = None
    regions: list[str] = field(default_factory=lambda: ["image"])
    region_epsilons: list[float] | None = None
    adaptive: list[str] = field(default_factory=list)
    sanity: bool = True

    def validate(self, where: str) -> None:
        for i, attack in enumerate(self.attacks):
            _check_choice(f"{where}.attacks[{i}]", attack, WHITEBOX_ATTACKS)
        _check_positive(where, self, "steps", "restarts", "max_images")
        _check_regions(f"{where}.regions", self.regions)
        if self.adaptive and not self.attacks:
            raise ConfigError(f"{where}.adaptive needs at least one attack in {where}.attacks")


@dataclass
class CorruptionsConfig:
    """Natural corruptions at ImageNet-C severities (``imagecorruptions``), in each region,
    scored by every classifier on a class-stratified sample of at most ``max_images`` test
    images (the white-box sample when the sizes agree). Severity 0 is the clean row."""

    names: list[str] = field(default_factory=lambda: list(CORRUPTIONS))
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    regions: list[str] = field(default_factory=lambda: ["image", "box", "background"])
    max_images: int = 256

    def validate(self, where: str) -> None:
        for i, name in enumerate(self.names):
            _check_choice(f"{where}.names[{i}]", name, CORRUPTIONS)
        for i, severity in enumerate(self.severities):
            if isinstance(severity, bool) or severity not in range(1, 6):
                raise ConfigError(f"{where}.severities[{i}] = {severity!r}: a severity is an "
                                  "integer from 1 to 5 (0, the clean image, is always scored)")
        _check_regions(f"{where}.regions", self.regions)
        _check_positive(where, self, "max_images")


def _check_regions(key: str, regions: list[str]) -> None:
    if not regions:
        raise ConfigError(f"{key} is empty: give at least one of {', '.join(REGIONS)}")
    for i, region in enumerate(regions):
        _check_choice(f"{key}[{i}]", region, REGIONS)


@dataclass
class HeadsConfig:
    """Linear heads trained on cached features; alphas for the regularised joint head.

    ``alpha_reduction``: ``sum`` is the paper's equation (cross-entropy summed over the N
    training images plus alpha ||W_fg||^2), ``mean`` averages the cross-entropy, so a mean
    alpha equals a sum alpha divided by N. ``train_fraction``: each repeat trains its heads
    on a seeded per-class sample of this fraction of the training images (1 = all).
    """

    alphas: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0])
    alpha_reduction: str = "sum"
    epochs: int = 60
    lr: float = 0.01
    batch_size: int = 256
    train_fraction: float = 1.0
    alpha_classifier: str | None = None
    penalized_stream: str | None = None

    def validate(self, where: str) -> None:
        for i, alpha in enumerate(self.alphas):
            if alpha <= 0:
                raise ConfigError(f"{where}.alphas[{i}] = {alpha}: an alpha must be > 0")
        _check_choice(f"{where}.alpha_reduction", self.alpha_reduction, ALPHA_REDUCTIONS)
        _check_positive(where, self, "epochs", "batch_size", "lr")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"{where}.train_fraction = {self.train_fraction}: "
                              "must be in (0, 1]")


@dataclass
class FusionConfig:
    """Robust fusion beyond the paper (step ``fusion``, :mod:`ctxfusion.fusion`): each of
    ``methods`` becomes a classifier ``<classifier>-<method>`` over the streams of the fused
    ``classifier`` (None: ``heads.alpha_classifier``), scored like every other classifier.

    ``dropout``: the stream dropout rate. ``blur_sigmas`` (pixels, like ``blur.sigmas``) and
    ``fgsm_epsilons`` (in ``fgsm.eps_space``): the perturbed training images of ``blurtrain``,
    ``fgsmtrain`` and ``gate``, a class-stratified sample of at most ``max_train_images``
    training images (null: all). ``gate_epochs``: passes of the gate's training.
    ``heldout_folds``: every head (single streams, the fused classifier, each alpha, each
    method) is also cross-fitted on the test images in this many class-stratified folds and
    scored on the fold it did not see (``<classifier>-heldout``); 0 turns it off.
    """

    classifier: str | None = None
    methods: list[str] = field(default_factory=lambda: list(FUSION_METHODS))
    dropout: float = 0.3
    blur_sigmas: list[float] = field(default_factory=lambda: [1.43, 5.71])
    fgsm_epsilons: list[float] = field(default_factory=lambda: [0.01])
    max_train_images: int | None = 960
    gate_epochs: int = 200
    heldout_folds: int = 5

    def validate(self, where: str) -> None:
        for i, method in enumerate(self.methods):
            _check_choice(f"{where}.methods[{i}]", method, FUSION_METHODS)
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"{where}.methods = {self.methods}: a method is listed twice")
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise ConfigError(f"{where}.dropout = {self.dropout!r}: a rate in [0, 1)")
        for i, sigma in enumerate(self.blur_sigmas):
            if not (math.isfinite(sigma) and sigma > 0):
                raise ConfigError(f"{where}.blur_sigmas[{i}] = {sigma}: a sigma must be > 0")
        _check_positive(where, self, "max_train_images", "gate_epochs")
        if self.heldout_folds == 1 or self.heldout_folds < 0:
            raise ConfigError(f"{where}.heldout_folds = {self.heldout_folds}: 0 (off) or at "
                              "least 2 folds")


@dataclass
class AdvTrainConfig:
    """FGSM adversarial retraining of the fg classifier (SPEC §3 baseline).

    ``max_train_images``: retrain on at most this many of the head's training images, drawn
    evenly across classes (each step needs a gradient through the backbone: the costly part
    of a CPU run); None uses them all. ``train_backbone``: retrain every layer, not the head.
    """

    eps: float = 0.3
    eps_space: str = "normalized"
    adv_fraction: float = 0.5
    epochs: int = 10
    lr: float = 0.01
    train_backbone: bool = False
    max_train_images: int | None = None
    classifier: str | None = None

    def validate(self, where: str) -> None:
        _check_choice(f"{where}.eps_space", self.eps_space, EPS_SPACES)
        _check_eps(f"{where}.eps", self.eps, self.eps_space)
        _check_positive(where, self, "eps", "epochs", "lr", "max_train_images")
        if not 0 < self.adv_fraction <= 1:
            raise ConfigError(f"{where}.adv_fraction = {self.adv_fraction}: must be in (0, 1]")


@dataclass
class FinetuneConfig:
    """All-layer fine-tuning of the fg stream before the heads (SPEC §1: CIFAR-10's fg)."""

    enabled: bool = False
    epochs: int = 1
    lr: float = 1e-4
    stream: str | None = None
    #: under torchrun, fine-tune data-parallel (DistributedDataParallel) across the ranks;
    #: false: rank 0 fine-tunes alone and the weights equal a single process's
    distributed: bool = True

    def validate(self, where: str) -> None:
        _check_positive(where, self, "epochs", "lr")


@dataclass
class CudaConfig:
    """Settings that replace the run-wide ones when the run's device is a GPU: a GPU holds
    more images per batch than a CPU gains from (None: the run-wide value)."""

    batch_size: int | None = 512
    gradient_batch_size: int | None = 128

    def validate(self, where: str) -> None:
        _check_positive(where, self, "batch_size", "gradient_batch_size")


#: ``precision`` and ``memory_format`` values; ``auto`` picks per device (see ExperimentConfig)
PRECISIONS = ("auto", "float32", "bfloat16")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")


@dataclass
class PcaConfig:
    """Fig. 2: PCA of fg and bg features, clean vs blurred."""

    sigma: float = 5.0
    num_classes: int = 4
    max_points_per_class: int = 60

    def validate(self, where: str) -> None:
        _check_positive(where, self, "sigma", "num_classes", "max_points_per_class")


@dataclass
class ExperimentConfig:
    """A whole experiment: streams, classifiers, datasets, perturbation sweeps, heads and
    baselines. ``streams`` maps role names to streams; ``classifiers`` maps classifier names to
    the roles they read (None: the paper's preset; see :mod:`ctxfusion.roles`).

    ``attack_subsets``: the class subsets the attack steps (fgsm, advtrain, whitebox) run on
    (None: every subset); clean and blur rows cover every subset. ``attack_repeats``: how many
    of the repeats (head seeds, from the first) the evaluation beyond the paper runs on: the
    iterative white-box and adaptive attacks, the transfer matrix, the regions and the
    corruptions (None: every repeat).

    ``batch_size``: images per batch of feature extraction and training. ``gradient_batch_size``:
    images whose backward graph an attack (FGSM, white-box, adversarial retraining) holds at
    once; it bounds a run's peak memory (measured: about 125 MB per image through
    EfficientNet-Lite0 and SqueezeNet at 224 px) and does not change which images are attacked
    or how (each image's gradient is its own). On a GPU,
    ``cuda.batch_size`` and ``cuda.gradient_batch_size`` replace them.

    ``num_workers``: processes that read and decode images while the model runs (0: in the
    main process; null: 0 on a CPU, where workers take cores from the model, up to 8 on a GPU);
    batches keep their order. ``precision``: the number format of the forward passes that need
    no gradient (feature extraction, classifying attacked images): ``auto`` is bfloat16
    autocast on a GPU and float32 on a CPU; attack gradients are always float32.
    ``memory_format``: ``auto`` is channels_last (measured faster on CPU: BENCHMARKS.md);
    ``contiguous`` gives the features of earlier versions bit for bit. Features are cached
    per precision and memory format.
    """

    experiment: str
    streams: dict[str, StreamConfig]
    datasets: list[DatasetConfig]
    classifiers: dict[str, list[str]] | None = None
    seed: int = 0
    repeats: int = 1
    device: str = "auto"
    batch_size: int = 128
    gradient_batch_size: int = 16
    num_workers: int | None = None
    precision: str = "auto"
    memory_format: str = "auto"
    cuda: CudaConfig = field(default_factory=CudaConfig)
    normalization: str = "stream"
    cache_dir: str | None = None
    steps: list[str] = field(default_factory=lambda: list(STEPS))
    attack_subsets: list[str] | None = None
    attack_repeats: int | None = None
    blur: BlurConfig = field(default_factory=BlurConfig)
    fgsm: FgsmConfig = field(default_factory=FgsmConfig)
    whitebox: WhiteboxConfig = field(default_factory=WhiteboxConfig)
    corruptions: CorruptionsConfig = field(default_factory=CorruptionsConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    advtrain: AdvTrainConfig = field(default_factory=AdvTrainConfig)
    pca: PcaConfig = field(default_factory=PcaConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    source_path: str = ""

    def validate(self, where: str) -> None:
        check_plain_name(self.experiment, f"{where}experiment", "the run directory "
                         "runs/<experiment>")
        _check_choice(f"{where}device", self.device, ("auto", "cpu", "cuda"))
        _check_choice(f"{where}normalization", self.normalization, NORMALIZATIONS)
        _check_choice(f"{where}precision", self.precision, PRECISIONS)
        _check_choice(f"{where}memory_format", self.memory_format, MEMORY_FORMATS)
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"{where}num_workers = {self.num_workers}: must be >= 0 (0 reads "
                              "images in the main process)")
        for i, step in enumerate(self.steps):
            _check_choice(f"{where}steps[{i}]", step, STEPS)
        if self.attack_repeats is not None and not 1 <= self.attack_repeats <= self.repeats:
            raise ConfigError(f"{where}attack_repeats = {self.attack_repeats}: must be from 1 to "
                              f"repeats = {self.repeats} (or null for every repeat)")
        for i, subset in enumerate(self.attack_subsets or []):
            _check_choice(f"{where}attack_subsets[{i}]", subset, SUBSETS)
        if not self.datasets:
            raise ConfigError(f"{where}datasets is empty: list at least one dataset")
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}datasets: dataset names must be unique, got {names}")
        if self.batch_size <= 0:
            raise ConfigError(f"{where}batch_size = {self.batch_size}: must be > 0")
        if self.gradient_batch_size <= 0:
            raise ConfigError(f"{where}gradient_batch_size = {self.gradient_batch_size}: must "
                              "be > 0 (images whose backward graph an attack holds at once)")
        if self.repeats < 1:
            raise ConfigError(f"{where}repeats = {self.repeats}: must be >= 1 (the number of "
                              "seeds the heads are trained with)")
        # in fgsm.eps_space, hence checked here rather than in WhiteboxConfig
        _check_epsilons(f"{where}whitebox.epsilons", self.whitebox.epsilons, self.fgsm.eps_space)
        if self.whitebox.region_epsilons is not None:
            _check_epsilons(f"{where}whitebox.region_epsilons", self.whitebox.region_epsilons,
                            self.fgsm.eps_space)
        if self.fusion.fgsm_epsilons:  # empty: no FGSM training images (no fgsmtrain)
            _check_epsilons(f"{where}fusion.fgsm_epsilons", self.fusion.fgsm_epsilons,
                            self.fgsm.eps_space)
        resolve_roles(self)

    @property
    def seeds(self) -> list[int]:
        """One seed per repeat: ``seed``, ``seed + 1``, ..."""
        return [self.seed + r for r in range(self.repeats)]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source_path")
        return data


def _check_choice(key: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{key} = {value!r}: valid values are {', '.join(valid)}")


def _check_positive(where: str, obj: object, *keys: str) -> None:
    """Each named setting of ``obj`` must be > 0 (None means "not set" and passes)."""
    for key in keys:
        value = getattr(obj, key)
        if value is not None and not value > 0:
            raise ConfigError(f"{where}.{key} = {value}: must be > 0")


def _check_epsilons(key: str, epsilons: list[float], space: str) -> None:
    """Each eps finite, >= 0 and, in pixel space, <= 1 (a normalised eps is checked in pixel
    space once the streams and their std are known, by the runner)."""
    if not epsilons:
        raise ConfigError(f"{key} is empty: give at least one eps >= 0")
    for i, eps in enumerate(epsilons):
        _check_eps(f"{key}[{i}]", eps, space)


def _check_eps(key: str, eps: float, space: str) -> None:
    """One eps: see :func:`_check_epsilons`."""
    if space == "pixel" and not (math.isfinite(eps) and 0 <= eps <= 1):
        raise ConfigError(f"{key} = {eps}: an eps must be a finite number in [0, 1] "
                          "(pixel space)")
    if not (math.isfinite(eps) and eps >= 0):
        raise ConfigError(f"{key} = {eps}: an eps must be a finite number >= 0 (in pixel "
                          "space at most 1)")


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    if cls is DatasetConfig:  # the class of the dataset's kind, with the keys it takes
        cls, data = kind_for_mapping(data, where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source_path"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}{unknown[0]}: unknown key; valid keys here: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key} is required")
            continue
        kwargs[name] = _convert(hints[name], data[name], key)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(where.rstrip(".") if where else "")
    return obj


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{key} = {value!r}: expected a list")
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:  # a mapping from names (e.g. stream roles) to values
        _, item = typing.get_args(hint)
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{key} = {value!r}: expected a non-empty mapping of names")
        return {str(name): _convert(item, v, f"{key}.{name}") for name, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} = {value!r}: expected a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: expected an integer")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: expected true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: expected a string")
        return value
    return value


_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def apply_override(data: dict, assignment: str) -> None:
    """Apply one ``dotted.key[index]=yaml-value`` override to the raw config mapping."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. blur.sigmas=[1,5]")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.load(raw, Loader=UniqueKeyLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {exc}") from None
    node: Any = data
    parts = key.strip().split(".")
    steps: list[str | int] = []
    for part in parts:
        match = _KEY_PART.fullmatch(part)
        if not match:
            raise ConfigError(f"--set {key}: {part!r} is not a valid key")
        steps.append(match.group(1))
        steps.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    for step in steps[:-1]:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise ConfigError(f"--set {key}: index [{step}] is out of range")
            node = node[step]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {step!r} is not a mapping")
            node = node.setdefault(step, {})
    last = steps[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"--set {key}: index [{last}] is out of range")
    elif not isinstance(node, dict):
        raise ConfigError(f"--set {key}: cannot set a key inside a non-mapping")
    node[last] = value


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate a YAML experiment config."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file: give a YAML experiment "
                          "config (see configs/)")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.object[exc.start]:#04x} at "
                          f"position {exc.start} is not UTF-8): give a YAML experiment "
                          "config") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}): give a readable YAML "
                          "experiment config") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        config = _build(ExperimentConfig, data, "")
        check_finite(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    config.source_path = str(path)
    return config
