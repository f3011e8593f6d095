"""The corruptions step: natural corruptions (ImageNet-C severities) in each region, scored
by every classifier of a trial on a class-stratified sample of its test images.

Rows: ``perturbation`` = the corruption's name, ``level`` = its severity, ``region`` = where it
acts, ``threat`` none (no attacker). Severity 0 is the clean row of the same images.
"""

from __future__ import annotations

import torch

from ctxfusion.experiments.attack_steps import stream_view, usable_regions
from ctxfusion.experiments.context import RunContext
from ctxfusion.experiments.heads import SubsetData, Trial, head_correct, stratified_sample
from ctxfusion.experiments.sweeps import SplitData, perturbed_row_features
from ctxfusion.perturb.corruptions import CORRUPTION, corrupt
from ctxfusion.perturb.regions import REGION_MASKS, region_mask


def corruption_sample(ctx: RunContext, trial: Trial) -> SubsetData:
    """At most ``corruptions.max_images`` test images of the trial, even across classes."""
    return stratified_sample(trial.test, ctx.config.corruptions.max_images, trial.seed)


def corruption_rows(ctx: RunContext, dataset: str, test: SplitData, trial: Trial,
                    has_boxes: bool) -> None:
    """Every configured corruption at every severity in every region the dataset allows,
    each classifier of ``trial`` scored on the same corrupted images (severity 0 is the
    clean row)."""
    cfg = ctx.config.corruptions
    data = corruption_sample(ctx, trial)
    needed = sorted({key for spec in trial.specs for key in spec.inputs})
    pairs = {key: stream_view(ctx, trial, key) for key in needed}
    severities = list(cfg.severities)
    batch_size = test.loader.batch_size or 1
    for name in cfg.names:
        for region in usable_regions(ctx, dataset, has_boxes, cfg.regions,
                                     "corruptions.regions"):

            def craft(images: torch.Tensor, _labels: torch.Tensor, boxes: list[torch.Tensor],
                      position: int, name: str = name, region: str = region
                      ) -> list[torch.Tensor]:
                mask = region_mask(region, boxes, *images.shape[-2:], device=images.device)
                # one noise draw per image, the same in every region and trial
                seed = ctx.config.seed + position * batch_size
                return [corrupt(images, name, severity, mask, seed=seed)
                        for severity in severities]

            per_severity = perturbed_row_features(
                ctx, test, data.rows, data.labels,
                {"kind": "corruption", "name": name, "region": region,
                 "severities": severities, "seed": ctx.config.seed},
                craft, pairs, desc=f"{dataset}/{trial.subset} {name} ({region})",
                computations=(CORRUPTION, REGION_MASKS))
            for severity, features in zip(severities, per_severity, strict=True):
                for spec in trial.specs:
                    ctx.recorder.add_result(
                        dataset=dataset, subset=trial.subset, classifier=spec.name,
                        perturbation=name, region=region, level=float(severity),
                        seed=trial.seed, rows=data.rows,
                        correct=head_correct(trial.heads[spec.name], spec, features, None,
                                             data.labels))
