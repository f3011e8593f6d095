"""Perturbations in [0,1] pixel space: blur inside boxes, stream views, attacks."""

from typing import TYPE_CHECKING

from ctxfusion.lazy import lazy_exports

if TYPE_CHECKING:
    from .attacks import eps_to_normalized, eps_to_pixel, fgsm_direction, fgsm_sweep, make_attack
    from .blur import blur_inside_boxes, boxes_mask, gaussian_blur_separable, gaussian_kernel1d
    from .corruptions import CORRUPTIONS, SEVERITIES, corrupt
    from .regions import attack_in_region, region_mask
    from .views import make_view

# on first use: the config imports perturb.attacks without the views' torchvision
__getattr__ = lazy_exports(__name__, {
    **dict.fromkeys(["eps_to_normalized", "eps_to_pixel", "fgsm_direction", "fgsm_sweep",
                     "make_attack"], "ctxfusion.perturb.attacks"),
    **dict.fromkeys(["blur_inside_boxes", "boxes_mask", "gaussian_blur_separable",
                     "gaussian_kernel1d"], "ctxfusion.perturb.blur"),
    **dict.fromkeys(["CORRUPTIONS", "SEVERITIES", "corrupt"], "ctxfusion.perturb.corruptions"),
    **dict.fromkeys(["attack_in_region", "region_mask"], "ctxfusion.perturb.regions"),
    "make_view": "ctxfusion.perturb.views",
})

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
