"""One experiment end to end: datasets -> features -> heads -> sweeps -> analyses -> report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from ctxfusion.config import DatasetConfig, ExperimentConfig
from ctxfusion.data.manifest import Manifest
from ctxfusion.distributed import Group, check_same_on_every_rank, init_from_environment, shutdown
from ctxfusion.errors import ConfigError, CtxfusionError, ResourceError
from ctxfusion.experiments.analyses import blur_example, pca_rows
from ctxfusion.experiments.attack_steps import (
    UNBOUNDED_EPS,
    advtrain_head,
    advtrained,
    beyond_paper,
    check_adaptive_names,
    fgsm_rows,
    fgsm_steps,
    matrix_epsilon,
    pixel_epsilons,
    whitebox_rows,
)
from ctxfusion.experiments.context import RunContext, seed_everything
from ctxfusion.experiments.corruption_steps import corruption_rows
from ctxfusion.experiments.finetune import finetuned_stream
from ctxfusion.experiments.fusion_steps import fusion_heads, heldout_rows
from ctxfusion.experiments.heads import (
    Trial,
    classifier_specs,
    head_correct,
    select_subset,
    subsample_per_class,
    train_heads,
)
from ctxfusion.experiments.recorder import check_run_dir, describe_device, package_versions
from ctxfusion.experiments.rundir import (
    COMPLETE,
    FRESH,
    REPLACE,
    RunDirLock,
    inspect_run_dir,
    move_aside,
)
from ctxfusion.experiments.splits import load_split, prepare_dataset
from ctxfusion.experiments.sweeps import SplitData, blurred_features, split_features
from ctxfusion.features import module_digest
from ctxfusion.io import remove_stale_temp_files, writable_folder_problem
from ctxfusion.paths import expand_path, home_dir
from ctxfusion.perturb.attacks import attack_class
from ctxfusion.roles import advtrain_name, fusion_name
from ctxfusion.schema import RunPaths, WeightRow
from ctxfusion.versioning import registered_versions


def run_experiment(config: ExperimentConfig, out: str | Path, overwrite: bool = False,
                   report: bool = True) -> Path:
    """Run every dataset of ``config`` into the run directory ``out``; returns the path of
    its ``report.html`` (``report=False``: the results, tables and claims are written, the
    figures and report.html are left to ``ctxfusion report``, for sweeps; the path is
    returned all the same).

    Everything that can be checked is checked before ``out`` is created or anything written:
    the output folder, the cache folders, the streams and their weights, the eps in pixel
    space and every dataset's manifest. run.json's ``status`` then says ``running`` until the
    end (``complete``), or ``failed``/``interrupted`` with the ``error``; rerunning on an
    incomplete run directory of the same experiment resumes it (cached features are reused).
    One process writes into ``out`` at a time (:class:`~ctxfusion.experiments.rundir.RunDirLock`);
    a run directory holding a run of another config is refused unless ``overwrite``, which
    moves the old run aside; a complete run of the same config is left as it is.
    """
    out = Path(out)
    group, started = init_from_environment(config.device)
    try:
        return _run(config, out, group, overwrite, report)
    finally:
        if started:
            shutdown()


def _run(config: ExperimentConfig, out: Path, group: Group, overwrite: bool = False,
         report: bool = True) -> Path:
    """:func:`run_experiment` on this rank of ``group`` (a single process: rank 0 of 1), with
    the run directory locked by rank 0."""
    lock, decision = RunDirLock(out), FRESH
    if group.is_main:
        check_run_dir(out, config.experiment, overwrite=overwrite)
        decision = inspect_run_dir(out, config.to_dict(), overwrite)
        if decision != COMPLETE or group.world_size > 1:
            lock.acquire()  # then look again: the previous holder may have changed it
            decision = inspect_run_dir(out, config.to_dict(), overwrite)
        if decision == COMPLETE and group.world_size == 1:
            lock.release()
            print(f"note: {out} is already complete with this config: nothing to run (pass "
                  "--overwrite to run it again; the old run is moved aside)", file=sys.stderr)
            return RunPaths(out).report_html
    try:
        return _run_locked(config, out, group, replace=decision == REPLACE, report=report)
    finally:
        lock.release()


def _run_locked(config: ExperimentConfig, out: Path, group: Group, replace: bool,
                report: bool = True) -> Path:
    """The run proper (``replace``: move the run in ``out`` aside once everything is
    checked; ``report``: build report.html at the end)."""
    check_adaptive_targets(config)
    cache_root = expand_path(config.cache_dir) if config.cache_dir else home_dir() / "features"
    _check_cache_folders(config, cache_root)
    seed_everything(config.seed)
    with group.main_first():  # weights, pretraining and datasets are made once
        ctx = RunContext.create(config, out, group)
        check_pixel_epsilons(ctx)
        manifests = _prepare_datasets(ctx)
    if replace and group.is_main:
        print(f"note: the previous run in {out} was moved to {move_aside(out)}", file=sys.stderr)
    _start(ctx, cache_root)
    group.barrier()  # no rank writes to the cache before rank 0 has removed stale files
    try:
        for dataset in config.datasets:
            with ctx.recorder.timed(f"dataset {dataset.name}"):
                _run_dataset(ctx, dataset, manifests[dataset.name])
            ctx.recorder.write()  # finished datasets are on disk even if a later one fails
        return _finish(ctx, report)
    except KeyboardInterrupt:
        _stop(ctx, "interrupted", "interrupted (Ctrl-C or SIGINT)")
        raise
    except torch.OutOfMemoryError as exc:
        error = ResourceError(out_of_memory_message(ctx, exc))
        _stop(ctx, "failed", str(error))
        raise error from None
    except BaseException as exc:
        _stop(ctx, "failed", str(exc) if isinstance(exc, CtxfusionError)
              else f"internal error: {type(exc).__name__}: {exc}")
        raise


def out_of_memory_message(ctx: RunContext, exc: BaseException) -> str:
    """What to change when the device ran out of memory (the cache keeps finished work)."""
    cfg, where = ctx.config, f"{ctx.config.source_path}: " if ctx.config.source_path else ""
    keys = "cuda.batch_size / cuda.gradient_batch_size" if ctx.device.type == "cuda" \
        else "batch_size / gradient_batch_size"
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"{where}out of memory on {ctx.device} with batch_size = {cfg.batch_size} "
            f"(feature extraction) and gradient_batch_size = {cfg.gradient_batch_size} (attack "
            f"gradients): lower {keys} (or run fewer processes per GPU); what finished is "
            f"cached, so the same command resumes ({first_line})")


def _check_cache_folders(config: ExperimentConfig, cache_root: Path) -> None:
    """The cache home (datasets, weights) and the feature cache must be writable folders."""
    folders = [("$CTXFUSION_HOME", home_dir())]
    if config.cache_dir:
        folders.append((f"{config.source_path}: cache_dir", cache_root))
    for name, folder in folders:
        problem = writable_folder_problem(folder)
        if problem:
            raise ConfigError(f"{name} = {folder}: {problem}: the caches need a folder this "
                              "user can write to")


def check_adaptive_targets(config: ExperimentConfig) -> None:
    """Each ``whitebox.adaptive`` name must be a classifier of the run (checked before any
    work: the names depend on the classifiers, views, alphas and adversarial retraining)."""
    if "whitebox" not in config.steps:
        return
    names = [spec.name for spec in classifier_specs(config)]
    if "advtrain" in config.steps and advtrain_name(config):
        names.append(advtrain_name(config))
    if "fusion" in config.steps and config.fusion.classifier:
        names += [fusion_name(config.fusion.classifier, m) for m in config.fusion.methods]
    try:
        check_adaptive_names(config.whitebox.adaptive, names)
    except ConfigError as exc:  # the same error, naming the config file
        raise ConfigError(f"{config.source_path}: {exc}" if config.source_path else str(exc)
                          ) from None


def check_pixel_epsilons(ctx: RunContext) -> None:
    """Every normalised-space eps must be at most 1 in pixel space with the run's std (the
    first stream's); pixel-space eps were checked when the config was loaded."""
    cfg = ctx.config
    settings = [("fgsm.epsilons", cfg.fgsm.epsilons, cfg.fgsm.eps_space),
                ("whitebox.epsilons", cfg.whitebox.epsilons, cfg.fgsm.eps_space),
                ("advtrain.eps", [cfg.advtrain.eps], cfg.advtrain.eps_space)]
    std = ctx.normalization_std()
    for key, epsilons, space in settings:
        if space != "normalized":
            continue
        for i, eps in enumerate(epsilons):
            pixel = float(eps) * float(std.max())
            if pixel > 1:
                shown = key if key == "advtrain.eps" else f"{key}[{i}]"
                raise ConfigError(
                    f"{cfg.source_path}: {shown} = {eps} (normalized space) is {pixel:.4g} in "
                    f"pixel space with the std {[round(float(v), 4) for v in std]}: an eps "
                    "must be a finite number in [0, 1] (pixel space)")


