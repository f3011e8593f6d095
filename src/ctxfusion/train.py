"""Head training on cached features, all-layer fine-tuning, FGSM adversarial retraining.

Heads are trained on raw features, without standardisation, so that W is the matrix the
model applies to the streams' features and the per-stream mean |w| (SPEC §1, Fig. 4b/d)
compares the streams as the paper does. Adam is scale-robust per parameter, which is what
standardisation would otherwise buy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .distributed import SINGLE, Group
from .errors import ConfigError, DataError
from .models import FusionClassifier, LinearHead, alpha_regularised_loss
from .perturb.attacks import Eps, fgsm_sweep
from .schema.rows import ALPHA_REDUCTIONS
from .versioning import computation

#: the version of :func:`train_linear_head` (every linear head: fg, bg, joint, the alpha
#: heads, the held-out heads and the heads inside the fusion methods)
HEAD_TRAINING = computation("head_training", 1, "linear-head training (train_linear_head, "
                            "alpha_regularised_loss)")
#: the version of :func:`finetune_classifier` (fine-tuned backbones are cached by it)
FINETUNING = computation("finetune", 1, "fine-tuning a stream end to end (finetune_classifier)")
#: the version of :func:`adversarial_retrain` (retrained heads and backbones are cached by it)
ADVERSARIAL_RETRAINING = computation("advtrain", 1, "FGSM adversarial retraining "
                                     "(adversarial_retrain)")


def _check_features(features: Sequence[torch.Tensor], labels: torch.Tensor,
                    num_classes: int | None = None) -> None:
    if not features:
        raise DataError("no feature tensors given: need one (N,D) tensor per stream")
    n = labels.shape[0] if labels.dim() == 1 else -1
    for i, f in enumerate(features):
        if f.dim() != 2 or f.shape[0] != n:
            raise DataError(
                f"features[{i}] has shape {tuple(f.shape)}; every stream needs (N,D) with "
                f"N = {labels.shape[0] if labels.dim() else labels.shape} labels"
            )
    if num_classes is not None and n and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels must lie in [0, {num_classes}); got "
                        f"[{int(labels.min())}, {int(labels.max())}]")


def _check_positive(**values: float) -> None:
    for key, value in values.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{key} must be > 0, got {value!r}")


def train_linear_head(
    features: Sequence[torch.Tensor],
    labels: torch.Tensor,
    num_classes: int,
    *,
    alpha: float = 0.0,
    alpha_reduction: str = "mean",
    penalised_stream: int = 0,
    epochs: int = 200,
    lr: float = 1e-2,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> LinearHead:
    """Fit a linear head on the concatenated features with Adam (SPEC §1, §3.4 alpha loss).

    ``features`` holds one (N, d_i) tensor per stream; the loss is
    ``CE + alpha * ||W_penalised_stream||^2``. ``alpha_reduction="mean"`` averages CE over
    the images; ``"sum"`` is the paper's equation, CE summed over the N training images, whose
    minimiser equals that of ``mean CE + (alpha / N) ||W||^2`` (the loss divided by N), which
    is what a minibatch step estimates. ``batch_size=None`` trains full-batch.
    Deterministic for a seed on CPU: initialisation and shuffling use their own generators.
    """
    _check_features(features, labels, num_classes)
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha >= 0):
        raise ConfigError(f"alpha must be a number >= 0, got {alpha!r}")
    if not 0 <= penalised_stream < len(features):
        raise ConfigError(f"penalised_stream must be in [0, {len(features)}), "
                          f"got {penalised_stream}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}")
    _check_positive(lr=lr, batch_size=batch_size)
    if alpha_reduction not in ALPHA_REDUCTIONS:
        raise ConfigError(f"alpha_reduction must be one of {', '.join(ALPHA_REDUCTIONS)}, "
                          f"got {alpha_reduction!r}")
    if alpha_reduction == "sum":
        alpha = alpha / labels.shape[0]
    x = torch.cat([f.float() for f in features], dim=1)
    y = labels.to(x.device).long()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = LinearHead([f.shape[1] for f in features], num_classes).to(x.device)

    def loss(index: torch.Tensor | slice) -> torch.Tensor:
        return alpha_regularised_loss(head(x[index]), y[index], head, alpha, penalised_stream)

    minimise(head.parameters(), x.shape[0], loss, epochs=epochs, lr=lr, batch_size=batch_size,
             seed=seed, device=x.device, progress=progress, desc=f"head alpha={alpha:g}")
    return head.eval()


def minimise(parameters: Iterable[nn.Parameter], n: int,
             loss: Callable[[torch.Tensor | slice], torch.Tensor], *, epochs: int, lr: float,
             batch_size: int | None, seed: int, device: torch.device | str = "cpu",
             progress: bool = False, desc: str = "") -> None:
    """Adam on ``loss(index)`` over ``n`` examples: ``epochs`` passes of minibatches of
    ``batch_size`` in an order shuffled by a generator seeded ``seed`` (its own: the global RNG
    is not used), or full batch (``index`` = ``slice(None)``, no shuffle) when ``batch_size``
    is None or at least ``n``. Every linear head (:func:`train_linear_head`) and the fusion
    methods' heads (:mod:`ctxfusion.fusion.methods`) are fitted by it."""
    optimizer = torch.optim.Adam(parameters, lr=lr)
    shuffle = torch.Generator().manual_seed(seed)
    size = n if batch_size is None else min(int(batch_size), n)
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        order = torch.randperm(n, generator=shuffle).to(device) if size < n else None
        for start in range(0, n, size):
            index = order[start : start + size] if order is not None else slice(None)
            optimizer.zero_grad(set_to_none=True)
            loss(index).backward()
            optimizer.step()


