"""The robust fusion step (:mod:`ctxfusion.fusion`): the methods' heads added to every trial,
and the held-out cross-fit of every head on the test images.

Methods join a trial as classifiers ``<classifier>-<method>`` before any perturbation is
scored, so blur, FGSM (transfer, white-box, the matrix, the regions) and corruptions score
them as they score the paper's heads. Their perturbed training features are cached like
every other feature: blur on one class-stratified sample of the training split (shared by the
trials), FGSM crafted per trial on its own object classifier.

Held-out honesty: a stream pretrained on images that are also the training images here (Tiny
ImageNet's train split is part of ImageNet's) is near perfect on them, and a head trained
there learns to trust it more than it deserves. With ``fusion.heldout_folds`` = K every head
is also trained on K-1 class-stratified folds of the *test* images and scores the fold it did
not see (``<classifier>-heldout``), clean, blurred and under FGSM transferred from the object
classifier; the per-image outcomes of the K folds cover every test image once.
"""

from __future__ import annotations

import numpy as np
import torch

from ctxfusion.experiments.attack_steps import (
    fgsm_features,
    level_of,
    pixel_epsilons,
    spec_model,
)
from ctxfusion.experiments.context import RunContext
from ctxfusion.experiments.heads import (
    ClassifierSpec,
    SubsetData,
    Trial,
    classifier_specs,
    head_correct,
    single_thread,
    stratified_sample,
    train_heads,
)
from ctxfusion.experiments.sweeps import (
    SplitData,
    blurred_features,
    fgsm_sweep_features,
    perturbed_row_features,
)
from ctxfusion.fusion.methods import Optimisation, Perturbed, TrainingSet, fit_methods
from ctxfusion.perturb.blur import BLUR, blur_inside_boxes
from ctxfusion.roles import fusion_name, heldout_name

Features = dict[str, torch.Tensor]


def fusion_source(ctx: RunContext) -> str:
    """The classifier FGSM training images are crafted on: the first FGSM source (fg)."""
    return ctx.config.fgsm.sources[0]


def optimisation(ctx: RunContext, seed: int) -> Optimisation:
    """The heads' optimisation settings of the config, with ``seed``."""
    heads = ctx.config.heads
    return Optimisation(epochs=heads.epochs, lr=heads.lr, batch_size=heads.batch_size,
                        gate_epochs=ctx.config.fusion.gate_epochs, seed=seed)


def fusion_heads(ctx: RunContext, dataset: str, train: SplitData, trials: list[Trial],
                 train_features: Features, has_boxes: bool) -> None:
    """Train every configured method for every trial and add it as a classifier."""
    cfg = ctx.config.fusion
    base = cfg.classifier
    if base is None:
        ctx.recorder.note(f"{dataset}: step fusion skipped: no classifier of two or more "
                          "streams")
        return
    inputs = trials[0].spec(base).inputs
    everything = SubsetData(torch.arange(len(train.labels)), train.labels, [])
    sample = (stratified_sample(everything, cfg.max_train_images, ctx.config.seed)
              if cfg.max_train_images is not None else everything)
    blurred = _blurred_sample(ctx, train, sample, inputs) if has_boxes else []
    for trial in trials:
        positions, labels = _trial_rows(sample, trial)
        data = TrainingSet(
            features=[train_features[key][trial.train.rows] for key in inputs],
            labels=trial.train.labels,
            blurred=[([version[key][positions] for key in inputs], labels)
                     for version in blurred],
            attacked=_attacked_sample(ctx, dataset, train, trial, sample.rows[positions],
                                      labels, inputs))
        with single_thread():
            heads = fit_methods(cfg.methods, data, len(trial.train.classes),
                                optimisation(ctx, trial.seed), cfg.dropout)
        for method, head in heads.items():
            name = fusion_name(base, method)
            trial.heads[name] = head
            trial.specs.append(ClassifierSpec(name, inputs))
    ctx.recorder.info.setdefault("fusion", {})[dataset] = {
        "classifier": base, "methods": cfg.methods, "dropout": cfg.dropout,
        "blur_sigmas": cfg.blur_sigmas if has_boxes else [], "fgsm_source": fusion_source(ctx),
        "fgsm_epsilons": cfg.fgsm_epsilons, "eps_space": ctx.config.fgsm.eps_space,
        "max_train_images": cfg.max_train_images, "n_perturbed_train": len(sample.rows),
        "gate_epochs": cfg.gate_epochs, "heldout_folds": cfg.heldout_folds,
    }