def _prepare_datasets(ctx: RunContext) -> dict[str, Manifest]:
    """Every dataset's manifest, before the run directory is created (bad data fails first)."""
    manifests = {}
    for dataset in ctx.config.datasets:
        print(f"[{dataset.name}] preparing data", file=sys.stderr)
        with ctx.recorder.timed("prepare"):
            manifests[dataset.name] = prepare_dataset(dataset)
    return manifests


def _start(ctx: RunContext, cache_root: Path) -> None:
    """Create the run directory, remove stale temporary files of killed runs, write run.json
    (status ``running``) and config.yaml; on the other ranks of a sharded run, only fill in
    what run.json would hold."""
    config, recorder = ctx.config, ctx.recorder
    if ctx.group.is_main:
        ctx.out.mkdir(parents=True, exist_ok=True)
        for folder in (ctx.out, cache_root, home_dir() / "datasets"):
            for path in remove_stale_temp_files(folder):
                print(f"note: removed {path}, left by a run that was killed", file=sys.stderr)
    recorder.info.update({
        "config_path": config.source_path,
        "versions": package_versions(),
        "computations": registered_versions(),
        "device": describe_device(ctx.device),
        "seed": config.seed,
        "repeats": config.repeats,
        "seeds": config.seeds,
        "alpha_reduction": config.heads.alpha_reduction,
        "normalization": config.normalization,
        "streams": {role: s.describe() for role, s in ctx.streams.items()},
        "classifiers": config.classifiers,
        "threat_model": _threat_model(ctx),
        "execution": _execution(ctx),
        "datasets": {},
    })
    recorder.write_run_json()
    recorder.write_config(config.to_dict())


