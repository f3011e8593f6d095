"""The attack steps of an experiment: FGSM sweeps (transfer and white-box), adversarial
retraining, iterative white-box attacks.

Threat models (the ``threat`` column): FGSM crafted on a source classifier and fed to every
classifier is ``transfer`` for all but the source (``whitebox`` for the source itself).
With ``fgsm.whitebox`` every other classifier is also attacked through its own gradient, on
the class-stratified white-box sample, so each classifier of a comparison meets both.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ctxfusion.distributed import main_get_or_compute, must_load, sharded_get_or_compute
from ctxfusion.experiments.context import RunContext
from ctxfusion.experiments.heads import ClassifierSpec, SubsetData, Trial, head_correct
from ctxfusion.experiments.heads import stratified_sample as _stratified
from ctxfusion.experiments.sweeps import SplitData, fgsm_sweep_features, rows_digest
from ctxfusion.features import module_digest
from ctxfusion.models import FusionClassifier, LinearHead
from ctxfusion.perturb.attacks import eps_to_pixel, make_attack
from ctxfusion.roles import advtrain_name
from ctxfusion.train import adversarial_retrain


def advtrained(ctx: RunContext, trial: Trial) -> str | None:
    """The name of the trial's adversarially retrained classifier, if it has one."""
    name = advtrain_name(ctx.config)
    return name if name in trial.heads else None


def pixel_epsilons(ctx: RunContext, epsilons: list[float], space: str) -> list[torch.Tensor]:
    """Each eps as a pixel-space tensor: a scalar, or per-channel (C,) for normalised eps."""
    std = ctx.normalization_std()
    return [torch.as_tensor(eps_to_pixel(e, space, std), dtype=torch.float32) for e in epsilons]


def level_of(eps_pixel: torch.Tensor) -> float:
    """The results-table level of an eps: its pixel value (mean over channels if per-channel)."""
    return round(float(eps_pixel.mean()), 6)


def _stream_view(ctx: RunContext, trial: Trial, key: str) -> tuple:
    """(stream, view) of a feature key: the run's streams, or a stream of this trial only."""
    return trial.extra_streams.get(key) or ctx.stream_views()[key]


def spec_model(ctx: RunContext, trial: Trial, name: str) -> FusionClassifier:
    """Classifier ``name`` of ``trial`` as one pixel-space model (streams, views and head)."""
    spec = trial.spec(name)
    pairs = [_stream_view(ctx, trial, key) for key in spec.inputs]
    return FusionClassifier([stream for stream, _ in pairs], trial.heads[name].to(ctx.device),
                            views=[view for _, view in pairs]).eval()


def whitebox_sample(ctx: RunContext, trial: Trial) -> SubsetData:
    """The trial's white-box test sample: at most ``whitebox.max_images``, even across classes."""
    return _stratified(trial.test, ctx.config.whitebox.max_images, trial.seed)


def fgsm_rows(ctx: RunContext, dataset: str, test: SplitData, trial: Trial, source: str,
              evaluated: list[ClassifierSpec], data: SubsetData | None = None) -> None:
    """FGSM crafted on classifier ``source`` over ``data`` (default: the trial's test rows);
    every classifier of ``evaluated`` classified on the same adversarial images."""
    data = data or trial.test
    epsilons = pixel_epsilons(ctx, ctx.config.fgsm.epsilons, ctx.config.fgsm.eps_space)
    needed = sorted({key for spec in evaluated for key in spec.inputs})
    # eps = 0 leaves every image as it is: its features are the clean ones, already computed
    clean = {k: trial.clean_features[k][data.rows] for k in needed if k in trial.clean_features}
    reuse_clean = len(clean) == len(needed)
    attacked = [e for e in epsilons if not (reuse_clean and not bool(e.any()))]
    per_eps = iter(fgsm_sweep_features(
        ctx, test, data.rows, data.labels, spec_model(ctx, trial, source), source, attacked,
        {key: _stream_view(ctx, trial, key) for key in needed},
        desc=f"{dataset}/{trial.subset} fgsm on {source}",
    ) if attacked else [])
    for eps in epsilons:
        features = next(per_eps) if any(eps is e for e in attacked) else clean
        for spec in evaluated:
            ctx.recorder.add_result(
                dataset=dataset, subset=trial.subset, classifier=spec.name, source=source,
                threat="whitebox" if spec.name == source else "transfer", perturbation="fgsm",
                level=level_of(eps), seed=trial.seed, rows=data.rows,
                correct=head_correct(trial.heads[spec.name], spec, features, None, data.labels),
            )