def _trial_rows(sample: SubsetData, trial: Trial) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions in ``sample`` of the trial's training rows, and their labels in the trial."""
    position = {int(row): i for i, row in enumerate(sample.rows)}
    pairs = [(position[row], label) for row, label in
             zip(trial.train.rows.tolist(), trial.train.labels.tolist(), strict=True)
             if row in position]
    if not pairs:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    found, labels = zip(*pairs, strict=True)
    return torch.tensor(found), torch.tensor(labels)


def _blurred_sample(ctx: RunContext, train: SplitData, sample: SubsetData,
                    inputs: tuple[str, ...]) -> list[Features]:
    """Features of the sample's training images blurred inside their boxes, per sigma."""
    sigmas, mode = ctx.config.fusion.blur_sigmas, ctx.config.blur.mode
    if not sigmas:
        return []

    def craft(images, _labels, boxes, _position) -> list[torch.Tensor]:
        return [blur_inside_boxes(images, boxes, sigma, mode=mode) for sigma in sigmas]

    views = ctx.stream_views()
    return perturbed_row_features(
        ctx, train, sample.rows, sample.labels,
        {"kind": "blur", "sigmas": list(sigmas), "mode": mode}, craft,
        {key: views[key] for key in inputs}, desc="fusion: blurred training images",
        computations=(BLUR,))


def _attacked_sample(ctx: RunContext, dataset: str, train: SplitData, trial: Trial,
                     rows: torch.Tensor, labels: torch.Tensor,
                     inputs: tuple[str, ...]) -> list[Perturbed]:
    """Features of FGSM training images crafted on the trial's object classifier, per eps
    (only on the subsets the attack steps run on: ``attack_subsets``)."""
    cfg = ctx.config
    epsilons = pixel_epsilons(ctx, cfg.fusion.fgsm_epsilons, cfg.fgsm.eps_space)
    chosen = cfg.attack_subsets
    if ("fgsmtrain" not in cfg.fusion.methods or not epsilons or not len(rows)
            or (chosen is not None and trial.subset not in chosen)):
        return []
    views, source = ctx.stream_views(), fusion_source(ctx)
    versions = fgsm_sweep_features(
        ctx, train, rows, labels, spec_model(ctx, trial, source), source, epsilons,
        {key: views[key] for key in inputs},
        desc=f"{dataset}/{trial.subset} fusion: fgsm training images on {source}")
    return [([version[key] for key in inputs], labels) for version in versions]


class Condition:
    """Test features of one perturbation, aligned with a trial's test rows, and the columns
    its results rows carry."""

    def __init__(self, features: Features, perturbation: str = "none", level: float = 0.0,
                 source: str = "", threat: str = "none") -> None:
        self.features, self.perturbation, self.level = features, perturbation, level
        self.source, self.threat = source, threat


