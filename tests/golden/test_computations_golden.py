"""Golden tests of every versioned computation (``ctxfusion.versioning``).

Each case is small and deterministic on a CPU: 12 images of the embedded benchmark (64 px,
rendered from a fixed seed), the two real shipped streams (``scenes-object-resnet18``,
``scenes-scene-resnet18``), one thread. Outputs are compared with the references in
``references/`` made with the version named beside them (``golden.check``): a changed output
under an unchanged version fails and names the version to bump; ``make golden`` rewrites the
references of bumped versions.

Tolerances: 0 (exact) where a computation is deterministic on a CPU; 1e-4 relative (and 1e-4
absolute near zero) where floating-point reductions of a training loop or of a library decide
the last bits: a training loop amplifies the rounding that differs between CPUs (AVX2 and
AVX-512 kernels) to a few 1e-6 relative (1e-5 absolute for logits near zero), while any change
of the computation itself (a step, a rate, an epoch) moves its outputs by far more.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from tests.golden.golden import check, summarise

from ctxfusion.features import FEATURES, extract_features
from ctxfusion.fusion.methods import METHOD_VERSIONS, Optimisation, TrainingSet, fit_methods
from ctxfusion.models import FusionClassifier, LinearHead
from ctxfusion.perturb.attacks import FGSM, attack_class, fgsm_sweep, make_attack
from ctxfusion.perturb.blur import BLUR, blur_inside_boxes
from ctxfusion.perturb.corruptions import CORRUPTION, corrupt
from ctxfusion.perturb.regions import REGION_MASKS, attack_in_region, region_mask
from ctxfusion.perturb.views import STREAM_VIEWS, make_view
from ctxfusion.roles import FUSION_METHODS
from ctxfusion.scenes.benchmark import render_batch
from ctxfusion.streams import create_stream
from ctxfusion.train import (
    ADVERSARIAL_RETRAINING,
    HEAD_TRAINING,
    adversarial_retrain,
    train_linear_head,
)
from ctxfusion.versioning import Computation

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
#: exact: the same code on the same CPU gives the same bits
EXACT: dict[str, float] = {}
#: training loops and library reductions: equal up to the rounding that differs between CPUs
CLOSE = {"rtol": 1e-4, "atol": 1e-4}


#: where each computation's version is written (the constant a change must bump)
CONSTANTS = {
    "features": "ctxfusion.features.FEATURES", "views": "ctxfusion.perturb.views.STREAM_VIEWS",
    "blur": "ctxfusion.perturb.blur.BLUR", "fgsm": "ctxfusion.perturb.attacks.FGSM",
    "regions": "ctxfusion.perturb.regions.REGION_MASKS",
    "corruptions": "ctxfusion.perturb.corruptions.CORRUPTION",
    "head_training": "ctxfusion.train.HEAD_TRAINING",
    "advtrain": "ctxfusion.train.ADVERSARIAL_RETRAINING",
    "claims": "ctxfusion.report.claims.rules.JUDGING",
    "datasets": "ctxfusion.data.kinds.PREPARATION",
    **{f"attack.{name}": f"ctxfusion.perturb.attacks.{cls}.version"
       for name, cls in (("pgd", "Pgd"), ("bim", "Bim"), ("apgd", "Apgd"))},
    **{f"fusion.{name}": f"ctxfusion.fusion.methods.METHOD_VERSIONS[{name!r}]"
       for name in FUSION_METHODS},
}


def _check(name: str, computation: Computation, output: dict, **tolerance: float) -> None:
    check(name, CONSTANTS[computation.name], computation.version, output, **tolerance)


@pytest.fixture(scope="module")
def scenes() -> dict[str, object]:
    """12 benchmark images with their boxes and labels (4 classes, 3 each)."""
    batch = render_batch(20261207, 12, 0.8, labels=torch.arange(12).remainder(4).numpy())
    images = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float().div(255)
    boxes = [torch.from_numpy(b).float() for b in batch.boxes]
    return {"images": images, "boxes": boxes, "labels": torch.from_numpy(batch.labels)}


@pytest.fixture(scope="module")
def streams() -> dict[str, torch.nn.Module]:
    return {"fg": create_stream("scenes-object-resnet18"),
            "bg": create_stream("scenes-scene-resnet18")}


@pytest.fixture(scope="module")
def features(scenes, streams) -> dict[str, torch.Tensor]:
    loader = [(scenes["images"], scenes["labels"], scenes["boxes"], torch.arange(12))]
    found, _, _ = extract_features(streams, loader)
    return found


@pytest.fixture(scope="module")
def fg_model(streams, features, scenes) -> FusionClassifier:
    head = train_linear_head([features["fg"]], scenes["labels"], 4, epochs=20, lr=0.05)
    return FusionClassifier([streams["fg"]], head).eval()


def test_features(features, scenes, streams) -> None:
    context = make_view("context")
    with torch.no_grad():
        seen = streams["bg"](context(scenes["images"], scenes["boxes"]))
    _check("features", FEATURES, {name: summarise(t) for name, t in features.items()})
    _check("views", STREAM_VIEWS, {"bg@context": summarise(seen)})


def test_blur(scenes) -> None:
    out = {f"{mode}/{sigma:g}": summarise(blur_inside_boxes(scenes["images"], scenes["boxes"],
                                                            sigma, mode=mode))
           for mode in ("image", "crop") for sigma in (1.43, 2.86)}
    _check("blur", BLUR, out)


def test_fgsm(fg_model, scenes) -> None:
    epsilons = [torch.tensor(0.0), torch.tensor(0.01), torch.tensor(0.04)]
    images, labels = scenes["images"][:8], scenes["labels"][:8]
    swept = fgsm_sweep(fg_model, images, labels, epsilons)
    _check("fgsm", FGSM, {f"eps{float(e):g}": summarise(x) for e, x in
                          zip(epsilons, swept, strict=True)})


def test_regions(fg_model, scenes) -> None:
    images, labels, boxes = scenes["images"][:6], scenes["labels"][:6], scenes["boxes"][:6]
    out = {}
    for region in ("box", "background"):
        mask = region_mask(region, boxes, 64, 64)
        torch.manual_seed(0)
        adversarial = attack_in_region(
            lambda module: make_attack("pgd", module, 0.02, steps=2), fg_model, images, labels,
            mask, boxes)
        out[region] = {"mask": summarise(mask.float()), "images": summarise(adversarial)}
    _check("regions", REGION_MASKS, out, **CLOSE)


@pytest.mark.parametrize("name", ["pgd", "bim", "apgd"])
def test_iterative_attacks(name: str, fg_model, scenes) -> None:
    torch.manual_seed(0)
    adversarial = make_attack(name, fg_model, 0.02, steps=3)(scenes["images"][:6],
                                                             scenes["labels"][:6])
    _check(f"attack.{name}", attack_class(name).computation,
           {"images": summarise(adversarial)}, **CLOSE)


def test_corruption(scenes) -> None:
    mask = region_mask("box", scenes["boxes"][:4], 64, 64)
    out = {f"{name}/{severity}": summarise(corrupt(scenes["images"][:4], name, severity, mask,
                                                   seed=3))
           for name in ("gaussian_noise", "contrast") for severity in (1, 3)}
    _check("corruptions", CORRUPTION, out)


def test_head_training(features, scenes) -> None:
    pair = [features["fg"], features["bg"]]
    out = {}
    for alpha, reduction in ((0.0, "mean"), (10.0, "sum")):
        head = train_linear_head(pair, scenes["labels"], 4, alpha=alpha, alpha_reduction=reduction,
                                 epochs=15, lr=0.05, seed=1)
        out[f"alpha{alpha:g}-{reduction}"] = {"weight": summarise(head.weight.detach()),
                                              "bias": summarise(head.bias.detach())}
    _check("head_training", HEAD_TRAINING, out, **CLOSE)


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_fusion_method(method: str, features, scenes) -> None:
    pair = [features["fg"], features["bg"]]
    labels = scenes["labels"]
    perturbed = ([f.flip(0) for f in pair], labels.flip(0))  # a stand-in degraded version
    data = TrainingSet(pair, labels, blurred=[perturbed], attacked=[perturbed])
    torch.manual_seed(0)
    fitted = fit_methods([method], data, 4, Optimisation(epochs=10, lr=0.05, batch_size=None,
                                                         gate_epochs=10, seed=2), dropout=0.3)
    with torch.no_grad():
        logits = fitted[method](torch.cat(pair, dim=1))
    _check(f"fusion.{method}", METHOD_VERSIONS[method], {"logits": summarise(logits)}, **CLOSE)


def test_adversarial_retraining(streams, fg_model, scenes) -> None:
    loader = [(scenes["images"][:8], scenes["labels"][:8]),
              (scenes["images"][8:], scenes["labels"][8:])]
    head = copy.deepcopy(fg_model.head)
    retrained = adversarial_retrain(streams["fg"], head, loader, eps=0.03, epochs=2, lr=0.01,
                                    seed=4, progress=False)
    assert isinstance(retrained.head, LinearHead)
    _check("advtrain", ADVERSARIAL_RETRAINING,
           {"weight": summarise(retrained.head.weight.detach()),
            "bias": summarise(retrained.head.bias.detach())}, **CLOSE)


@pytest.mark.parametrize("example", ["offline-cifar10", "offline-tinyimagenet"])
def test_claims(example: str) -> None:
    from ctxfusion.report.claims import evaluate_run
    from ctxfusion.report.claims.rules import JUDGING

    rows = evaluate_run(EXAMPLES / example)
    _check(f"claims_{example}", JUDGING, {"rows": [dict(vars(row)) for row in rows]})


def test_dataset_preparation(tmp_path: Path) -> None:
    """A small embedded-benchmark dataset rendered and pruned: its manifest (paths aside) and
    the bytes of every image file."""
    import hashlib
    import json

    from ctxfusion.data.kinds import PREPARATION, make_dataset_config, prepare_dataset

    config = make_dataset_config("scenes", name="golden", context_strength=0.8, num_train=48,
                                 num_test=24, seed=11)
    manifest = prepare_dataset(config, tmp_path / "prepared", progress=False)
    record = manifest.to_dict()
    for path_key in ("images_dir", "test_images_dir"):
        record.pop(path_key)
    # the settings name the source files by absolute path: keep them relative to tmp_path
    record = json.loads(json.dumps(record).replace(str(tmp_path), "<tmp>"))
    files = hashlib.sha256()
    for path in sorted((tmp_path / "prepared").rglob("*.png")):
        files.update(path.relative_to(tmp_path).as_posix().encode() + path.read_bytes())
    _check("datasets", PREPARATION, {
        "classes": record["classes"], "subsets": record["subsets"],
        "counts": record["counts"],
        "manifest_sha256": hashlib.sha256(json.dumps(record, sort_keys=True).encode())
        .hexdigest(),
        "images": len(record["images"]), "files_sha256": files.hexdigest()})