def accuracy(head: nn.Module, features: Sequence[torch.Tensor], labels: torch.Tensor) -> float:
    """Fraction of examples whose argmax logit under ``head`` is the label."""
    _check_features(features, labels)
    with torch.no_grad():
        logits = head(torch.cat([f.float() for f in features], dim=1))
    return float((logits.argmax(dim=1) == labels.to(logits.device)).float().mean())


def _batches(loader: Iterable, device: torch.device | str):
    for batch in loader:
        images, labels = batch[0], batch[1]
        yield images.to(device), labels.to(device).long()


def _feature_dim(stream: nn.Module) -> int:
    dim = getattr(stream, "feature_dim", None)
    if not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"stream {type(stream).__name__} has no integer feature_dim ({dim!r})")
    return dim


def finetune_classifier(
    stream: nn.Module,
    num_classes: int,
    loader: Iterable,
    *,
    epochs: int = 1,
    lr: float = 1e-4,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    group: Group = SINGLE,
) -> FusionClassifier:
    """Train all layers of ``stream`` plus a new linear head (SPEC §1: CIFAR-10's fg path).

    The backbone changes, so its features cannot come from the feature cache.
    Returns ``FusionClassifier([stream], head)`` (the stream is trained in place).
    With a sharded ``group`` the model is wrapped in ``DistributedDataParallel``: each rank
    passes its slice of every batch (:func:`ctxfusion.distributed.slice_each_batch`), and the
    averaged gradients keep the replicas equal.
    """
    _check_positive(lr=lr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = LinearHead([_feature_dim(stream)], num_classes)
    model = FusionClassifier([stream], head).to(device).train()
    trained: nn.Module = model
    if group.sharded:  # gradients averaged across ranks after every backward pass
        device = torch.device(device)
        trained = DistributedDataParallel(  # a backbone's own classifier is not used
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        bar = tqdm(_batches(loader, device), disable=not progress or not group.is_main,
                   leave=False,
                   desc=f"fine-tuning all layers, epoch {epoch + 1}/{epochs} (not cacheable)")
        for images, labels in bar:
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(trained(images), labels)
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def adversarial_retrain(
    stream: nn.Module,
    head: LinearHead,
    loader: Iterable,
    *,
    eps: Eps = 0.3,
    adv_fraction: float = 0.5,
    epochs: int = 1,
    lr: float = 1e-3,
    train_backbone: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    gradient_batch_size: int | None = None,
) -> FusionClassifier:
    """FGSM adversarial retraining of the fg classifier (Goodfellow et al.; SPEC §3).

    Each batch: craft FGSM examples at ``eps`` (pixel space; a (C,) tensor for per-channel)
    on the current model, then minimise ``(1 - adv_fraction) * CE(x) + adv_fraction *
    CE(x_adv)``: every example is seen clean and adversarial, and the default 0.5 is
    Goodfellow et al.'s ``0.5 J(x) + 0.5 J(x_adv)``. Only the head is trained unless
    ``train_backbone`` (the CIFAR-10 path); a frozen backbone stays in eval mode. The inputs are
    copied, so the plain classifier stays available for comparison; returns the retrained
    ``FusionClassifier([stream], head)``. ``gradient_batch_size`` bounds how many images
    share the attack's backward graph (see :func:`~ctxfusion.perturb.attacks.fgsm_direction`).
    """
    if not 0 <= adv_fraction <= 1:
        raise ConfigError(f"adv_fraction must lie in [0, 1], got {adv_fraction!r}")
    _check_positive(lr=lr)
    if train_backbone:  # a copy whose every layer learns (registry streams come frozen)
        stream = copy.deepcopy(stream)
        for parameter in stream.parameters():
            parameter.requires_grad_(True)
    model = FusionClassifier([stream], copy.deepcopy(head)).to(device)
    trainable = model.parameters() if train_backbone else model.head.parameters()
    optimizer = torch.optim.Adam(trainable, lr=lr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in range(epochs):
            bar = tqdm(_batches(loader, device), disable=not progress, leave=False,
                       desc=f"adversarial retraining eps={_eps_label(eps)}, epoch "
                            f"{epoch + 1}/{epochs}")
            for images, labels in bar:
                (adv,) = fgsm_sweep(model, images, labels, [eps],  # sets eval mode inside
                                    max_batch=gradient_batch_size)
                model.train(train_backbone)
                model.head.train()
                optimizer.zero_grad(set_to_none=True)
                loss = (1 - adv_fraction) * F.cross_entropy(_logits(model, images, train_backbone),
                                                             labels) \
                    + adv_fraction * F.cross_entropy(_logits(model, adv, train_backbone), labels)
                loss.backward()
                optimizer.step()
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def _logits(model: FusionClassifier, images: torch.Tensor, train_backbone: bool) -> torch.Tensor:
    if train_backbone:
        return model(images)
    with torch.no_grad():  # a frozen backbone: no graph, no .grad on its parameters
        features = torch.cat(model.features(images), dim=1)
    return model.head(features)


def _eps_label(eps: Eps) -> str:
    if isinstance(eps, torch.Tensor) and eps.dim() > 0:
        return "[" + ",".join(f"{float(e):.3g}" for e in eps) + "]"
    return f"{float(eps):g}"
