"""Streams as roles, classifiers as sets of roles: the names a config uses, resolved and checked.

A config names its streams (roles: ``fg``, ``bg``, ``crop``, any name) and its classifiers as
sets of roles::

    streams:
      fg: {name: resnet18-imagenet}
      bg: {name: resnet18-places365, views: [full, context]}
      crop: {name: resnet18-imagenet, views: [object]}
    classifiers: {fg: [fg], bg: [bg], joint: [fg, bg], joint3: [fg, bg, crop]}

Without ``classifiers`` the paper's preset applies: each stream alone under its role's name,
then ``joint`` over every stream in config order (with two or more streams). Settings that
name a classifier or a stream default to the paper's choice when left out:

* ``fgsm.sources``: the first classifier; ``whitebox.targets``: the first classifier and the
  first fused one;
* ``heads.alpha_classifier`` (the fused classifier retrained once per alpha, named
  ``<classifier>-alpha<a>``): ``joint`` if there is one, else the first fused classifier;
  ``heads.penalized_stream`` (the stream whose weight slice alpha penalises): its first stream;
* ``advtrain.classifier`` (the one-stream classifier retrained adversarially, named
  ``<classifier>-advtrain``): the first one-stream classifier;
* ``fusion.classifier`` (the fused classifier whose streams the robust fusion methods read,
  named ``<classifier>-<method>``): ``heads.alpha_classifier``;
* ``finetune.stream``: the first stream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ctxfusion.errors import ConfigError

if TYPE_CHECKING:
    from ctxfusion.config import ExperimentConfig

#: roles and classifier names: no ``-`` or ``@``, which derived names use
#: (``joint-alpha10``, ``fg-advtrain``, ``bg@context``)
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: the name of the preset's fused classifier
JOINT = "joint"


def preset_classifiers(roles: Sequence[str]) -> dict[str, list[str]]:
    """The paper's classifiers: each stream alone, then ``joint`` over all (2+ streams)."""
    sets = {role: [role] for role in roles}
    if len(roles) > 1:
        sets.setdefault(JOINT, list(roles))
    return sets


def fused(sets: Mapping[str, Sequence[str]]) -> list[str]:
    """The classifiers that read two or more streams, in config order."""
    return [name for name, members in sets.items() if len(members) > 1]


def single(sets: Mapping[str, Sequence[str]]) -> list[str]:
    """The classifiers that read one stream, in config order."""
    return [name for name, members in sets.items() if len(members) == 1]


def _check_name(key: str, name: str, what: str) -> None:
    if not NAME.fullmatch(name):
        raise ConfigError(f"{key} = {name!r}: a {what} name starts with a letter and has "
                          "letters, digits and '_' only ('-' and '@' are kept for derived "
                          "names such as joint-alpha10 and bg@context)")


def _check_sets(sets: Mapping[str, Sequence[str]], streams: Mapping) -> None:
    for name, members in sets.items():
        key = f"classifiers.{name}"
        _check_name("classifiers", name, "classifier")
        if not members:
            raise ConfigError(f"{key} is empty: list the streams it reads")
        for i, role in enumerate(members):
            if role not in streams:
                raise ConfigError(f"{key}[{i}] = {role!r}: not a stream; streams: "
                                  f"{', '.join(streams)}")
        if len(set(members)) != len(members):
            raise ConfigError(f"{key} = {list(members)}: a stream is listed twice")
        extra = [view for role in members for view in streams[role].views[1:]]
        twice = sorted({view for view in extra if extra.count(view) > 1})
        if twice:
            raise ConfigError(f"{key}: two of its streams add the view {twice[0]}, so "
                              f"{name}@{twice[0]} would be ambiguous; list it on one stream")


def _check_members(key: str, names: Sequence[str], valid: Sequence[str], what: str) -> None:
    for i, name in enumerate(names):
        if name not in valid:
            raise ConfigError(f"{key}[{i}] = {name!r}: not a {what}; valid: {', '.join(valid)}")


