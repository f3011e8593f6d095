"""The attack steps of an experiment: FGSM sweeps (transfer and white-box), the transfer
matrix, adversarial retraining, iterative white-box and adaptive attacks, in threat regions.

Threat models (the ``threat`` column): FGSM crafted on a source classifier and fed to every
classifier is ``transfer`` for all but the source (``whitebox`` for the source itself).
With ``fgsm.whitebox`` every other classifier is also attacked through its own gradient, on
the class-stratified white-box sample, so each classifier of a comparison meets both; at the
transfer-matrix eps every classifier classifies those images too. An attack on a defence
through its own mechanism is ``adaptive``. The ``region`` column says where the attack may
change pixels (:mod:`ctxfusion.perturb.regions`).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from ctxfusion.distributed import main_get_or_compute, must_load, sharded_get_or_compute
from ctxfusion.errors import ConfigError
from ctxfusion.experiments.context import RunContext
from ctxfusion.experiments.heads import ClassifierSpec, SubsetData, Trial, head_correct
from ctxfusion.experiments.heads import stratified_sample as _stratified
from ctxfusion.experiments.sweeps import SplitData, fgsm_sweep_features, rows_digest
from ctxfusion.features import FEATURES, module_digest
from ctxfusion.models import FusionClassifier, LinearHead
from ctxfusion.perturb.attacks import FGSM, attack_class, eps_to_pixel, make_attack
from ctxfusion.perturb.regions import REGION_MASKS, attack_in_region, region_mask
from ctxfusion.roles import advtrain_name
from ctxfusion.train import ADVERSARIAL_RETRAINING, adversarial_retrain
from ctxfusion.versioning import versioned


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


def stream_view(ctx: RunContext, trial: Trial, key: str) -> tuple:
    """(stream, view) of a feature key: the run's streams, or a stream of this trial only
    (such as an adversarially retrained backbone)."""
    return trial.extra_streams.get(key) or ctx.stream_views()[key]


def spec_model(ctx: RunContext, trial: Trial, name: str) -> FusionClassifier:
    """Classifier ``name`` of ``trial`` as one pixel-space model (streams, views and head)."""
    spec = trial.spec(name)
    pairs = [stream_view(ctx, trial, key) for key in spec.inputs]
    return FusionClassifier([stream for stream, _ in pairs], trial.heads[name].to(ctx.device),
                            views=[view for _, view in pairs]).eval()


def whitebox_sample(ctx: RunContext, trial: Trial) -> SubsetData:
    """The trial's white-box test sample: at most ``whitebox.max_images``, even across classes."""
    return _stratified(trial.test, ctx.config.whitebox.max_images, trial.seed)


def beyond_paper(ctx: RunContext, trial: Trial) -> bool:
    """Whether the evaluation beyond the paper (transfer matrix, regions, iterative and
    adaptive attacks, corruptions) runs on this trial: its seed is among the first
    ``attack_repeats``."""
    repeats = ctx.config.attack_repeats
    return repeats is None or trial.seed < ctx.config.seed + repeats


def usable_regions(ctx: RunContext, dataset: str, has_boxes: bool, regions: list[str],
                   key: str) -> list[str]:
    """``regions`` that the dataset allows: box and background need boxes (noted if dropped)."""
    if has_boxes:
        return list(regions)
    dropped = [r for r in regions if r != "image"]
    if dropped:
        ctx.recorder.note(f"{dataset}: {key} {', '.join(dropped)} skipped: the dataset has no "
                          "boxes")
    return [r for r in regions if r == "image"]