def _finish(ctx: RunContext, build: bool = True) -> Path:
    """Record the cache use, build the report (``build``; else the claims alone) and mark
    the run complete."""
    recorder = ctx.recorder
    recorder.info["cache"] = {"hits": ctx.cache.hits, "misses": ctx.cache.misses}
    recorder.write()
    report = RunPaths(ctx.out).report_html
    if ctx.group.is_main:  # rank 0 writes the report
        with recorder.timed("report" if build else "claims"):
            if build:
                from ctxfusion.report import build_report

                report = build_report(ctx.out, status="complete")  # every figure the data has
            else:
                from ctxfusion.report.claims import evaluate_run, write_claims

                write_claims(evaluate_run(ctx.out), ctx.out)
        # the report's computations (the claims) are declared once it is imported
        recorder.info["computations"] = registered_versions()
        recorder.status = "complete"
        recorder.write()
    ctx.group.barrier()  # every rank returns a finished run directory
    return report


def _stop(ctx: RunContext, status: str, error: str) -> None:
    """Record in run.json why the run ended early. Only the datasets written with their
    results stay listed; a failure to write is not allowed to hide the original error."""
    recorder = ctx.recorder
    recorder.status, recorder.error = status, error
    finished = _finished_datasets(ctx.out)
    recorder.info["datasets"] = {name: info for name, info in
                                 recorder.info.get("datasets", {}).items() if name in finished}
    try:
        recorder.write_run_json()
    except (OSError, CtxfusionError) as exc:
        print(f"note: could not record the status in {recorder.paths.run_json}: {exc}",
              file=sys.stderr)


