"""Streams as roles and classifiers as sets of streams: presets, names, specs, comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ctxfusion.config import load_config
from ctxfusion.errors import ConfigError
from ctxfusion.experiments.differences import compared_pairs
from ctxfusion.experiments.heads import ClassifierSpec, classifier_specs

REPO = Path(__file__).resolve().parents[1]
OBJECT, SCENE = "scenes-object-resnet18", "scenes-scene-resnet18"
PAPER = {
    "experiment": "t",
    "streams": {"fg": {"name": OBJECT}, "bg": {"name": SCENE, "views": ["full", "context"]}},
    "datasets": [{"name": "d", "kind": "scenes", "context_strength": 0.5}],
    "heads": {"alphas": [0.1, 10]},
}
THREE = {
    **PAPER,
    "streams": {**PAPER["streams"], "crop": {"name": OBJECT, "views": ["object"]}},
    "classifiers": {"fg": ["fg"], "bg": ["bg"], "crop": ["crop"], "joint": ["fg", "bg"],
                    "joint3": ["fg", "bg", "crop"]},
}


def _load(tmp_path: Path, data: dict):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


def test_the_paper_preset_is_each_stream_alone_then_joint(tmp_path: Path) -> None:
    config = _load(tmp_path, PAPER)
    assert config.classifiers == {"fg": ["fg"], "bg": ["bg"], "joint": ["fg", "bg"]}
    assert config.fgsm.sources == ["fg"] and config.whitebox.targets == ["fg", "joint"]
    assert (config.heads.alpha_classifier, config.heads.penalized_stream) == ("joint", "fg")
    assert config.advtrain.classifier == "fg" and config.finetune.stream == "fg"
    specs = classifier_specs(config)
    assert specs == [
        ClassifierSpec("fg", ("fg@full",)),
        ClassifierSpec("bg", ("bg@full",)),
        ClassifierSpec("bg@context", ("bg@context",)),
        ClassifierSpec("joint", ("fg@full", "bg@full")),
        ClassifierSpec("joint@context", ("fg@full", "bg@context")),
        ClassifierSpec("joint-alpha0.1", ("fg@full", "bg@full"), 0.1, 0),
        ClassifierSpec("joint-alpha10", ("fg@full", "bg@full"), 10.0, 0),
    ]


def test_the_preset_written_out_gives_the_same_classifiers(tmp_path: Path) -> None:
    explicit = _load(tmp_path, {
        **PAPER, "classifiers": {"fg": ["fg"], "bg": ["bg"], "joint": ["fg", "bg"]},
        "heads": {"alphas": [0.1, 10], "alpha_classifier": "joint", "penalized_stream": "fg"},
        "fgsm": {"sources": ["fg"]}, "whitebox": {"targets": ["fg", "joint"]},
    })
    assert classifier_specs(explicit) == classifier_specs(_load(tmp_path, PAPER))


def test_three_streams_give_a_three_way_joint_with_its_views(tmp_path: Path) -> None:
    specs = {s.name: s for s in classifier_specs(_load(tmp_path, THREE))}
    assert specs["crop"].inputs == ("crop@object",)
    assert specs["joint3"].inputs == ("fg@full", "bg@full", "crop@object")
    assert specs["joint3@context"].inputs == ("fg@full", "bg@context", "crop@object")
    assert "joint3@object" not in specs  # the crop's only view is its default
    assert specs["joint-alpha10"].inputs == ("fg@full", "bg@full")


def test_alpha_penalises_the_named_stream(tmp_path: Path) -> None:
    config = _load(tmp_path, {**THREE, "heads": {"alphas": [1], "alpha_classifier": "joint3",
                                                 "penalized_stream": "bg"}})
    (spec,) = [s for s in classifier_specs(config) if s.alpha]
    assert spec.name == "joint3-alpha1" and spec.inputs[spec.penalized] == "bg@full"


def test_comparisons_follow_the_classifier_sets(tmp_path: Path) -> None:
    sets = _load(tmp_path, THREE).classifiers
    names = {"fg", "bg", "crop", "joint", "joint3", "joint-alpha1", "fg-advtrain"}
    pairs = compared_pairs(names, sets)
    assert {(n, "fg") for n in names - {"fg"}} <= set(pairs)
    assert {("joint", "bg"), ("joint3", "bg"), ("joint3", "crop"), ("joint3", "joint")} <= set(
        pairs)
    assert {("joint-alpha1", "bg"), ("joint-alpha1", "joint"),
            ("joint-alpha1", "fg-advtrain")} <= set(pairs)
    assert ("joint", "crop") not in pairs  # joint does not read the crop stream
    paper = {"fg": ["fg"], "bg": ["bg"], "joint": ["fg", "bg"]}
    assert compared_pairs({"fg", "bg", "joint", "joint-alpha1", "fg-advtrain"}, paper) == [
        ("bg", "fg"), ("fg-advtrain", "fg"), ("joint", "fg"), ("joint-alpha1", "fg"),
        ("joint-alpha1", "bg"), ("joint-alpha1", "joint"), ("joint-alpha1", "fg-advtrain"),
        ("joint", "bg"),
    ]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"classifiers": {"fg": ["fg"], "both": ["fg", "depth"]}},
         "classifiers.both[1] = 'depth': not a stream; streams: fg, bg"),
        ({"classifiers": {"fg-x": ["fg"]}}, "classifiers = 'fg-x': a classifier name"),
        ({"classifiers": {"j": ["fg", "fg"]}}, "a stream is listed twice"),
        ({"classifiers": {"j": []}}, "classifiers.j is empty"),
        ({"streams": {"fg": {"name": OBJECT, "views": ["full", "context"]},
                      "bg": {"name": SCENE, "views": ["full", "context"]}}},
         "two of its streams add the view context"),
        ({"heads": {"alpha_classifier": "fg"}},
         "heads.alpha_classifier[0] = 'fg': not a classifier of two or more streams"),
        ({"heads": {"penalized_stream": "crop"}},
         "heads.penalized_stream[0] = 'crop': not a stream of joint"),
        ({"fgsm": {"sources": ["joint3"]}}, "fgsm.sources[0] = 'joint3': not a classifier"),
        ({"advtrain": {"classifier": "joint"}}, "not a one-stream classifier"),
        ({"streams": {"fg@x": {"name": OBJECT}}}, "streams = 'fg@x': a stream name"),
        ({"streams": {"fg": {"name": OBJECT, "std": [0.2, 0, 0.2]}}},
         "streams.fg.std = [0.2, 0.0, 0.2]: every std must be > 0"),
        ({"streams": {"fg": {"name": OBJECT, "mean": [0.5]}}}, "give 3 numbers"),
    ],
)
def test_bad_names_are_named(tmp_path: Path, patch: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        _load(tmp_path, {**PAPER, **patch})
    assert message in str(info.value)


def test_the_full_demo_config_has_three_streams_and_a_three_way_joint() -> None:
    config = load_config(REPO / "configs" / "demo-full.yaml")
    assert list(config.streams) == ["fg", "bg", "crop"]
    assert config.classifiers["joint3"] == ["fg", "bg", "crop"]


def test_preprocessing_is_the_streams_own_data(tmp_path: Path) -> None:
    """``normalization`` and per-stream overrides reach each stream as its preprocessing (no
    buffer is rewritten afterwards); a library stream with random weights joins the run."""
    import torch

    from ctxfusion.config import NORMALIZATION_STATS
    from ctxfusion.experiments.context import RunContext

    config = _load(tmp_path, {**PAPER, "normalization": "cifar10", "streams": {
        "fg": {"name": OBJECT, "input_size": 48},
        "bg": {"name": SCENE, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        "lite": {"name": "efficientnet-lite0-imagenet"},
        "tv": {"name": "torchvision:resnet18", "weights": "random"},
    }})
    ctx = RunContext.create(config, tmp_path / "run")
    mean, std = NORMALIZATION_STATS["cifar10"]
    fg, bg, lite, tv = (ctx.streams[role] for role in ("fg", "bg", "lite", "tv"))
    assert (fg.preprocessing.mean, fg.preprocessing.std, fg.input_size) == (mean, std, 48)
    assert bg.preprocessing.std == (0.25, 0.25, 0.25)  # its own setting wins
    assert lite.preprocessing.mean is None  # not a mean/std stream: left as it is, with a note
    assert any("ignored for stream lite" in note for note in ctx.recorder.notes)
    assert tv.preprocessing.mean == mean and tv.feature_dim == 512
    torch.testing.assert_close(ctx.normalization_std(), torch.tensor(std))
    assert config.classifiers["joint"] == ["fg", "bg", "lite", "tv"]  # the preset: all streams
