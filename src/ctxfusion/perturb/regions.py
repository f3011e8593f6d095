"""Threat regions: where an attack or a corruption may change pixels.

``image``: everywhere; ``box``: inside the object boxes only (the paper's targeted
foreground); ``background``: outside them. :func:`region_mask` gives the (N,1,H,W) mask (boxes
follow the pixel-centre rule of :mod:`ctxfusion.perturb.blur`).

:func:`attack_in_region` runs any registered attack so that the pixels outside the mask stay
exactly as they were: the attack is built on :class:`RegionModel`, which shows the classifier
the clean pixels outside the mask whatever the attacker proposes there (so the gradient there is
zero and no proposal there changes the loss), and the result keeps the clean pixels outside the
mask. torchattacks has no masked attacks, hence this wrapper: it works for every attack of the
library (FGSM, BIM, PGD, APGD, EOT-PGD), each keeping its own step rule, eps ball and [0,1]
clamp inside the mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..schema import REGIONS
from ..versioning import computation
from .blur import boxes_mask

#: the version of the threat-region masks and of restricting an attack to a region
REGION_MASKS = computation("regions", 1, "threat-region masks and attacks restricted to "
                           "a region (perturb/regions.py)")


def check_region(region: str) -> str:
    """``region`` if it is a valid region; ConfigError listing the valid ones otherwise."""
    if region not in REGIONS:
        raise ConfigError(f"unknown region {region!r}; valid regions: {', '.join(REGIONS)}")
    return region


def region_mask(region: str, boxes: Sequence[torch.Tensor] | None, height: int, width: int,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """(N,1,H,W) bool: True where ``region`` lets a perturbation change a pixel.

    ``image`` needs no boxes (give ``boxes`` anyway for N); an image without boxes has an
    empty ``box`` region and a whole-image ``background``."""
    check_region(region)
    if boxes is None:
        raise ConfigError(f"region {region!r} needs the batch's boxes")
    if region == "image":
        return torch.ones(len(boxes), 1, height, width, dtype=torch.bool, device=device)
    inside = boxes_mask(boxes, height, width, device=device)
    return inside if region == "box" else ~inside


class RegionModel(nn.Module):
    """``model`` as an attacker restricted to ``mask`` sees it: the pixels outside the mask are
    the clean ones whatever the input holds there. Bound to one batch of ``clean`` images."""

    def __init__(self, model: nn.Module, clean: torch.Tensor, mask: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("clean", clean.detach(), persistent=False)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape != self.clean.shape:
            raise RuntimeError(
                f"RegionModel is bound to a batch of shape {tuple(self.clean.shape)}, got "
                f"{tuple(images.shape)}: an attack that attacks a subset of its batch must be "
                "given that subset (attack_in_region passes the correctly classified images)")
        return self.model(torch.where(self.mask, images, self.clean))


def _bind_boxes(model: nn.Module, boxes: Sequence[torch.Tensor] | None) -> None:
    if boxes is not None and hasattr(model, "with_boxes"):
        model.with_boxes(list(boxes))


def attack_in_region(build: Callable[[nn.Module], Callable], model: nn.Module,
                     images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                     boxes: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Adversarial images that differ from ``images`` only where ``mask`` is True.

    ``build(module)`` makes the attack (``attack(images, labels)``) against a module. Only the
    images ``model`` classifies correctly are attacked (a misclassified image stays as it is:
    it is misclassified already), so an attack that drops the images it has already fooled
    (APGD) attacks its whole batch. A model with views gets the attacked images' ``boxes``
    bound (the whole list again at the end)."""
    labels = labels.to(images.device)
    mask = mask.to(images.device)
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    was_training = model.training
    model.eval()
    try:
        _bind_boxes(model, boxes)
        with torch.no_grad():
            attacked = (model(images).argmax(1) == labels).nonzero().flatten()
        if not len(attacked) or not bool(mask[attacked].any()):
            return images.clone()
        part = attacked.tolist()
        _bind_boxes(model, None if boxes is None else [boxes[i] for i in part])
        clean, where = images[attacked], mask[attacked].expand_as(images[attacked])
        adversarial = build(RegionModel(model, clean, where))(clean, labels[attacked])
        out = images.clone()
        out[attacked] = torch.where(where, adversarial.detach().to(images.dtype), clean)
        return out
    finally:
        _bind_boxes(model, boxes)
        model.train(was_training)
