"""Robust fusion beyond the paper: the methods' mechanics and the fusion step of a run."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from conftest import run_demo_variant
from ctxfusion.config import load_config
from ctxfusion.errors import ConfigError
from ctxfusion.experiments.differences import compared_pairs
from ctxfusion.fusion import ExpertFusion, GatedFusion, TrainingSet, drop_streams, fit_methods
from ctxfusion.fusion.methods import Optimisation
from ctxfusion.models import FusionClassifier, LinearHead
from ctxfusion.roles import FUSION_METHODS, fusion_parts, heldout_base

REPO = Path(__file__).resolve().parents[1]
OPT = Optimisation(epochs=150, lr=0.05, batch_size=None, gate_epochs=150, seed=0)


def _streams(n: int = 600, classes: int = 4, seed: int = 0, strong_noise: bool = False):
    """Two streams: a strong one (the object: the label, scaled by 3) and a weak one (the
    context: the label, scaled by 1), each with noise; ``strong_noise`` replaces the strong
    stream by noise (a degraded object)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    onehot = torch.nn.functional.one_hot(labels, classes).float()
    strong = 3 * onehot + 0.5 * torch.randn(n, classes, generator=generator)
    if strong_noise:
        strong = 3 * torch.randn(n, classes, generator=generator).abs()
    weak = 1 * onehot + 0.5 * torch.randn(n, classes, generator=generator)
    return [strong, weak], labels


def _accuracy(head: torch.nn.Module, features: list[torch.Tensor], labels) -> float:
    with torch.no_grad():
        return float((head(torch.cat(features, 1)).argmax(1) == labels).float().mean())


def test_stream_dropout_replaces_features_by_the_mean_at_the_set_rate() -> None:
    features = [torch.randn(20000, 3) + 5, torch.randn(20000, 2) - 5]
    means = [f.mean(0) for f in features]
    out = drop_streams(features, means, 0.3, torch.Generator().manual_seed(0))
    for original, dropped, mean in zip(features, out, means, strict=True):
        replaced = (dropped == mean).all(1)
        assert 0.29 < float(replaced.float().mean()) < 0.31  # the rate is p
        kept = ~replaced
        assert torch.equal(dropped[kept], original[kept])  # the others are untouched
    both = ((out[0] == means[0]).all(1) & (out[1] == means[1]).all(1)).float().mean()
    assert 0.07 < float(both) < 0.11  # independent per stream: p^2 = 0.09
    none = drop_streams(features, means, 0.0, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(none, features, strict=True))


@pytest.mark.parametrize("kind", ["equal", "confidence", "gate"])
def test_expert_weights_sum_to_one_per_image(kind: str) -> None:
    torch.manual_seed(0)
    experts = [LinearHead([5], 4), LinearHead([3], 4)]
    model = GatedFusion(experts) if kind == "gate" else ExpertFusion(experts, kind)
    x = torch.randn(64, 8) * 10
    weights = model.weights(model.expert_log_probs(x))
    assert weights.shape == (64, 2)
    assert torch.allclose(weights.sum(1), torch.ones(64), atol=1e-6)
    assert (weights >= 0).all()
    # the output is the weighted sum of the experts' log-probabilities
    expected = (weights.unsqueeze(-1) * model.expert_log_probs(x)).sum(1)
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_confidence_weighting_gives_way_to_the_sure_expert() -> None:
    sure, unsure = LinearHead([2], 3), LinearHead([2], 3)
    with torch.no_grad():
        sure.weight.copy_(torch.tensor([[20.0, 0], [0, 20], [0, 0]]))
        unsure.weight.zero_()  # uniform probabilities whatever the input
        sure.bias.zero_()
        unsure.bias.zero_()
    model = ExpertFusion([sure, unsure], "confidence")
    with torch.no_grad():
        weights = model.weights(model.expert_log_probs(torch.tensor([[1.0, 0, 5, 5]])))
    assert float(weights[0, 0]) > 0.99


def test_perturbation_aware_training_sees_the_perturbed_features() -> None:
    """A head trained with the degraded-object features beside the clean ones classifies
    degraded images from the context; the paper's head, trained on clean ones, does not."""
    clean, labels = _streams()
    degraded, _ = _streams(seed=1, strong_noise=True)
    data = TrainingSet(clean, labels, blurred=[(degraded, labels)])
    joint = data.with_perturbed(data.blurred)
    assert [f.shape[0] for f in joint[0]] == [1200, 1200] and len(joint[1]) == 1200
    assert torch.equal(joint[0][0][600:], degraded[0])  # the perturbed rows follow the clean
    heads = fit_methods(["blurtrain", "gate", "fgsmtrain"], data, 4, OPT, 0.3)
    assert "fgsmtrain" not in heads  # no FGSM features given: the method is left out
    plain = fit_methods(["dropout"], TrainingSet(clean, labels), 4, OPT, 0.0)["dropout"]
    test, test_labels = _streams(seed=2, strong_noise=True)
    assert _accuracy(heads["blurtrain"], test, test_labels) > \
        _accuracy(plain, test, test_labels) + 0.2
    assert _accuracy(heads["gate"], test, test_labels) > \
        _accuracy(plain, test, test_labels) + 0.2
    gate = heads["gate"]
    with torch.no_grad():  # the gate looks away from the degraded object stream
        on_degraded = gate.weights(gate.expert_log_probs(torch.cat(test, 1)))[:, 1].mean()
        on_clean = gate.weights(gate.expert_log_probs(torch.cat(clean, 1)))[:, 1].mean()
    assert float(on_degraded) > float(on_clean)


