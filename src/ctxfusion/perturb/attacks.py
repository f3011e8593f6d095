"""FGSM with one gradient for a whole eps sweep; registered attacks through torchattacks.

Each attack is a class registered with ``@register_attack`` (:mod:`.attack_registry`):
``fgsm``, ``bim``, ``pgd``, ``apgd`` (APGD-CE), ``eotpgd``, ``autoattack``;
``make_attack(name, model, eps, **settings)`` validates the settings with the attack's own
declaration and builds it.

Threat model: L-inf, eps in [0,1] pixel space (models normalise inside ``forward``). The
paper's eps lives on the normalised input; ``eps_to_pixel(eps, "normalized", std)`` converts
it (per channel: an L-inf ball of radius eps in normalised space is eps * std_c in pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..versioning import computation
from .attack_registry import (
    ATTACKS,
    ITERATIVE_ATTACKS,
    Attack,
    AttackFn,
    Setting,
    attack_class,
    register_attack,
    unregister_attack,
)

if TYPE_CHECKING:
    import torchattacks

EPS_SPACES = ("pixel", "normalized")
__all__ = ["ATTACKS", "EPS_SPACES", "ITERATIVE_ATTACKS", "Attack", "AttackFn", "Setting",
           "attack_class", "eps_to_normalized", "eps_to_pixel", "fgsm_direction", "fgsm_sweep",
           "make_attack", "register_attack", "unregister_attack"]

Eps = float | torch.Tensor

#: the version of the one-gradient FGSM (:func:`fgsm_direction`, :func:`fgsm_sweep`): the images
#: of every FGSM sweep, of adversarial retraining and of the FGSM-trained fusion head
FGSM = computation("fgsm", 1, "one-gradient FGSM sweep (fgsm_direction, fgsm_sweep)")


def fgsm_direction(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                   max_batch: int | None = None,
                   boxes: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """``sign(grad_x CE(model(x), y))`` with the model in eval mode; no parameter gradients.

    ``max_batch`` bounds how many images share one backward graph (None: all at once). The
    graph of a 224-px backbone holds every activation (measured: about 125 MB per image through
    EfficientNet-Lite0 and SqueezeNet together), so this bounds
    an attack's memory; in eval mode each image's gradient is its own, so the direction does not
    depend on it. A model whose views need boxes gets each chunk's ``boxes`` bound (and the
    whole list again at the end).
    """
    if max_batch is not None and max_batch < 1:
        raise ConfigError(f"max_batch = {max_batch}: must be >= 1 (or None for one batch)")
    step = max_batch or max(len(images), 1)
    labels = labels.to(images.device)
    was_training = model.training
    model.eval()
    directions = []
    try:
        for start in range(0, len(images), step):
            part = slice(start, start + step)
            if boxes is not None:
                model.with_boxes(list(boxes[part]))
            x = images[part].clone().detach().requires_grad_(True)
            # summed, not averaged: each image's gradient must not depend on the chunk size
            loss = F.cross_entropy(model(x), labels[part], reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            directions.append(grad.sign().detach())
    finally:
        model.train(was_training)
        if boxes is not None:
            model.with_boxes(list(boxes))
    return torch.cat(directions) if directions else torch.zeros_like(images)


def _eps_tensor(eps: Eps, images: torch.Tensor) -> Eps:
    """A float, or a (C,) per-channel tensor reshaped to broadcast over (N,C,H,W)."""
    if isinstance(eps, torch.Tensor):
        if eps.dim() == 0:
            eps = float(eps)
        elif eps.dim() != 1 or eps.numel() != images.shape[1]:
            raise ConfigError(
                f"per-channel eps must have shape ({images.shape[1]},), got {tuple(eps.shape)}"
            )
        else:
            if bool((eps < 0).any()) or not bool(torch.isfinite(eps).all()):
                raise ConfigError(f"eps must be finite and >= 0, got {eps.tolist()}")
            return eps.to(images.device, images.dtype).view(1, -1, 1, 1)
    if not (isinstance(eps, int | float) and math.isfinite(eps) and eps >= 0):
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def fgsm_sweep(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilons: Sequence[Eps],
    *,
    max_batch: int | None = None,
    boxes: Sequence[torch.Tensor] | None = None,
    mask: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """FGSM at every eps from ONE gradient: ``clamp(x + eps * sign(grad), 0, 1)`` per eps.

    sign(grad) does not depend on eps, so a sweep of K values costs one backward pass
    (DESIGN.md). Each eps is a float or a per-channel (C,) tensor, in pixel space.
    ``max_batch`` and ``boxes``: see :func:`fgsm_direction`. ``mask`` ((N,1,H,W) bool, see
    :func:`ctxfusion.perturb.regions.region_mask`): the step is zero outside it, so those
    pixels stay exactly as they were.
    """
    scaled = [_eps_tensor(e, images) for e in epsilons]
    direction = fgsm_direction(model, images, labels, max_batch=max_batch, boxes=boxes)
    if mask is not None:
        direction = direction * mask.to(direction.device, direction.dtype)
    base = images.detach()
    return [torch.clamp(base + e * direction, min=0, max=1) for e in scaled]


def _std_tensor(std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    std = torch.as_tensor(std, dtype=torch.float64).flatten()
    if std.numel() == 0 or bool((std <= 0).any()):
        raise ConfigError(f"std must be a non-empty list of positive numbers, got {std.tolist()}")
    return std


def eps_to_pixel(eps: Eps, space: str = "pixel",
                 std: Sequence[float] | torch.Tensor | None = None) -> Eps:
    """eps given in ``space`` -> eps in [0,1] pixel space (a (C,) tensor for ``normalized``)."""
    if space not in EPS_SPACES:
        raise ConfigError(f"eps_space {space!r} is unknown; valid: {', '.join(EPS_SPACES)}")
    if space == "pixel":
        return eps
    if std is None:
        raise ConfigError("eps_space 'normalized' needs the model's per-channel std")
    return torch.as_tensor(eps, dtype=torch.float64) * _std_tensor(std)


def eps_to_normalized(eps_pixel: Eps, std: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """eps in pixel space -> per-channel eps on the normalised input (``eps / std``)."""
    return torch.as_tensor(eps_pixel, dtype=torch.float64) / _std_tensor(std)


class RestartedAttack:
    """Run an attack with several seeds; keep, per example, the restart with the highest loss.

    torchattacks.PGD has no restarts (only ``random_start``), hence this loop. Each restart
    runs under ``torch.random.fork_rng`` seeded ``seed + r``, so the caller's RNG is untouched.
    """

    def __init__(self, attack: torchattacks.Attack, model: nn.Module, restarts: int,
                 seed: int = 0) -> None:
        self.attack, self.model, self.restarts, self.seed = attack, model, restarts, seed

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        best, best_loss = None, None
        devices = [images.device] if images.device.type == "cuda" else []
        for r in range(self.restarts):
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed + r)
                adv = self.attack(images, labels)
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad():
                loss = F.cross_entropy(self.model(adv), labels.to(adv.device), reduction="none")
            self.model.train(was_training)
            if best is None:
                best, best_loss = adv, loss
            else:
                better = loss > best_loss
                best = torch.where(better.view(-1, 1, 1, 1), adv, best)
                best_loss = torch.where(better, loss, best_loss)
        return best


@register_attack("fgsm")
class Fgsm(Attack):
    """One signed-gradient step of size eps (torchattacks.FGSM); no settings."""

    @classmethod
    def build(cls, model: nn.Module, eps: float, **settings: Any) -> AttackFn:
        import torchattacks

        return torchattacks.FGSM(model, eps=eps)


_STEPS = Setting(int, default=10, minimum=1)
_ALPHA = Setting((int, float), minimum=0, exclusive=True)  # default eps / 4
_SEED = Setting(int, default=0)


class _SteppedAttack(Attack):
    """An iterative attack of ``steps`` steps (``whitebox.steps``), restarted
    ``whitebox.restarts`` times when it declares ``restarts``; :meth:`step_size` gives its
    ``alpha`` (default eps / 4). Not registered: the base of the attacks below."""

    iterative = True

    @classmethod
    def settings_from(cls, whitebox: Any, num_classes: int) -> dict[str, Any]:
        out = {"steps": whitebox.steps}
        if "restarts" in cls.settings:
            out["restarts"] = whitebox.restarts
        return out

    @staticmethod
    def step_size(settings: dict[str, Any], eps: float) -> float:
        """The step size: the ``alpha`` setting, or eps / 4 when it is not set."""
        return float(settings["alpha"] or eps / 4)


@register_attack("bim")
class Bim(_SteppedAttack):
    """Basic iterative method: ``steps`` signed steps of ``alpha`` (default eps / 4)."""

    settings = {"steps": _STEPS, "alpha": _ALPHA}

    @classmethod
    def build(cls, model: nn.Module, eps: float, **settings: Any) -> AttackFn:
        import torchattacks

        return torchattacks.BIM(model, eps=eps, alpha=cls.step_size(settings, eps),
                                steps=settings["steps"])


@register_attack("pgd")
class Pgd(_SteppedAttack):
    """PGD with a random start, best of ``restarts`` seeded restarts (:class:`RestartedAttack`)."""

    settings = {"steps": _STEPS, "alpha": _ALPHA, "random_start": Setting(bool, default=True),
                "restarts": Setting(int, default=1, minimum=1), "seed": _SEED}

    @classmethod
    def build(cls, model: nn.Module, eps: float, **settings: Any) -> AttackFn:
        import torchattacks

        attack = torchattacks.PGD(model, eps=eps, alpha=cls.step_size(settings, eps),
                                  steps=settings["steps"], random_start=settings["random_start"])
        return RestartedAttack(attack, model, settings["restarts"], settings["seed"])


@register_attack("apgd")
class Apgd(_SteppedAttack):
    """APGD-CE (torchattacks.APGD, Linf, cross-entropy): step sizes adapted per image, no
    step size to tune; the first attack of AutoAttack. Best of ``restarts`` seeded runs."""

    settings = {"steps": _STEPS, "restarts": Setting(int, default=1, minimum=1), "seed": _SEED}

    @classmethod
    def build(cls, model: nn.Module, eps: float, **settings: Any) -> AttackFn:
        import torchattacks

        # one restart per torchattacks call: its own restarts attack a shrinking subset
        attack = torchattacks.APGD(model, norm="Linf", eps=eps, steps=settings["steps"],
                                   n_restarts=1, seed=settings["seed"], loss="ce")
        return RestartedAttack(attack, model, settings["restarts"], settings["seed"])


@register_attack("eotpgd")
class EotPgd(_SteppedAttack):
    """PGD on the expectation over ``eot_samples`` forward passes (torchattacks.EOTPGD): the
    attack for a randomised defence (with a deterministic model it is PGD)."""

    settings = {"steps": _STEPS, "alpha": _ALPHA, "eot_samples": Setting(int, default=4,
                                                                         minimum=1)}

    @classmethod
    def build(cls, model: nn.Module, eps: float, **settings: Any) -> AttackFn:
        import torchattacks

        return torchattacks.EOTPGD(model, eps=eps, alpha=cls.step_size(settings, eps),
                                   steps=settings["steps"], eot_iter=settings["eot_samples"],
                                   random_start=True)


@register_attack("autoattack")
class AutoAttack(Attack):
    """torchattacks.AutoAttack, norm Linf: APGD-CE, APGD-T, FAB-T and Square (5000 queries).

    Minutes per batch on a CPU: use a GPU or a small evaluation subset. Not maskable: each of
    its attacks runs on the images the previous ones left unfooled.
    """

    iterative = True
    maskable = False
    settings = {"num_classes": Setting(int, minimum=2, required=True),
                "version": Setting(str, default="standard", choices=("standard", "plus", "rand")),
                "seed": _SEED}

    @classmethod
    def settings_from(cls, whitebox: Any, num_classes: int) -> dict[str, Any]:
        return {"num_classes": num_classes}

    @classmethod
    def build(cls, model: nn.Module, eps: float, **settings: Any) -> AttackFn:
        import torchattacks

        return torchattacks.AutoAttack(model, norm="Linf", eps=eps, version=settings["version"],
                                       n_classes=settings["num_classes"], seed=settings["seed"])


def make_attack(name: str, model: nn.Module, eps: float, **settings: Any) -> AttackFn:
    """A white-box L-inf attack ``attack(images, labels) -> adversarial images`` (pixel space).

    ``name`` is a registered attack (``ATTACKS``: ``fgsm``; ``bim`` (steps=10, alpha=eps/4);
    ``pgd`` (steps=10, alpha=eps/4, random_start=True, restarts=1, seed=0); ``apgd``
    (steps=10, restarts=1, seed=0); ``eotpgd`` (steps=10, alpha=eps/4, eot_samples=4);
    ``autoattack``
    (num_classes required, version="standard", seed=0)); each validates its own settings.
    eps must be a float in pixel space.
    """
    cls = attack_class(name)
    if isinstance(eps, bool) or not (isinstance(eps, int | float) and math.isfinite(eps)
                                     and eps >= 0):
        raise ConfigError(
            f"attack {name!r}: eps must be a number >= 0 in pixel space, got {eps!r} "
            "(per-channel eps is supported by fgsm_sweep only)"
        )
    return cls.build(model, float(eps), **cls.check(settings))
