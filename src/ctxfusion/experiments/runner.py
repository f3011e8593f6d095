"""One experiment end to end: datasets -> features -> heads -> sweeps -> analyses -> report."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tqdm import tqdm

from ctxfusion.config import DatasetConfig, ExperimentConfig
from ctxfusion.data.manifest import Manifest
from ctxfusion.experiments.analyses import blur_example, pca_rows
from ctxfusion.experiments.attacks import (
    advtrain_rows,
    build_model,
    fgsm_rows,
    pixel_epsilons,
    whitebox_rows,
)
from ctxfusion.experiments.context import RunContext, seed_everything
from ctxfusion.experiments.data import load_split, prepare_dataset
from ctxfusion.experiments.finetune import finetuned_stream
from ctxfusion.experiments.heads import (
    ClassifierSpec,
    SubsetData,
    classifier_specs,
    head_accuracy,
    select_subset,
    train_heads,
)
from ctxfusion.experiments.rundir import describe_device, package_versions
from ctxfusion.experiments.sweeps import SplitData, blurred_features, split_features
from ctxfusion.models import LinearHead


def run_experiment(config: ExperimentConfig, out: str | Path) -> Path:
    """Run every dataset of ``config`` and write the run directory ``out``; returns it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    ctx = RunContext.create(config, out)
    recorder = ctx.recorder
    recorder.write_config(config.to_dict())
    recorder.info.update({
        "config_path": config.source_path,
        "versions": package_versions(),
        "device": describe_device(ctx.device),
        "seed": config.seed,
        "streams": {role: s.describe() for role, s in ctx.streams.items()},
        "threat_model": _threat_model(ctx),
        "datasets": {},
    })
    pretrained_fg = ctx.streams["fg"]
    for dataset in config.datasets:
        ctx.streams["fg"] = pretrained_fg  # fine-tuning (if any) is per dataset
        with recorder.timed(f"dataset {dataset.name}"):
            _run_dataset(ctx, dataset)
        recorder.write()  # finished datasets are on disk even if a later one fails
    recorder.info["cache"] = {"hits": ctx.cache.hits, "misses": ctx.cache.misses}
    recorder.write()
    with recorder.timed("report"):
        from ctxfusion.report import build_report

        report = build_report(out)  # redraws every figure the data supports
    recorder.write()
    return report


def _threat_model(ctx: RunContext) -> dict:
    cfg = ctx.config
    epsilons = pixel_epsilons(ctx, cfg.fgsm.epsilons, cfg.fgsm.eps_space)
    std = ctx.normalization_std()
    attacks = [
        {"name": "fgsm", "source": source, "evaluated_on": "every classifier",
         "setting": "white-box for the source, transfer for the others"}
        for source in cfg.fgsm.sources
    ]
    if "advtrain" in cfg.steps:
        attacks.append({"name": "fgsm", "source": "fg-advtrain", "evaluated_on": ["fg-advtrain"],
                        "setting": "white-box"})
    if "whitebox" in cfg.steps:
        attacks += [
            {"name": name, "source": target, "evaluated_on": [target], "setting": "white-box",
             "steps": cfg.whitebox.steps, "restarts": cfg.whitebox.restarts,
             "epsilons_pixel": [e.tolist() for e in
                                pixel_epsilons(ctx, cfg.whitebox.epsilons, cfg.fgsm.eps_space)]}
            for name in cfg.whitebox.attacks for target in cfg.whitebox.targets
        ]
    return {
        "norm": "Linf",
        "eps_space": cfg.fgsm.eps_space,
        "epsilons_config": cfg.fgsm.epsilons,
        "epsilons_pixel": [e.tolist() for e in epsilons],
        "epsilons_normalized": [(e / std).tolist() for e in epsilons],
        "normalization_std": std.tolist(),
        "attacks": attacks,
    }


