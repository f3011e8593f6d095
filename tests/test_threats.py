"""Threat regions, masked attacks, attack strength and the evaluation beyond the paper."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import run_demo_variant
from ctxfusion.config import load_config
from ctxfusion.errors import ConfigError
from ctxfusion.experiments import run_experiment
from ctxfusion.perturb.attacks import fgsm_sweep, make_attack
from ctxfusion.perturb.corruptions import CORRUPTIONS
from ctxfusion.perturb.regions import attack_in_region, region_mask

REPO = Path(__file__).resolve().parents[1]
EPS = 0.03


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(128, 5)).eval()


def _batch(model: nn.Module, n: int = 12, size: int = 32):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(n, 3, size, size, generator=generator)
    with torch.no_grad():
        labels = model(images).argmax(1)  # every image classified right when clean
    boxes = [torch.tensor([[4.0, 6.0, 20.0 + i % 5, 24.0]]) for i in range(n)]
    return images, labels, boxes


def test_region_masks_split_the_image() -> None:
    boxes = [torch.tensor([[0.0, 0.0, 4.0, 2.0]]), torch.zeros(0, 4)]
    box = region_mask("box", boxes, 4, 6)
    background = region_mask("background", boxes, 4, 6)
    image = region_mask("image", boxes, 4, 6)
    assert box.shape == (2, 1, 4, 6) and image.all()
    assert torch.equal(box, ~background)
    assert int(box[0].sum()) == 8 and not box[1].any()  # no boxes: an empty box region
    with pytest.raises(ConfigError, match="valid regions: image, box, background"):
        region_mask("object", boxes, 4, 6)


@pytest.mark.parametrize("attack", ["fgsm", "bim", "pgd", "apgd", "eotpgd"])
@pytest.mark.parametrize("region", ["box", "background"])
def test_masked_attack_changes_only_its_region(attack: str, region: str) -> None:
    model = _model()
    images, labels, boxes = _batch(model)
    mask = region_mask(region, boxes, 32, 32)
    torch.manual_seed(0)
    adversarial = attack_in_region(lambda m: make_attack(attack, m, EPS), model, images,
                                   labels, mask, boxes)
    outside = ~mask.expand_as(images)
    assert torch.equal(adversarial[outside], images[outside])  # exactly unchanged
    assert (adversarial - images).abs().max() <= EPS + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    if attack != "apgd":  # APGD returns an image it did not fool unchanged
        assert (adversarial != images)[mask.expand_as(images)].any()  # the attack did act


def test_masked_fgsm_sweep_changes_only_its_region() -> None:
    model = _model()
    images, labels, boxes = _batch(model)
    mask = region_mask("box", boxes, 32, 32)
    for eps, adversarial in zip((0.01, 0.1), fgsm_sweep(model, images, labels, [0.01, 0.1],
                                                        mask=mask), strict=True):
        outside = ~mask.expand_as(images)
        assert torch.equal(adversarial[outside], images[outside])
        assert (adversarial - images).abs().max() <= eps + 1e-6


def test_region_attack_keeps_misclassified_images_and_binds_the_batch() -> None:
    model = _model()
    images, labels, boxes = _batch(model)
    labels[:3] = (labels[:3] + 1) % 5  # wrong on clean: left as they are
    mask = region_mask("image", boxes, 32, 32)
    torch.manual_seed(0)
    adversarial = attack_in_region(lambda m: make_attack("pgd", m, EPS), model, images,
                                   labels, mask, boxes)
    assert not adversarial.requires_grad
    assert torch.equal(adversarial[:3], images[:3])
    assert not torch.equal(adversarial[3:], images[3:])


def test_pgd_is_at_least_as_strong_as_fgsm() -> None:
    model = _model(3)
    images, labels, _ = _batch(model, n=64)
    for eps in (0.01, 0.03):
        fgsm = fgsm_sweep(model, images, labels, [eps])[0]
        torch.manual_seed(0)
        pgd = make_attack("pgd", model, eps, steps=20, restarts=2)(images, labels)
        with torch.no_grad():
            loss = nn.functional.cross_entropy
            assert loss(model(pgd), labels) >= loss(model(fgsm), labels)
            assert (model(pgd).argmax(1) == labels).sum() <= (model(fgsm).argmax(1)
                                                              == labels).sum()


SMALL = [
    "datasets=[{name: scenes-cs0.8, kind: scenes, context_strength: 0.8, num_train: 240, "
    "num_test: 96, seed: 5}]",
    "steps=[fgsm, whitebox, corruptions]", "attack_subsets=[all]",
    "fgsm.epsilons=[0, 0.005, 0.01, 0.02]", "fgsm.regions=[image, box, background]",
    "whitebox.epsilons=[0.01]", "whitebox.steps=5", "whitebox.max_images=16",
    "whitebox.attacks=[pgd, apgd]", "whitebox.regions=[image, box, background]",
    "whitebox.adaptive=[joint-alpha10, joint@context]",
    "corruptions.max_images=16", "corruptions.severities=[1, 5]",
    "heads.epochs=30", "heads.alphas=[10]", "batch_size=64", "repeats=2", "attack_repeats=1",
]


@pytest.fixture(scope="module")
def threat_run(tmp_path_factory) -> tuple[Path, list[dict]]:
    return run_demo_variant(tmp_path_factory, SMALL, "threats")


def test_transfer_matrix_has_every_pair_and_whitebox_diagonal(threat_run) -> None:
    """At the matrix eps (the middle non-zero FGSM eps, 0.01 here) every classifier's images
    are classified by every classifier."""
    _, rows = threat_run
    cells = {(r["source"], r["classifier"]): r for r in rows if r["perturbation"] == "fgsm"
             and r["region"] == "image" and r["level"] == "0.01" and r["seed"] == "0"}
    classifiers = {r["classifier"] for r in rows if r["perturbation"] == "none"}
    assert {(s, c) for s in classifiers for c in classifiers} <= set(cells)
    for (source, classifier), row in cells.items():
        assert row["threat"] == ("whitebox" if source == classifier else "transfer")
    # a diagonal cell IS the white-box row: crafted and classified by the same classifier
    diagonal = {c: cells[(c, c)] for c in classifiers}
    whitebox = {r["classifier"]: r for r in rows if r["perturbation"] == "fgsm"
                and r["threat"] == "whitebox" and r["level"] == "0.01" and r["seed"] == "0"
                and r["region"] == "image"}
    assert diagonal == whitebox
    # images crafted on the sample: the off-diagonal cells of a sample source share its n
    assert cells[("bg", "fg")]["n"] == cells[("bg", "bg")]["n"] == "16"


def test_regions_adaptive_unbounded_and_corruptions_rows(threat_run) -> None:
    out, rows = threat_run
    seen = Counter((r["perturbation"], r["region"], r["threat"], r["classifier"])
                   for r in rows if r["seed"] == "0")
    for region in ("box", "background"):
        for target in ("fg", "joint"):
            assert seen[("pgd", region, "whitebox", target)] == 1
            assert seen[("apgd", region, "whitebox", target)] == 1
        assert seen[("fgsm", region, "whitebox", "joint-alpha10")] == 4  # every eps
    assert seen[("pgd", "image", "adaptive", "joint-alpha10")] == 1
    assert seen[("pgd", "background", "adaptive", "joint@context")] == 1
    for name in CORRUPTIONS:
        for region in ("image", "box", "background"):
            assert seen[(name, region, "none", "joint")] == 2  # severities 1 and 5
    # beyond the paper on the first repeat only
    assert not any(r["seed"] == "1" and (r["region"] != "image" or r["threat"] == "adaptive")
                   for r in rows)
    unbounded = [r for r in rows if r["perturbation"] == "pgd" and r["level"] == "1"]
    assert {r["classifier"] for r in unbounded} == {"fg", "joint"}
    assert all(float(r["accuracy"]) <= 0.1 for r in unbounded)  # an unbounded attack wins
    keys = [tuple(v for k, v in r.items() if k not in ("accuracy", "ci_low", "ci_high", "n"))
            for r in rows]
    assert len(keys) == len(set(keys))


def test_unknown_adaptive_target_is_a_clear_error(tmp_path) -> None:
    overrides = [o for o in SMALL if not o.startswith("whitebox.adaptive")]
    config = load_config(REPO / "configs" / "demo-full.yaml",
                         [*overrides, "whitebox.adaptive=[joint-alpha99]", "steps=[whitebox]"])
    with pytest.raises(ConfigError, match="whitebox.adaptive\\[0\\] = 'joint-alpha99'"):
        run_experiment(config, tmp_path / "run")