def heldout_rows(ctx: RunContext, dataset: str, test: SplitData, trials: list[Trial],
                 steps: set[str], has_boxes: bool) -> None:
    """Results rows of every head cross-fitted on the test images (module docstring)."""
    cfg = ctx.config.fusion
    if cfg.heldout_folds < 2 or cfg.classifier is None:
        return
    for trial in trials:
        rows = trial.test.rows
        largest = int(torch.bincount(trial.test.labels).max()) if len(rows) else 0
        if largest < cfg.heldout_folds:
            ctx.recorder.note(f"{dataset}/{trial.subset}: held-out heads skipped: no class has "
                              f"{cfg.heldout_folds} test images (fusion.heldout_folds)")
            continue
        conditions = [Condition({k: v[rows] for k, v in trial.clean_features.items()})]
        if "blur" in steps and has_boxes:
            conditions += [Condition({k: v[rows] for k, v in
                                      blurred_features(ctx, test, sigma).items()},
                                     "blur", float(sigma))
                           for sigma in ctx.config.blur.sigmas]
        conditions += _transferred(ctx, dataset, test, trial, steps)
        blurred = ([{k: v[rows] for k, v in blurred_features(ctx, test, sigma).items()}
                    for sigma in cfg.blur_sigmas] if has_boxes else [])
        for name, (condition, correct) in _cross_fit(ctx, trial, conditions, blurred).items():
            ctx.recorder.add_result(
                dataset=dataset, subset=trial.subset, classifier=heldout_name(name[0]),
                source=condition.source, threat=condition.threat,
                perturbation=condition.perturbation, level=condition.level, seed=trial.seed,
                rows=rows, correct=correct)


def _transferred(ctx: RunContext, dataset: str, test: SplitData, trial: Trial,
                 steps: set[str]) -> list[Condition]:
    """The FGSM sweep the fgsm step crafted on the object classifier for this trial (the
    same :func:`fgsm_features` call, so its cached features are found), one condition per
    eps; none when the trial had no FGSM step."""
    cfg, source = ctx.config, fusion_source(ctx)
    chosen = cfg.attack_subsets
    if "fgsm" not in steps or (chosen is not None and trial.subset not in chosen):
        return []
    return [Condition(features, "fgsm", level_of(eps), source, "transfer")
            for eps, features in fgsm_features(ctx, dataset, test, trial, source, trial.specs)]


def _cross_fit(ctx: RunContext, trial: Trial, conditions: list[Condition],
               blurred: list[Features]) -> dict[tuple[str, int], tuple[Condition, torch.Tensor]]:
    """Per (classifier, condition index): the condition and the per-image outcomes of the
    classifier trained on the other folds (the paper's heads and every method)."""
    cfg = ctx.config
    base, labels = cfg.fusion.classifier, trial.test.labels
    paper = {spec.name for spec in classifier_specs(cfg) if "@" not in spec.name}
    members = [spec for spec in trial.specs if spec.name in paper]
    inputs = trial.spec(base).inputs
    fusion_eps = {level_of(e) for e in pixel_epsilons(ctx, cfg.fusion.fgsm_epsilons,
                                                       cfg.fgsm.eps_space)}
    clean = conditions[0].features
    attacked = [c.features for c in conditions
                if c.perturbation == "fgsm" and c.level in fusion_eps and c.level > 0]
    out: dict[tuple[str, int], tuple[Condition, torch.Tensor]] = {}
    from sklearn.model_selection import StratifiedKFold  # deferred: sklearn takes 1.6 s

    folds = StratifiedKFold(n_splits=cfg.fusion.heldout_folds, shuffle=True,
                            random_state=trial.seed)
    for fit, held in folds.split(np.zeros(len(labels)), labels.numpy()):
        fit, held = torch.from_numpy(fit), torch.from_numpy(held)
        fit_data = SubsetData(fit, labels[fit], trial.test.classes)
        heads = train_heads(cfg, members, clean, fit_data, trial.seed)
        data = TrainingSet(
            [clean[key][fit] for key in inputs], labels[fit],
            blurred=[([version[key][fit] for key in inputs], labels[fit]) for version in blurred],
            attacked=[([version[key][fit] for key in inputs], labels[fit])
                      for version in attacked])
        with single_thread():
            methods = fit_methods(cfg.fusion.methods, data, len(trial.test.classes),
                                  optimisation(ctx, trial.seed), cfg.fusion.dropout)
        specs = members + [ClassifierSpec(fusion_name(base, m), inputs) for m in methods]
        heads.update({fusion_name(base, m): head for m, head in methods.items()})
        for spec in specs:
            for index, condition in enumerate(conditions):
                _, correct = out.setdefault((spec.name, index), (
                    condition, torch.zeros(len(labels), dtype=torch.bool)))
                correct[held] = head_correct(heads[spec.name], spec, condition.features, held,
                                             labels[held])
    return out