def _run_dataset(ctx: RunContext, dataset: DatasetConfig) -> None:
    cfg, recorder = ctx.config, ctx.recorder
    steps = set(dataset.steps if dataset.steps is not None else cfg.steps)
    print(f"[{dataset.name}] preparing data", file=sys.stderr)
    with recorder.timed("prepare"):
        manifest = prepare_dataset(dataset)
    image_size = dataset.image_size or ctx.streams["fg"].input_size
    if not manifest.has_boxes:
        for step in ("blur", "pca"):
            if step in steps and dataset.steps is not None:
                recorder.note(f"{dataset.name}: step {step} skipped: the dataset has no boxes")
        steps -= {"blur", "pca"}
    train = load_split(cfg, dataset, manifest, "train", image_size)
    test = load_split(cfg, dataset, manifest, "test", image_size)
    if cfg.finetune.enabled:
        with recorder.timed("finetune"):
            ctx.streams["fg"] = finetuned_stream(ctx, train, len(manifest.classes))
    subsets = [s for s in dataset.subsets if s == "all" or manifest.subsets.get(s)]
    for skipped in sorted(set(dataset.subsets) - set(subsets)):
        recorder.note(f"{dataset.name}: subset {skipped} not available in the manifest")
    recorder.info["datasets"][dataset.name] = {
        "kind": dataset.kind, "has_boxes": manifest.has_boxes,
        "context_strength": dataset.context_strength, "image_size": image_size,
        "subsets": {s: manifest.subset_classes(s) for s in subsets},
        "n_train": len(train.labels), "n_test": len(test.labels),
        "manifest": str(manifest.path), "notes": list(manifest.notes),
    }
    if cfg.finetune.enabled:
        recorder.info["datasets"][dataset.name]["finetuned_fg"] = ctx.streams["fg"].describe()
    print(f"[{dataset.name}] {len(train.labels)} train / {len(test.labels)} test images, "
          f"{image_size} px", file=sys.stderr)
    with recorder.timed("features"):
        train_features = split_features(ctx, train, {"kind": "none"}, desc="train features")
        clean_features = split_features(ctx, test, {"kind": "none"}, desc="test features")
    specs = classifier_specs(cfg)
    with recorder.timed("heads"):
        trained = _train_subsets(ctx, dataset.name, manifest, subsets, specs, train,
                                 train_features, test)
    _score(ctx, dataset.name, specs, trained, clean_features, "none", 0.0)
    if "blur" in steps:
        with recorder.timed("blur"):
            _blur_sweep(ctx, dataset.name, test, specs, trained)
        blur_example(ctx, dataset.name, test)
    if "pca" in steps:
        with recorder.timed("pca"):
            pca_rows(ctx, dataset.name, manifest, test, clean_features)
    for subset, (heads, train_data, test_data) in trained.items():
        models = {"fg": build_model(ctx, ("fg",), heads["fg"]),
                  "joint": build_model(ctx, ("fg", "bg"), heads["joint"])}
        if "fgsm" in steps:
            with recorder.timed("fgsm"):
                for source in cfg.fgsm.sources:
                    fgsm_rows(ctx, dataset.name, subset, test, test_data, specs, heads,
                              source, models[source])
        if "advtrain" in steps:
            with recorder.timed("advtrain"):
                fg_spec = next(s for s in specs if s.name == "fg")
                advtrain_rows(ctx, dataset.name, subset, train, train_data, test, test_data,
                              fg_spec, heads["fg"])
        if "whitebox" in steps:
            with recorder.timed("whitebox"):
                whitebox_rows(ctx, dataset.name, subset, test, test_data, models)


Trained = dict[str, tuple[dict[str, LinearHead], SubsetData, SubsetData]]


def _train_subsets(
    ctx: RunContext, name: str, manifest: Manifest, subsets: list[str],
    specs: list[ClassifierSpec], train: SplitData, train_features: dict[str, torch.Tensor],
    test: SplitData,
) -> Trained:
    """Per subset: every head trained on the cached train features, and the joint heads'
    per-stream mean |w| recorded (Fig. 4b/d, 5c/d)."""
    trained: Trained = {}
    for subset in subsets:
        classes = manifest.subset_classes(subset)
        train_data = select_subset(train.labels, manifest.classes, classes)
        test_data = select_subset(test.labels, manifest.classes, classes)
        heads = train_heads(ctx.config, specs, train_features, train_data)
        trained[subset] = (heads, train_data, test_data)
        for spec in specs:
            if spec.name.startswith("joint"):
                for role, value in zip(("fg", "bg"), heads[spec.name].stream_weight_means(),
                                       strict=True):
                    ctx.recorder.weights.append({
                        "dataset": name, "subset": subset, "classifier": spec.name,
                        "alpha": spec.alpha, "stream": role, "mean_abs_weight": value,
                    })
    return trained


def _score(ctx: RunContext, name: str, specs: list[ClassifierSpec], trained: Trained,
           features: dict[str, torch.Tensor], perturbation: str, level: float) -> None:
    """One results row per subset and classifier on test features of one perturbation."""
    for subset, (heads, _, test_data) in trained.items():
        for spec in specs:
            ctx.recorder.add_result(
                dataset=name, subset=subset, classifier=spec.name, perturbation=perturbation,
                level=level, n=len(test_data.labels),
                accuracy=head_accuracy(heads[spec.name], spec, features, test_data.rows,
                                       test_data.labels),
            )


def _blur_sweep(ctx: RunContext, name: str, test: SplitData, specs: list[ClassifierSpec],
                trained: Trained) -> None:
    for sigma in tqdm(ctx.config.blur.sigmas, desc=f"{name} blur sweep", leave=False):
        _score(ctx, name, specs, trained, blurred_features(ctx, test, sigma), "blur",
               float(sigma))