def fgsm_steps(ctx: RunContext, dataset: str, test: SplitData, trial: Trial) -> None:
    """The FGSM sweeps of one trial: transfer from each configured source to every classifier,
    then each remaining classifier through its own gradient on the white-box sample."""
    cfg = ctx.config.fgsm
    for source in cfg.sources:
        fgsm_rows(ctx, dataset, test, trial, source, trial.specs)
    adv = advtrained(ctx, trial)
    if adv:  # its own sweep over every test image, as the paper's baseline
        fgsm_rows(ctx, dataset, test, trial, adv, [trial.spec(adv)])
    if cfg.whitebox:
        sample = whitebox_sample(ctx, trial)
        done = set(cfg.sources) | {adv}
        for spec in trial.specs:
            if spec.name not in done:
                fgsm_rows(ctx, dataset, test, trial, spec.name, [spec], sample)


def advtrain_head(ctx: RunContext, dataset: str, train: SplitData, trial: Trial) -> None:
    """Adversarial retraining of the trial's ``advtrain.classifier`` (fg: SPEC §3) on its
    training rows, shuffled; adds ``<classifier>-advtrain`` (head, spec and, with
    ``train_backbone``, its own backbone) to the trial."""
    cfg = ctx.config.advtrain
    name = advtrain_name(ctx.config)
    eps = pixel_epsilons(ctx, [cfg.eps], cfg.eps_space)[0]
    base_head, base_spec = trial.heads[cfg.classifier], trial.spec(cfg.classifier)
    (base_key,) = base_spec.inputs
    stream, view = ctx.stream_views()[base_key]
    data = trial.train
    if cfg.max_train_images is not None:
        data = _stratified(data, cfg.max_train_images, trial.seed)
    description = {
        "kind": "advtrain", "train": train.digest, "rows": rows_digest(data.rows),
        "init": module_digest(base_head), "settings": vars(cfg), "eps": eps.tolist(),
        "stream": ctx.identity(stream), "seed": trial.seed,
        "execution": ctx.execution.describe(),
    }

    def compute() -> dict[str, torch.Tensor]:
        retrained = adversarial_retrain(
            stream, base_head, train.rows_loader(data.rows, data.labels, shuffle_seed=trial.seed),
            eps=eps.to(ctx.device), adv_fraction=cfg.adv_fraction, epochs=cfg.epochs,
            lr=cfg.lr, train_backbone=cfg.train_backbone, seed=trial.seed, device=ctx.device,
            gradient_batch_size=ctx.config.gradient_batch_size,
        )
        keep = "" if cfg.train_backbone else "head."  # a frozen backbone is not stored again
        return {k: v.detach().cpu() for k, v in retrained.state_dict().items()
                if k.startswith(keep)}

    state = main_get_or_compute(ctx.cache, description, compute, ctx.group)
    adv_head = LinearHead(base_head.in_dims, base_head.out_features)
    adv_head.load_state_dict({k[len("head."):]: v for k, v in state.items()
                              if k.startswith("head.")})
    inputs = base_spec.inputs
    if cfg.train_backbone:  # its features are its own: a stream-view of this trial only
        adv_stream = ctx.copy_stream(stream, {k[len("streams.0."):]: v for k, v in state.items()
                                              if k.startswith("streams.0.")})
        inputs = (f"{name}@{base_key.split('@')[1]}",)
        trial.extra_streams[inputs[0]] = (adv_stream, view)
    trial.heads[name] = adv_head
    trial.specs.append(ClassifierSpec(name, inputs))
    ctx.recorder.info.setdefault("advtrain", {})[f"{dataset}/{trial.subset}"] = {
        "eps_pixel": eps.tolist(), "eps": cfg.eps, "eps_space": cfg.eps_space,
        "adv_fraction": cfg.adv_fraction, "epochs": cfg.epochs,
        "train_backbone": cfg.train_backbone, "n_train": len(data.rows),
    }


