"""Perturbations in [0,1] pixel space: blur inside boxes, stream views, attacks."""

from .attacks import (
    eps_to_normalized,
    eps_to_pixel,
    fgsm_direction,
    fgsm_sweep,
    make_attack,
)
from .blur import blur_inside_boxes, boxes_mask, gaussian_blur_separable, gaussian_kernel1d
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt
from .regions import attack_in_region, region_mask
from .views import make_view

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "attack_in_region",
    "corrupt",
    "region_mask",
    "blur_inside_boxes",
    "boxes_mask",
    "eps_to_normalized",
    "eps_to_pixel",
    "fgsm_direction",
    "fgsm_sweep",
    "gaussian_blur_separable",
    "gaussian_kernel1d",
    "make_attack",
    "make_view",
]