def _finished_datasets(out: Path) -> set[str]:
    """Datasets listed in the run.json on disk (written once a dataset has finished)."""
    try:
        return set(json.loads(RunPaths(out).run_json.read_text(encoding="utf-8"))["datasets"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _execution(ctx: RunContext) -> dict:
    """How the run was executed: processes, backend (none in a single process), loader
    workers, batch sizes on this device, precision and memory layout of forward passes."""
    return {"world_size": ctx.group.world_size, "backend": ctx.group.backend,
            "num_workers": ctx.config.num_workers, "batch_size": ctx.config.batch_size,
            "gradient_batch_size": ctx.config.gradient_batch_size,
            **ctx.execution.describe()}


def _threat_model(ctx: RunContext) -> dict:
    cfg = ctx.config
    epsilons = pixel_epsilons(ctx, cfg.fgsm.epsilons, cfg.fgsm.eps_space)
    std = ctx.normalization_std()
    attacks = [
        {"name": "fgsm", "source": source, "evaluated_on": "every classifier",
         "setting": "white-box for the source, transfer for the others",
         "images": "every test image of the subset"}
        for source in cfg.fgsm.sources
    ]
    if cfg.fgsm.whitebox:
        attacks.append({"name": "fgsm", "source": "each classifier itself",
                        "evaluated_on": "every other classifier", "setting": "white-box",
                        "images": f"class-stratified sample of <= {cfg.whitebox.max_images}"})
    if "advtrain" in cfg.steps:
        attacks.append({"name": "fgsm", "source": "fg-advtrain", "evaluated_on": ["fg-advtrain"],
                        "setting": "white-box", "images": "every test image of the subset"})
    if "whitebox" in cfg.steps:
        attacks += [
            {"name": name, "source": target, "evaluated_on": [target], "setting": "white-box",
             "steps": cfg.whitebox.steps, "restarts": cfg.whitebox.restarts,
             "images": f"class-stratified sample of <= {cfg.whitebox.max_images}",
             "epsilons_pixel": [e.tolist() for e in
                                pixel_epsilons(ctx, cfg.whitebox.epsilons, cfg.fgsm.eps_space)]}
            for name in cfg.whitebox.attacks for target in cfg.whitebox.targets
        ]
    attacks += _beyond_paper_attacks(ctx)
    return {
        "norm": "Linf",
        "eps_space": cfg.fgsm.eps_space,
        "epsilons_config": cfg.fgsm.epsilons,
        "epsilons_pixel": [e.tolist() for e in epsilons],
        "epsilons_normalized": [(e / std).tolist() for e in epsilons],
        "normalization_std": std.tolist(),
        "attacks": attacks,
    }


def _beyond_paper_attacks(ctx: RunContext) -> list[dict]:
    """run.json's record of the evaluation beyond the paper: the transfer matrix, the
    regions, the adaptive and unbounded attacks and the corruptions, with their budgets."""
    cfg, wb = ctx.config, ctx.config.whitebox
    images = f"class-stratified sample of <= {wb.max_images}"
    repeats = ("every repeat" if cfg.attack_repeats is None
               else f"the first {cfg.attack_repeats} repeat(s)")
    region_eps = [e.tolist() for e in pixel_epsilons(ctx, wb.region_epsilons or wb.epsilons,
                                                     cfg.fgsm.eps_space)]
    out = []
    if "fgsm" in cfg.steps and cfg.fgsm.whitebox:
        out.append({"name": "fgsm", "source": "each classifier", "setting": "transfer matrix",
                    "evaluated_on": "every classifier", "images": images, "repeats": repeats,
                    "eps": matrix_epsilon(ctx), "regions": cfg.fgsm.regions})
    if "whitebox" in cfg.steps:
        out += [{"name": name, "source": target, "evaluated_on": [target],
                 "setting": "white-box", "regions": [r for r in wb.regions if r != "image"],
                 "epsilons_pixel": region_eps, "steps": wb.steps, "images": images,
                 "repeats": repeats}
                for name in wb.attacks for target in wb.targets
                if any(r != "image" for r in wb.regions)]
        maskable = [name for name in wb.attacks if attack_class(name).maskable]
        out += [{"name": maskable[0], "source": target, "evaluated_on": [target],
                 "setting": "adaptive", "epsilons_pixel": region_eps, "steps": wb.steps,
                 "images": images, "repeats": repeats} for target in wb.adaptive if maskable]
        if wb.sanity:
            out += [{"name": "pgd", "source": target, "evaluated_on": [target],
                     "setting": "white-box, unbounded (sanity check)",
                     "epsilons_pixel": [UNBOUNDED_EPS], "steps": wb.steps, "images": images,
                     "repeats": repeats} for target in wb.targets]
    if "corruptions" in cfg.steps:
        out.append({"name": "corruptions", "setting": "no attacker",
                    "corruptions": cfg.corruptions.names,
                    "severities": cfg.corruptions.severities,
                    "regions": cfg.corruptions.regions, "evaluated_on": "every classifier",
                    "images": f"class-stratified sample of <= {cfg.corruptions.max_images}",
                    "repeats": repeats})
    return out


def _run_dataset(ctx: RunContext, dataset: DatasetConfig, manifest: Manifest) -> None:
    cfg, recorder = ctx.config, ctx.recorder
    steps = set(dataset.steps if dataset.steps is not None else cfg.steps)
    image_size = dataset.image_size or next(iter(ctx.streams.values())).input_size
    if not manifest.has_boxes:
        for step in ("blur", "pca"):
            if step in steps and dataset.steps is not None:
                recorder.note(f"{dataset.name}: step {step} skipped: the dataset has no boxes")
        steps -= {"blur", "pca"}
    train = load_split(cfg, dataset, manifest, "train", image_size, ctx.device)
    test = load_split(cfg, dataset, manifest, "test", image_size, ctx.device)
    if cfg.finetune.enabled:  # this dataset's context holds the fine-tuned stream
        with recorder.timed("finetune"):
            ctx = ctx.with_stream(cfg.finetune.stream,
                                  finetuned_stream(ctx, train, len(manifest.classes)))
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
        recorder.info["datasets"][dataset.name]["finetuned_stream"] = {
            "role": cfg.finetune.stream, **ctx.streams[cfg.finetune.stream].describe()}
    print(f"[{dataset.name}] {len(train.labels)} train / {len(test.labels)} test images, "
          f"{image_size} px", file=sys.stderr)
    with recorder.timed("features"):
        train_features = split_features(ctx, train, {"kind": "none"}, desc="train features")
        clean_features = split_features(ctx, test, {"kind": "none"}, desc="test features")
    with recorder.timed("heads"):
        trials = _train_trials(ctx, dataset.name, manifest, subsets, train, train_features,
                               test, clean_features)
    if "fusion" in steps:
        with recorder.timed("fusion"):
            fusion_heads(ctx, dataset.name, train, trials, train_features, manifest.has_boxes)
    with recorder.timed("heads"):
        if ctx.group.sharded:  # every rank attacks the same heads
            check_same_on_every_rank(ctx.group, "heads", module_digest(torch.nn.ModuleList(
                [head for trial in trials for head in trial.heads.values()])))
    _score(ctx, dataset.name, trials, clean_features, "none", 0.0)
    if "blur" in steps:
        with recorder.timed("blur"):
            for sigma in tqdm(cfg.blur.sigmas, desc=f"{dataset.name} blur sweep", leave=False):
                _score(ctx, dataset.name, trials, blurred_features(ctx, test, sigma), "blur",
                       float(sigma))
        if ctx.group.is_main:
            blur_example(ctx, dataset.name, test)
    if "pca" in steps:
        with recorder.timed("pca"):
            pca_rows(ctx, dataset.name, manifest, test, clean_features)
    _attack_steps(ctx, dataset.name, steps, train, test, trials, manifest.has_boxes)
    if "fusion" in steps:
        with recorder.timed("fusion"):
            heldout_rows(ctx, dataset.name, test, trials, steps, manifest.has_boxes)
    recorder.compare(dataset.name, cfg.classifiers)


def _attack_steps(ctx: RunContext, name: str, steps: set[str], train: SplitData,
                  test: SplitData, trials: list[Trial], has_boxes: bool = False) -> None:
    """Adversarial retraining, FGSM sweeps, iterative white-box and adaptive attacks and
    corruptions of every trial (the evaluation beyond the paper on the first
    ``attack_repeats`` seeds)."""
    recorder, chosen = ctx.recorder, ctx.config.attack_subsets
    for trial in trials:
        if chosen is not None and trial.subset not in chosen:
            continue
        if "advtrain" in steps:
            with recorder.timed("advtrain"):
                advtrain_head(ctx, name, train, trial)
        if "fgsm" in steps:
            with recorder.timed("fgsm"):
                fgsm_steps(ctx, name, test, trial, has_boxes)
        elif adv := advtrained(ctx, trial):  # the baseline is always scored under its attack
            with recorder.timed("advtrain"):
                fgsm_rows(ctx, name, test, trial, adv, [trial.spec(adv)])
        if "whitebox" in steps:
            with recorder.timed("whitebox"):
                whitebox_rows(ctx, name, test, trial, has_boxes)
        if "corruptions" in steps and beyond_paper(ctx, trial):
            with recorder.timed("corruptions"):
                corruption_rows(ctx, name, test, trial, has_boxes)


def _train_trials(
    ctx: RunContext, name: str, manifest: Manifest, subsets: list[str], train: SplitData,
    train_features: dict[str, torch.Tensor], test: SplitData,
    test_features: dict[str, torch.Tensor],
) -> list[Trial]:
    """Per subset and seed: every head trained on the cached train features (of the seed's
    training sample), and each joint head's per-stream contributions recorded."""
    cfg = ctx.config
    trials = []
    for subset in subsets:
        classes = manifest.subset_classes(subset)
        train_all = select_subset(train.labels, manifest.classes, classes)
        test_data = select_subset(test.labels, manifest.classes, classes)
        for seed in cfg.seeds:
            train_data = subsample_per_class(train_all, cfg.heads.train_fraction, seed)
            specs = classifier_specs(cfg)
            trial = Trial(subset, seed, train_data, test_data, specs=specs,
                          heads=train_heads(cfg, specs, train_features, train_data, seed),
                          clean_features=test_features)
            trials.append(trial)
            _record_contributions(ctx, name, trial, train_features, test_features)
    return trials


def _record_contributions(ctx: RunContext, name: str, trial: Trial,
                          train_features: dict[str, torch.Tensor],
                          test_features: dict[str, torch.Tensor]) -> None:
    """weights.csv rows: per fused head and stream, mean |w| (the paper's measure) and the
    scale-aware contributions (see ``ctxfusion.schema``)."""
    reduction, n_train = ctx.config.heads.alpha_reduction, len(trial.train.labels)
    for spec in trial.specs:
        if len(spec.inputs) < 2:  # contributions of the streams of fused heads only
            continue
        head = trial.heads[spec.name]
        train_in = [train_features[k][trial.train.rows] for k in spec.inputs]
        test_in = [test_features[k][trial.test.rows] for k in spec.inputs]
        alpha_sum = spec.alpha if reduction == "sum" else spec.alpha * n_train
        for key, mean_abs, scaled, share in zip(
                spec.inputs, head.stream_weight_means(), head.scaled_weight_means(train_in),
                head.logit_shares(test_in), strict=True):
            ctx.recorder.weights.append(WeightRow(
                dataset=name, subset=trial.subset, classifier=spec.name, alpha=spec.alpha,
                alpha_reduction=reduction, alpha_sum=alpha_sum, alpha_mean=alpha_sum / n_train,
                seed=trial.seed, stream=key.split("@")[0], mean_abs_weight=mean_abs,
                scaled_weight=scaled, logit_share=share,
            ))


def _score(ctx: RunContext, name: str, trials: list[Trial],
           features: dict[str, torch.Tensor], perturbation: str, level: float) -> None:
    """One results row per trial and classifier on test features of one perturbation."""
    for trial in trials:
        for spec in trial.specs:
            ctx.recorder.add_result(
                dataset=name, subset=trial.subset, classifier=spec.name,
                perturbation=perturbation, level=level, seed=trial.seed, rows=trial.test.rows,
                correct=head_correct(trial.heads[spec.name], spec, features, trial.test.rows,
                                     trial.test.labels),
            )
