"""Registries: attacks, views and dataset kinds are declared once, by the module that
implements them; registering a new one makes it valid in a config without touching config.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from ctxfusion.cli import main
from ctxfusion.config import load_config
from ctxfusion.data.kinds import (
    DATASET_KINDS,
    DatasetConfig,
    option,
    prepare_dataset,
    register_dataset_kind,
    unregister_dataset_kind,
)
from ctxfusion.data.manifest import Manifest, save_manifest
from ctxfusion.errors import ConfigError
from ctxfusion.experiments import splits
from ctxfusion.perturb.attacks import (
    ATTACKS,
    ITERATIVE_ATTACKS,
    Attack,
    Setting,
    attack_class,
    make_attack,
    register_attack,
    unregister_attack,
)
from ctxfusion.perturb.views import VIEWS, make_view, register_view, unregister_view

BASE = {
    "experiment": "t",
    "streams": {"fg": {"name": "scenes-object-resnet18"}, "bg": {"name": "scenes-scene-resnet18"}},
    "datasets": [{"name": "d", "kind": "scenes", "context_strength": 0.5}],
}


def _load(tmp_path: Path, **patch) -> object:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**BASE, **patch}))
    return load_config(path)


@pytest.fixture
def toy_attack():
    @register_attack("toy")
    class Toy(Attack):
        """Adds ``shift`` to every pixel."""

        iterative = True
        settings = {"shift": Setting(float, default=0.1, minimum=0, exclusive=True)}

        @classmethod
        def settings_from(cls, whitebox, num_classes):
            return {"shift": 0.5}

        @classmethod
        def build(cls, model, eps, **settings):
            return lambda images, labels: images + settings["shift"]

    yield Toy
    unregister_attack("toy")


def test_registered_attack_is_valid_in_a_config(tmp_path, toy_attack):
    assert "toy" in ATTACKS and "toy" in ITERATIVE_ATTACKS
    config = _load(tmp_path, whitebox={"attacks": ["toy", "pgd"]})
    assert config.whitebox.attacks == ["toy", "pgd"]
    assert attack_class("toy").settings_from(config.whitebox, 3) == {"shift": 0.5}
    attack = make_attack("toy", nn.Identity(), 0.1, shift=0.25)
    assert torch.equal(attack(torch.zeros(1), None), torch.full((1,), 0.25))


def test_unregistered_attack_is_rejected_listing_the_registered(tmp_path, toy_attack):
    unregister_attack("toy")
    with pytest.raises(ConfigError, match=r"whitebox.attacks\[0\] = 'toy': valid values are "
                       r"bim, pgd, apgd, eotpgd, autoattack"):
        _load(tmp_path, whitebox={"attacks": ["toy"]})
    with pytest.raises(ConfigError, match="valid attacks: fgsm, bim, pgd, apgd, eotpgd, "
                       "autoattack"):
        make_attack("toy", nn.Identity(), 0.1)


def test_fgsm_is_not_a_whitebox_attack(tmp_path):
    assert "fgsm" in ATTACKS and "fgsm" not in ITERATIVE_ATTACKS
    with pytest.raises(ConfigError, match=r"whitebox.attacks\[0\] = 'fgsm'"):
        _load(tmp_path, whitebox={"attacks": ["fgsm"]})


@pytest.mark.parametrize(("name", "settings", "message"), [
    ("pgd", {"steps": 0}, "attack 'pgd': setting 'steps' = 0: must be >= 1"),
    ("pgd", {"restarts": 0}, "attack 'pgd': setting 'restarts' = 0: must be >= 1"),
    ("pgd", {"alpha": 0}, "attack 'pgd': setting 'alpha' = 0: must be > 0"),
    ("pgd", {"random_start": 1}, "setting 'random_start' = 1: has the wrong type: expected bool"),
    ("bim", {"steps": 2.5}, "'bim': setting 'steps' = 2.5: has the wrong type: expected int"),
    ("bim", {"restarts": 2}, "attack 'bim': unknown setting 'restarts'; valid settings: steps, "
     "alpha"),
    ("fgsm", {"steps": 2}, "attack 'fgsm': unknown setting 'steps'; valid settings: none"),
    ("autoattack", {}, "attack 'autoattack' needs the setting 'num_classes'"),
    ("autoattack", {"num_classes": 1}, "setting 'num_classes' = 1: must be >= 2"),
    ("autoattack", {"num_classes": 3, "version": "x"},
     "setting 'version' = 'x': valid values are standard, plus, rand"),
])
def test_each_attack_validates_its_own_settings(name, settings, message):
    with pytest.raises(ConfigError) as info:
        make_attack(name, nn.Identity(), 0.1, **settings)
    assert message in str(info.value)


def test_attacks_declare_the_config_settings_they_take(tmp_path):
    whitebox = _load(tmp_path, whitebox={"steps": 7, "restarts": 2}).whitebox
    taken = {name: attack_class(name).settings_from(whitebox, 5) for name in ATTACKS}
    assert taken == {"fgsm": {}, "bim": {"steps": 7}, "pgd": {"steps": 7, "restarts": 2},
                     "apgd": {"steps": 7, "restarts": 2}, "eotpgd": {"steps": 7},
                     "autoattack": {"num_classes": 5}}


def test_registered_view_is_valid_in_a_config(tmp_path):
    @register_view("dark")
    def dark(images, boxes):
        return images * 0

    try:
        assert "dark" in VIEWS and make_view("dark") is dark
        config = _load(tmp_path, streams={"fg": {"name": "scenes-object-resnet18",
                                                 "views": ["full", "dark"]},
                                          "bg": {"name": "scenes-scene-resnet18"}})
        assert config.streams["fg"].views == ["full", "dark"]
    finally:
        unregister_view("dark")
    with pytest.raises(ConfigError, match="valid views: full, context, object"):
        make_view("dark")


def test_view_needing_boxes_says_so():
    @register_view("boxed", needs_boxes=True)
    def boxed(images, boxes):
        return images

    try:
        with pytest.raises(ConfigError, match="view 'boxed' needs the batch's boxes"):
            make_view("boxed")(torch.zeros(1, 3, 4, 4), None)
    finally:
        unregister_view("boxed")


@pytest.fixture
def toy_kind():
    calls = []

    @register_dataset_kind("toy")
    @dataclass(kw_only=True)
    class ToyConfig(DatasetConfig):
        """A toy kind: one class named ``label``."""

        prepare_options = ("label", "name")
        summary = "a toy kind"
        label: str = option("cat", "the one class")

        def prepare(self, out, *, bad_images="skip", progress=True):
            calls.append((self.label, out))
            images = [{"id": i, "file_name": f"{i}.png", "label": self.label, "boxes": [],
                       "width": 1, "height": 1, "split": split, "subsets": ["all"]}
                      for i, split in enumerate(("train", "test"))]
            manifest = Manifest(dataset=self.name, images_dir=str(out), classes=[self.label],
                                images=images, subsets={"all": [self.label]}, has_boxes=False)
            save_manifest(manifest, out)
            return manifest

    yield calls
    unregister_dataset_kind("toy")


def test_registered_kind_is_valid_and_prepared_by_run_and_cli(tmp_path, monkeypatch, toy_kind,
                                                              capsys):
    monkeypatch.setenv("CTXFUSION_HOME", str(tmp_path / "home"))
    assert "toy" in DATASET_KINDS
    config = _load(tmp_path, datasets=[{"name": "t", "kind": "toy", "label": "dog"}])
    dataset = config.datasets[0]
    assert type(dataset).__name__ == "ToyConfig" and dataset.label == "dog"
    assert splits.prepare_dataset is prepare_dataset
    manifest = splits.prepare_dataset(dataset)
    assert manifest.classes == ["dog"] and len(toy_kind) == 1
    assert splits.prepare_dataset(dataset).classes == ["dog"] and len(toy_kind) == 1  # cached
    assert main(["prepare", "toy", "--label", "owl", "--out", str(tmp_path / "cli")]) == 0
    assert toy_kind[-1] == ("owl", tmp_path / "cli")
    assert (tmp_path / "cli" / "manifest.json").is_file() and "owl" in capsys.readouterr().out


def test_unknown_kind_lists_the_registered_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"datasets\[0\].kind = 'toy': valid values are "
                       "scenes, coco, cifar10, imagefolder, manifest"):
        _load(tmp_path, datasets=[{"name": "t", "kind": "toy"}])


@pytest.mark.parametrize(("dataset", "key", "valid"), [
    ({"kind": "coco", "annotations": "a.json", "images": "i", "context_strength": 0.5},
     "context_strength", "annotations, archive, classes, crowd"),
    ({"kind": "scenes", "context_strength": 0.5, "root": "r"}, "root", "context_strength"),
    ({"kind": "cifar10", "root": "r", "manifest": "m.json"}, "manifest", "archive, download"),
])
def test_key_of_another_kind_is_rejected_with_the_valid_keys(tmp_path, dataset, key, valid):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, datasets=[{"name": "d", **dataset}])
    text = str(info.value)
    assert f"datasets[0].{key}: unknown key for a dataset of kind {dataset['kind']}" in text
    assert valid in text


def test_resolved_configs_of_older_versions_still_load(tmp_path):
    """Older resolved configs list every kind's keys at their defaults: those are ignored."""
    legacy = {"name": "c", "kind": "cifar10", "root": "r", "context_strength": None,
              "annotations": None, "num_classes": 24, "instance_rule": "image", "manifest": None}
    dataset = _load(tmp_path, datasets=[legacy]).datasets[0]
    assert type(dataset).__name__ == "Cifar10Config" and not hasattr(dataset, "num_classes")
