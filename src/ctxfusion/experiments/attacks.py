"""The attack steps of an experiment: FGSM sweeps, adversarial retraining, white-box attacks."""

from __future__ import annotations

import torch

from ctxfusion.experiments.context import RunContext
from ctxfusion.experiments.heads import ClassifierSpec, SubsetData, head_accuracy
from ctxfusion.experiments.sweeps import (
    RelabelledLoader,
    SplitData,
    fgsm_sweep_features,
    rows_digest,
)
from ctxfusion.features import module_digest
from ctxfusion.models import FusionClassifier, LinearHead
from ctxfusion.perturb.attacks import eps_to_pixel, make_attack
from ctxfusion.perturb.views import make_view
from ctxfusion.train import adversarial_retrain


def pixel_epsilons(ctx: RunContext, epsilons: list[float], space: str) -> list[torch.Tensor]:
    """Each eps as a pixel-space tensor: a scalar, or per-channel (C,) for normalised eps."""
    std = ctx.normalization_std()
    return [torch.as_tensor(eps_to_pixel(e, space, std), dtype=torch.float32) for e in epsilons]


def level_of(eps_pixel: torch.Tensor) -> float:
    """The results-table level of an eps: its pixel value (mean over channels if per-channel)."""
    return round(float(eps_pixel.mean()), 6)


def build_model(ctx: RunContext, roles: tuple[str, ...], head: LinearHead) -> FusionClassifier:
    """A pixel-space classifier over the given streams (default views) and head."""
    streams = [ctx.streams[r] for r in roles]
    views = [make_view(getattr(ctx.config.streams, r).views[0]) for r in roles]
    return FusionClassifier(streams, head.to(ctx.device), views=views).eval()


def fgsm_rows(
    ctx: RunContext, dataset: str, subset: str, test: SplitData, data: SubsetData,
    specs: list[ClassifierSpec], heads: dict[str, LinearHead], source_name: str,
    source: FusionClassifier,
) -> None:
    """FGSM crafted on ``source`` over the subset's test images; every classifier evaluated."""
    cfg = ctx.config.fgsm
    epsilons = pixel_epsilons(ctx, cfg.epsilons, cfg.eps_space)
    needed = sorted({key for spec in specs for key in spec.inputs})
    per_eps = fgsm_sweep_features(
        ctx, test, data.rows, data.labels, source, source_name, epsilons, needed,
        desc=f"{dataset}/{subset} fgsm on {source_name}",
    )
    for eps, features in zip(epsilons, per_eps, strict=True):
        for spec in specs:
            ctx.recorder.add_result(
                dataset=dataset, subset=subset, classifier=spec.name,
                source=source_name, perturbation="fgsm", level=level_of(eps),
                accuracy=head_accuracy(heads[spec.name], spec, features, None, data.labels),
                n=len(data.labels),
            )


def advtrain_rows(
    ctx: RunContext, dataset: str, subset: str, train: SplitData, train_data: SubsetData,
    test: SplitData, test_data: SubsetData, fg_spec: ClassifierSpec, fg_head: LinearHead,
) -> None:
    """Adversarial retraining of the fg classifier (SPEC §3), evaluated under the FGSM sweep
    crafted on the retrained classifier itself (white-box)."""
    cfg = ctx.config.advtrain
    eps = pixel_epsilons(ctx, [cfg.eps], cfg.eps_space)[0]
    description = {
        "kind": "advtrain", "train": train.digest,
        "rows": rows_digest(train_data.rows),
        "init": module_digest(fg_head), "settings": vars(cfg), "eps": eps.tolist(),
        "stream": ctx.streams["fg"].weights_sha256, "seed": ctx.config.seed,
    }

    def compute() -> dict[str, torch.Tensor]:
        head = LinearHead(fg_head.in_dims, fg_head.out_features)
        head.load_state_dict(fg_head.state_dict())
        retrained = adversarial_retrain(
            ctx.streams["fg"], head.to(ctx.device),
            train.rows_loader(train_data.rows, train_data.labels),
            eps=eps.to(ctx.device), adv_fraction=cfg.adv_fraction, epochs=cfg.epochs,
            lr=cfg.lr, train_backbone=cfg.train_backbone, seed=ctx.config.seed,
            device=ctx.device,
        )
        return {k: v.detach().cpu() for k, v in retrained.head.state_dict().items()}

    state = ctx.cache.get_or_compute(description, compute)
    adv_head = LinearHead(fg_head.in_dims, fg_head.out_features)
    adv_head.load_state_dict(state)
    adv_spec = ClassifierSpec("fg-advtrain", fg_spec.inputs)
    source = build_model(ctx, ("fg",), adv_head)
    fgsm_rows(ctx, dataset, subset, test, test_data, [adv_spec], {"fg-advtrain": adv_head},
              "fg-advtrain", source)
    ctx.recorder.info.setdefault("advtrain", {})[f"{dataset}/{subset}"] = {
        "eps_pixel": eps.tolist(), "eps": cfg.eps, "eps_space": cfg.eps_space,
        "adv_fraction": cfg.adv_fraction, "epochs": cfg.epochs,
    }


def whitebox_rows(
    ctx: RunContext, dataset: str, subset: str, test: SplitData, data: SubsetData,
    models: dict[str, FusionClassifier],
) -> None:
    """Iterative white-box attacks (PGD, BIM, AutoAttack) on each target model itself."""
    cfg = ctx.config.whitebox
    rows = data.rows[: cfg.max_images]
    labels = data.labels[: cfg.max_images]
    loader = test.rows_loader(rows, labels)
    for attack_name in cfg.attacks:
        for eps in pixel_epsilons(ctx, cfg.epsilons, ctx.config.fgsm.eps_space):
            for target in cfg.targets:
                model = models[target]
                description = {
                    "kind": attack_name, "split": test.digest, "rows": rows_digest(rows),
                    "model": module_digest(model),
                    "eps": eps.tolist(), "steps": cfg.steps, "restarts": cfg.restarts,
                    "seed": ctx.config.seed,
                }

                def compute(model=model, eps=eps, name=attack_name) -> dict[str, torch.Tensor]:
                    return {"correct": _attack_correct(ctx, model, name, eps, loader)}

                correct = ctx.cache.get_or_compute(description, compute)["correct"]
                ctx.recorder.add_result(
                    dataset=dataset, subset=subset, classifier=target, source=target,
                    perturbation=attack_name, level=level_of(eps),
                    accuracy=float(correct.float().mean()), n=len(labels),
                )


def _attack_settings(ctx: RunContext, name: str, model: FusionClassifier) -> dict:
    """The config's settings that the named torchattacks-backed attack takes."""
    cfg = ctx.config.whitebox
    return {
        "pgd": {"steps": cfg.steps, "restarts": cfg.restarts},
        "bim": {"steps": cfg.steps},
        "autoattack": {"num_classes": model.head.out_features},
    }.get(name, {})


def _attack_correct(ctx: RunContext, model: FusionClassifier, name: str, eps: torch.Tensor,
                    loader: RelabelledLoader) -> torch.Tensor:
    torch.manual_seed(ctx.config.seed)
    eps_value = float(eps.max())  # torchattacks takes a scalar L-inf radius
    attack = make_attack(name, model, eps_value, **_attack_settings(ctx, name, model))
    out = []
    for images, labels, boxes, _ in loader:
        labels = labels.to(ctx.device)
        model.with_boxes([b.to(ctx.device) for b in boxes])
        adversarial = attack(images.to(ctx.device), labels)
        with torch.no_grad():
            out.append((model(adversarial).argmax(1) == labels).cpu())
    return torch.cat(out)