def test_gate_heads_wrap_into_a_differentiable_classifier() -> None:
    """Fusion heads read concatenated features like a LinearHead, so every attack applies."""
    clean, labels = _streams(n=80)
    heads = fit_methods(list(FUSION_METHODS), TrainingSet(clean, labels, [(clean, labels)],
                                                          [(clean, labels)]), 4, OPT, 0.3)
    assert set(heads) == set(FUSION_METHODS)
    streams = [torch.nn.Identity(), torch.nn.Identity()]
    for head in heads.values():
        model = FusionClassifier(streams, head)
        x = torch.cat(clean, 1)[:8].clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(head(x), labels[:8]).backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert model.head.out_features == 4


def test_fusion_config_errors() -> None:
    demo = REPO / "configs" / "demo.yaml"
    for override, message in [
        ("fusion.methods=[dropout, stack]", r"fusion.methods\[1\] = 'stack': valid values"),
        ("fusion.dropout=1", r"fusion.dropout = 1(.0)?: a rate in \[0, 1\)"),
        ("fusion.heldout_folds=1", "0 \\(off\\) or at least 2 folds"),
        ("fusion.blur_sigmas=[1, -1]", r"fusion.blur_sigmas\[1\] = -1(.0)?: a sigma must be > 0"),
        ("fusion.classifier=fg", "fusion.classifier.*classifier of two or more streams"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(demo, [override])


def test_fusion_and_heldout_pairs() -> None:
    sets = {"fg": ["fg"], "bg": ["bg"], "joint": ["fg", "bg"]}
    names = {"fg", "bg", "joint", "joint-gate", "fg-heldout", "joint-heldout",
             "joint-gate-heldout"}
    pairs = compared_pairs(names, sets)
    for pair in [("joint-gate", "fg"), ("joint-gate", "joint"),
                 ("joint-gate-heldout", "fg-heldout"), ("joint-gate-heldout", "joint-heldout"),
                 ("joint-gate-heldout", "joint-gate"), ("joint-heldout", "joint")]:
        assert pair in pairs
    assert not any(heldout_base(a) and not heldout_base(b) and heldout_base(a) != b
                   for a, b in pairs)  # held-out heads meet only their own kind (and self)
    assert fusion_parts("joint-gate-heldout") == ("joint", "gate")


SMALL = [
    "datasets=[{name: scenes-cs0.8, kind: scenes, context_strength: 0.8, num_train: 200, "
    "num_test: 120, seed: 5, subsets: [all]}]",
    "steps=[blur, fgsm, fusion]", "blur.sigmas=[1.43, 2.86]", "fgsm.sources=[fg]",
    "fgsm.epsilons=[0, 0.01]", "fgsm.regions=[image]", "whitebox.max_images=16",
    "whitebox.adaptive=[]", "fusion.max_train_images=60", "fusion.gate_epochs=30",
    "fusion.heldout_folds=3", "heads.epochs=30", "heads.alphas=[10]", "batch_size=64",
]


@pytest.fixture(scope="module")
def fusion_run(tmp_path_factory) -> tuple[Path, list[dict]]:
    return run_demo_variant(tmp_path_factory, SMALL, "fusion")


def test_methods_are_scored_like_every_classifier(fusion_run) -> None:
    out, rows = fusion_run
    methods = [f"joint-{m}" for m in FUSION_METHODS]
    for name in methods:
        mine = [r for r in rows if r["classifier"] == name]
        kinds = {(r["threat"], r["perturbation"]) for r in mine}
        assert {("none", "none"), ("none", "blur"), ("transfer", "fgsm"),
                ("whitebox", "fgsm")} <= kinds, name  # white-box: through its own gradient
    info = json.loads((out / "run.json").read_text())["fusion"]["scenes-cs0.8"]
    assert info["methods"] == list(FUSION_METHODS) and info["n_perturbed_train"] == 60
    with open(out / "differences.csv", newline="") as handle:
        pairs = {(d["classifier_a"], d["classifier_b"]) for d in csv.DictReader(handle)}
    assert {(name, "joint") for name in methods} <= pairs
    assert {(name, "fg") for name in methods} <= pairs


def test_heldout_heads_cover_every_test_image_once(fusion_run) -> None:
    _, rows = fusion_run
    heldout = [r for r in rows if r["classifier"].endswith("-heldout")]
    names = {r["classifier"] for r in heldout}
    assert {"fg-heldout", "bg-heldout", "joint-heldout", "joint-alpha10-heldout",
            "joint-gate-heldout", "joint-fgsmtrain-heldout"} <= names
    clean = [r for r in heldout if r["perturbation"] == "none"]
    assert {int(r["n"]) for r in clean} == {120}  # every test image, from the fold without it
    settings = Counter((r["threat"], r["perturbation"], r["level"]) for r in heldout)
    assert settings[("transfer", "fgsm", "0.01")] == len(names)
    assert not any(r["threat"] == "whitebox" for r in heldout)