def resolve(config: ExperimentConfig) -> None:
    """Fill the defaults above into ``config`` and check every name it uses."""
    for role in config.streams:
        _check_name("streams", role, "stream")
    if config.classifiers is None:
        config.classifiers = preset_classifiers(list(config.streams))
    sets = config.classifiers
    _check_sets(sets, config.streams)
    names, fused_names, single_names = list(sets), fused(sets), single(sets)
    fgsm, whitebox, heads = config.fgsm, config.whitebox, config.heads
    if fgsm.sources is None:
        fgsm.sources = names[:1]
    if whitebox.targets is None:
        whitebox.targets = names[:1] + [n for n in fused_names[:1] if n != names[0]]
    _check_members("fgsm.sources", fgsm.sources, names, "classifier")
    _check_members("whitebox.targets", whitebox.targets, names, "classifier")
    if heads.alpha_classifier is None and fused_names:
        heads.alpha_classifier = JOINT if JOINT in fused_names else fused_names[0]
    if heads.alpha_classifier is not None:
        _check_members("heads.alpha_classifier", [heads.alpha_classifier], fused_names,
                       "classifier of two or more streams")
        members = sets[heads.alpha_classifier]
        heads.penalized_stream = heads.penalized_stream or members[0]
        _check_members("heads.penalized_stream", [heads.penalized_stream], members,
                       f"stream of {heads.alpha_classifier}")
    if config.advtrain.classifier is None and single_names:
        config.advtrain.classifier = single_names[0]
    if config.advtrain.classifier is not None:
        _check_members("advtrain.classifier", [config.advtrain.classifier], single_names,
                       "one-stream classifier")
    fusion = config.fusion
    fusion.classifier = fusion.classifier or heads.alpha_classifier
    if fusion.classifier is not None:
        _check_members("fusion.classifier", [fusion.classifier], fused_names,
                       "classifier of two or more streams")
    config.finetune.stream = config.finetune.stream or next(iter(config.streams))
    _check_members("finetune.stream", [config.finetune.stream], list(config.streams), "stream")


def advtrain_name(config: ExperimentConfig) -> str | None:
    """The result name of the adversarially retrained classifier (``fg-advtrain``)."""
    classifier = config.advtrain.classifier
    return None if classifier is None else f"{classifier}-advtrain"


def alpha_name(config: ExperimentConfig, alpha: float) -> str:
    """The result name of the alpha-regularised fused head (``joint-alpha10``)."""
    return f"{config.heads.alpha_classifier}-alpha{alpha:g}"


#: the robust fusion methods beyond the paper (:mod:`ctxfusion.fusion`), in report order;
#: each is a classifier named ``<fused classifier>-<method>`` (``joint-gate``)
FUSION_METHODS = ("dropout", "blurtrain", "fgsmtrain", "poe", "confidence", "gate")
#: the suffix of a classifier cross-fitted on held-out test images (``joint-heldout``)
HELDOUT = "-heldout"


def fusion_name(base: str, method: str) -> str:
    """The result name of robust fusion ``method`` over fused classifier ``base``."""
    return f"{base}-{method}"


def fusion_parts(name: str) -> tuple[str, str] | None:
    """(base, method) of a robust fusion classifier's name (``joint-gate`` -> ('joint',
    'gate')), else None; a held-out name is parsed without its suffix."""
    stem = heldout_base(name) or name
    base, _, method = stem.rpartition("-")
    return (base, method) if base and method in FUSION_METHODS else None


def heldout_name(name: str) -> str:
    """The result name of classifier ``name`` cross-fitted on held-out images."""
    return f"{name}{HELDOUT}"


def heldout_base(name: str) -> str | None:
    """The classifier a held-out name was cross-fitted from (``joint-heldout`` -> joint)."""
    return name[: -len(HELDOUT)] if name.endswith(HELDOUT) else None