def whitebox_rows(ctx: RunContext, dataset: str, test: SplitData, trial: Trial) -> None:
    """Iterative white-box attacks (PGD, BIM, AutoAttack) on each target classifier itself,
    on the trial's class-stratified white-box sample."""
    cfg = ctx.config.whitebox
    data = whitebox_sample(ctx, trial)
    # iterative attacks hold a backward graph per batch: gradient_batch_size bounds it
    loader = test.rows_loader(data.rows, data.labels,
                              batch_size=ctx.config.gradient_batch_size)
    for attack_name in cfg.attacks:
        for eps in pixel_epsilons(ctx, cfg.epsilons, ctx.config.fgsm.eps_space):
            for target in cfg.targets:
                model = spec_model(ctx, trial, target)
                description = {
                    "kind": attack_name, "split": test.digest, "rows": rows_digest(data.rows),
                    "model": module_digest(model), "eps": eps.tolist(),
                    "settings": _attack_settings(ctx, attack_name, model), "seed": trial.seed,
                    "execution": ctx.execution.describe(),
                }

                def compute(part: DataLoader, positions: list[int] | None, model=model,
                            eps=eps, name=attack_name) -> dict[str, dict]:
                    return {"attack": {"correct": _attack_correct(
                        ctx, model, name, eps, part, positions, trial.seed)}}

                correct = _cached_or_sharded(ctx, description, loader, compute)["correct"]
                ctx.recorder.add_result(
                    dataset=dataset, subset=trial.subset, classifier=target, source=target,
                    threat="whitebox", perturbation=attack_name, level=level_of(eps),
                    seed=trial.seed, rows=data.rows, correct=correct,
                )


def _attack_settings(ctx: RunContext, name: str, model: FusionClassifier) -> dict:
    """The config's settings that the named attack takes (each attack declares them)."""
    from ctxfusion.perturb.attacks import attack_class

    return attack_class(name).settings_from(ctx.config.whitebox, model.head.out_features)


def _cached_or_sharded(ctx: RunContext, description: dict, loader: DataLoader,
                       compute) -> dict[str, torch.Tensor]:
    """The cached tensors of ``description``, else ``compute`` over the loader's batches
    (split across the ranks of a sharded run; ``compute`` returns them under ``attack``)."""
    cached = ctx.cache.load(description)
    if not ctx.group.broadcast(cached is None):
        ctx.cache.hits += 1
        return cached if cached is not None else must_load(ctx.cache, description)
    ctx.cache.misses += 1
    return sharded_get_or_compute(ctx.cache, {"attack": description}, loader, compute,
                                  ctx.group)["attack"]


#: stride between the seeds of consecutive batches of an attack (a prime larger than any
#: seed in use, so no two (seed, batch) pairs share a seed); batch 0 uses the trial's seed
BATCH_SEED_STRIDE = 1_000_003


def _attack_correct(ctx: RunContext, model: FusionClassifier, name: str, eps: torch.Tensor,
                    loader: DataLoader, positions: list[int] | None,
                    seed: int) -> torch.Tensor:
    """Per image of ``loader`` (the batches at ``positions``), whether ``model`` still
    classifies it correctly under the attack. Random starts are seeded per batch, so a
    batch gives the same outcome in a single process and on any rank of a sharded run."""
    eps_value = float(eps.max())  # torchattacks takes a scalar L-inf radius
    settings = _attack_settings(ctx, name, model)
    out = []
    for index, (images, labels, boxes, _) in enumerate(loader):
        position = positions[index] if positions is not None else index
        torch.manual_seed(seed + BATCH_SEED_STRIDE * position)
        attack = make_attack(name, model, eps_value, **settings)
        labels = labels.to(ctx.device)
        model.with_boxes([b.to(ctx.device) for b in boxes])
        adversarial = attack(images.to(ctx.device), labels)
        with ctx.execution.forward():
            out.append((model(ctx.execution.layout(adversarial)).argmax(1) == labels).cpu())
    return torch.cat(out)