def matrix_epsilon(ctx: RunContext) -> float:
    """The eps (config space) of the transfer matrix: the middle non-zero FGSM eps."""
    nonzero = sorted(e for e in ctx.config.fgsm.epsilons if e > 0)
    return nonzero[len(nonzero) // 2] if nonzero else 0.0


def fgsm_features(ctx: RunContext, dataset: str, test: SplitData, trial: Trial, source: str,
                  evaluated: list[ClassifierSpec], data: SubsetData | None = None,
                  region: str = "image", epsilons: list[torch.Tensor] | None = None
                  ) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Per eps of ``epsilons`` (default: the config's, in pixels): the eps and the features,
    for every input of ``evaluated``, of the FGSM images crafted on classifier ``source`` over
    ``data`` (default: the trial's test rows), changing pixels in ``region`` only (cached)."""
    data = data or trial.test
    if epsilons is None:
        epsilons = pixel_epsilons(ctx, ctx.config.fgsm.epsilons, ctx.config.fgsm.eps_space)
    needed = sorted({key for spec in evaluated for key in spec.inputs})
    # eps = 0 leaves every image as it is: its features are the clean ones, already computed
    clean = {k: trial.clean_features[k][data.rows] for k in needed if k in trial.clean_features}
    reuse_clean = len(clean) == len(needed)
    attacked = [e for e in epsilons if not (reuse_clean and not bool(e.any()))]
    per_eps = iter(fgsm_sweep_features(
        ctx, test, data.rows, data.labels, spec_model(ctx, trial, source), source, attacked,
        {key: stream_view(ctx, trial, key) for key in needed},
        desc=f"{dataset}/{trial.subset} fgsm on {source} ({region})", region=region,
    ) if attacked else [])
    return [(eps, next(per_eps) if any(eps is e for e in attacked) else clean)
            for eps in epsilons]


def fgsm_rows(ctx: RunContext, dataset: str, test: SplitData, trial: Trial, source: str,
              evaluated: list[ClassifierSpec], data: SubsetData | None = None,
              region: str = "image", epsilons: list[torch.Tensor] | None = None) -> None:
    """FGSM crafted on classifier ``source`` (:func:`fgsm_features`); every classifier of
    ``evaluated`` classified on the same adversarial images."""
    data = data or trial.test
    for eps, features in fgsm_features(ctx, dataset, test, trial, source, evaluated, data,
                                       region, epsilons):
        for spec in evaluated:
            ctx.recorder.add_result(
                dataset=dataset, subset=trial.subset, classifier=spec.name, source=source,
                threat="whitebox" if spec.name == source else "transfer", perturbation="fgsm",
                region=region, level=level_of(eps), seed=trial.seed, rows=data.rows,
                correct=head_correct(trial.heads[spec.name], spec, features, None, data.labels),
            )


def fgsm_steps(ctx: RunContext, dataset: str, test: SplitData, trial: Trial,
               has_boxes: bool = False) -> None:
    """The FGSM sweeps of one trial: transfer from each configured source to every classifier,
    then each remaining classifier through its own gradient on the white-box sample (with the
    transfer matrix at one eps), then every classifier in each further region."""
    cfg = ctx.config.fgsm
    for source in cfg.sources:
        fgsm_rows(ctx, dataset, test, trial, source, trial.specs)
    adv = advtrained(ctx, trial)
    if adv:  # its own sweep over every test image, as the paper's baseline
        fgsm_rows(ctx, dataset, test, trial, adv, [trial.spec(adv)])
    beyond = beyond_paper(ctx, trial)
    if cfg.whitebox:
        sample = whitebox_sample(ctx, trial)
        done = set(cfg.sources) | {adv}
        for spec in trial.specs:
            if spec.name not in done:
                fgsm_rows(ctx, dataset, test, trial, spec.name, [spec], sample)
        if beyond:
            transfer_matrix_rows(ctx, dataset, test, trial, sample, set(cfg.sources))
    regions = usable_regions(ctx, dataset, has_boxes, cfg.regions, "fgsm.regions")
    if cfg.whitebox and beyond:
        for region in regions:
            if region == "image":
                continue
            for spec in trial.specs:
                fgsm_rows(ctx, dataset, test, trial, spec.name, [spec], sample, region=region)


def transfer_matrix_rows(ctx: RunContext, dataset: str, test: SplitData, trial: Trial,
                         sample: SubsetData, done: set[str | None]) -> None:
    """The transfer matrix at :func:`matrix_epsilon`: the images each classifier's own FGSM
    crafts on the white-box sample, classified by every other classifier (threat transfer).
    The diagonal is the white-box sweep itself; the configured sources' rows (every test
    image) are their transfer sweeps."""
    (eps,) = pixel_epsilons(ctx, [matrix_epsilon(ctx)], ctx.config.fgsm.eps_space)
    if not bool(eps.any()):
        return
    for spec in trial.specs:
        if spec.name in done:
            continue
        others = [other for other in trial.specs if other.name != spec.name]
        fgsm_rows(ctx, dataset, test, trial, spec.name, others, sample, epsilons=[eps])


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
    description = versioned({
        "kind": "advtrain", "train": train.digest, "rows": rows_digest(data.rows),
        "init": module_digest(base_head), "settings": vars(cfg), "eps": eps.tolist(),
        "stream": ctx.identity(stream), "seed": trial.seed,
        "execution": ctx.execution.describe(),
    }, FEATURES, FGSM, ADVERSARIAL_RETRAINING)

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


#: the eps (pixel space) of the unbounded sanity attack: the whole [0,1] range
UNBOUNDED_EPS = 1.0


def whitebox_rows(ctx: RunContext, dataset: str, test: SplitData, trial: Trial,
                  has_boxes: bool = False) -> None:
    """Iterative white-box attacks (PGD, BIM, APGD, AutoAttack) on each target classifier
    itself, on the trial's class-stratified white-box sample: in the whole image at
    ``whitebox.epsilons``; in the further regions, adaptively on the defences and unbounded
    (the sanity checks) on the trials beyond the paper."""
    cfg = ctx.config.whitebox
    data = whitebox_sample(ctx, trial)
    # iterative attacks hold a backward graph per batch: gradient_batch_size bounds it
    loader = test.rows_loader(data.rows, data.labels,
                              batch_size=ctx.config.gradient_batch_size)
    space = ctx.config.fgsm.eps_space
    jobs = [(name, eps, target, "image", "whitebox") for name in cfg.attacks
            for eps in pixel_epsilons(ctx, cfg.epsilons, space) for target in cfg.targets]
    if beyond_paper(ctx, trial):
        region_eps = pixel_epsilons(ctx, cfg.region_epsilons or cfg.epsilons, space)
        regions = usable_regions(ctx, dataset, has_boxes, cfg.regions, "whitebox.regions")
        maskable = [name for name in cfg.attacks if attack_class(name).maskable]
        if len(regions) > 1 or cfg.adaptive:
            for name in sorted(set(cfg.attacks) - set(maskable)):
                ctx.recorder.note(f"whitebox: {name} runs on the whole image only (it attacks "
                                  "subsets of its batch, so it cannot be restricted to a region)")
        jobs += [(name, eps, target, region, "whitebox") for name in maskable
                 for region in regions if region != "image" for eps in region_eps
                 for target in cfg.targets]
        jobs += [(maskable[0], eps, target, region, "adaptive")
                 for target in adaptive_targets(ctx, trial)
                 for region in adaptive_regions(target, has_boxes) for eps in region_eps
                 if maskable]
        if cfg.sanity:
            jobs += [("pgd", torch.tensor(UNBOUNDED_EPS), target, "image", "whitebox")
                     for target in cfg.targets]
            gradient_check(ctx, dataset, trial, loader, cfg.targets)
    for name, eps, target, region, threat in jobs:
        correct = attack_outcomes(ctx, trial, test, data, loader, name, eps, target, region,
                                  threat)
        ctx.recorder.add_result(
            dataset=dataset, subset=trial.subset, classifier=target, source=target,
            threat=threat, perturbation=name, region=region, level=level_of(eps),
            seed=trial.seed, rows=data.rows, correct=correct,
        )


def adaptive_targets(ctx: RunContext, trial: Trial) -> list[str]:
    """The defences of ``whitebox.adaptive`` that this trial has (ConfigError naming the
    valid ones for a name it does not know)."""
    check_adaptive_names(ctx.config.whitebox.adaptive, [spec.name for spec in trial.specs])
    return list(ctx.config.whitebox.adaptive)


def check_adaptive_names(adaptive: list[str], names: list[str]) -> None:
    """Each name of ``whitebox.adaptive`` must be one of ``names``, the classifiers of the run
    (ConfigError naming the key, the name and the valid ones)."""
    for i, name in enumerate(adaptive):
        if name not in names:
            raise ConfigError(f"whitebox.adaptive[{i}] = {name!r}: not a classifier of this "
                              f"run; valid: {', '.join(names)}")


def adaptive_regions(target: str, has_boxes: bool) -> list[str]:
    """Where an adaptive attack on ``target`` acts: the whole image; for a classifier whose
    view hides the boxes from a stream (``@context``), also the background that stream sees."""
    return ["image", "background"] if has_boxes and target.endswith("@context") else ["image"]


def attack_outcomes(ctx: RunContext, trial: Trial, test: SplitData, data: SubsetData,
                    loader: DataLoader, name: str, eps: torch.Tensor, target: str,
                    region: str, threat: str) -> torch.Tensor:
    """Per image of the sample, whether ``target`` still classifies it right under the
    attack ``name`` at ``eps`` in ``region`` (cached; sharded across the ranks of a run)."""
    model = spec_model(ctx, trial, target)
    description = {
        "kind": name, "split": test.digest, "rows": rows_digest(data.rows),
        "model": module_digest(model), "eps": eps.tolist(),
        "settings": _attack_settings(ctx, name, model), "seed": trial.seed,
        "execution": ctx.execution.describe(),
    }
    masked = region != "image" or threat != "whitebox"
    if masked:  # the white-box image-region caches keep the key they had before regions
        description["region"] = region
    description = versioned(description, FEATURES, attack_class(name).computation,
                            *([REGION_MASKS] if masked else []))

    def compute(part: DataLoader, positions: list[int] | None) -> dict[str, dict]:
        return {"attack": {"correct": _attack_correct(
            ctx, model, name, eps, part, positions, trial.seed,
            region if masked else None)}}

    return _cached_or_sharded(ctx, description, loader, compute)["correct"]


def gradient_check(ctx: RunContext, dataset: str, trial: Trial, loader: DataLoader,
                   targets: list[str]) -> None:
    """run.json ``sanity``: per target, whether the input gradient of the loss is finite on
    the first batch of the sample and the fraction of its images with a non-zero gradient."""
    images, labels, boxes, _ = next(iter(loader))
    images, labels = images.to(ctx.device), labels.to(ctx.device)
    found = {}
    for target in targets:
        model = spec_model(ctx, trial, target)
        model.with_boxes([b.to(ctx.device) for b in boxes])
        x = images.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        found[target] = {"finite": bool(torch.isfinite(grad).all()),
                         "nonzero_fraction": float((grad.flatten(1) != 0).any(1).float().mean())}
    ctx.recorder.info.setdefault("sanity", {})[f"{dataset}/{trial.subset}/seed{trial.seed}"] = found


def _attack_settings(ctx: RunContext, name: str, model: FusionClassifier) -> dict:
    """The config's settings that the named attack takes (each attack declares them)."""
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
                    seed: int, region: str | None = None) -> torch.Tensor:
    """Per image of ``loader`` (the batches at ``positions``), whether ``model`` still
    classifies it correctly under the attack. Random starts are seeded per batch, so a
    batch gives the same outcome in a single process and on any rank of a sharded run.
    ``region``: the attack changes only the pixels of that region
    (:func:`ctxfusion.perturb.regions.attack_in_region`); None: the attack as it is."""
    eps_value = float(eps.max())  # torchattacks takes a scalar L-inf radius
    settings = _attack_settings(ctx, name, model)
    out = []
    for index, (images, labels, boxes, _) in enumerate(loader):
        position = positions[index] if positions is not None else index
        torch.manual_seed(seed + BATCH_SEED_STRIDE * position)
        labels, images = labels.to(ctx.device), images.to(ctx.device)
        boxes = [b.to(ctx.device) for b in boxes]
        model.with_boxes(boxes)
        if region is None:
            adversarial = make_attack(name, model, eps_value, **settings)(images, labels)
        else:
            mask = region_mask(region, boxes, *images.shape[-2:], device=images.device)
            adversarial = attack_in_region(
                lambda module: make_attack(name, module, eps_value, **settings),
                model, images, labels, mask, boxes)
            model.with_boxes(boxes)
        with ctx.execution.forward():
            out.append((model(ctx.execution.layout(adversarial)).argmax(1) == labels).cpu())
    return torch.cat(out)
