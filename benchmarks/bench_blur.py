"""Blur inside boxes: the project's blur vs its previous code, torchvision and scipy.

    .venv/bin/python benchmarks/bench_blur.py [--device cpu|cuda] [--images 4] [--size 224]
        [--repeats 5] [--warmup 3] [--sigmas 1,2,5,20,45]

``--images`` real Tiny ImageNet photos upsampled to ``--size`` px with their boxes scaled.
Per sigma, interleaved in one process:

* project image / crop: ``blur_inside_boxes(..., mode="image" | "crop")`` (padding reflect).
* previous image / crop: a frozen copy of the code before the batch was folded into the
  channels (``previous_blur_separable`` below).
* torchvision: ``gaussian_blur`` (full 2-D kernel, torch's reflect = our "mirror" padding)
  on the whole image kept inside the boxes, or on each box crop; its reflect padding fails
  for kernels wider than twice the input, so there the kernel is capped (marked ``*``).
* scipy: ``scipy.ndimage.gaussian_filter`` (float64, mode reflect, truncate 3) likewise.

Checked first: the project's output is BIT-IDENTICAL (torch.equal) to the previous code for
both modes and both paddings at every sigma (and a random sweep of shapes); torchvision and
scipy agree with it to float32 rounding (max |diff| printed). Sides slower than 0.5 s per
call are timed once after one warm-up (marked ``~``).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from _timing import (
    interleave,
    machine,
    measure,
    parser,
    ratio_line,
    spread,
    tiny_imagenet_sample,
    upsample,
)
from scipy import ndimage
from torchvision.transforms.functional import gaussian_blur

from ctxfusion.perturb.blur import (
    blur_inside_boxes,
    boxes_mask,
    gaussian_blur_separable,
    gaussian_kernel1d,
    padding_indices,
    pixel_ranges,
)

SLOW = 0.5  # seconds per call above which a side is timed once
TARGET = 1.0


def previous_blur_separable(images: torch.Tensor, sigma: float, padding: str = "reflect"
                            ) -> torch.Tensor:
    """Frozen copy of ``gaussian_blur_separable`` before this change (groups = C)."""
    kernel = gaussian_kernel1d(sigma, dtype=images.dtype, device=images.device)
    channels, height, width = images.shape[1:]
    radius = kernel.numel() // 2
    rows = padding_indices(height, radius, padding, images.device)
    cols = padding_indices(width, radius, padding, images.device)
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(images.index_select(3, cols), horizontal, groups=channels)
    return F.conv2d(out.index_select(2, rows), vertical, groups=channels)


Blur = Callable[[torch.Tensor, float], torch.Tensor]


def inside_boxes(blur: Blur, images: torch.Tensor, boxes: Sequence[torch.Tensor], sigma: float,
                 mode: str) -> torch.Tensor:
    """``blur_inside_boxes``'s two modes around any whole-image ``blur(images, sigma)``."""
    return blur_inside_boxes(images, boxes, sigma, mode, blur=blur)


def torchvision_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """torchvision's gaussian_blur, kernel capped where its reflect padding would fail."""
    return gaussian_blur(images, [tv_kernel(images, sigma)] * 2, [sigma, sigma])


def tv_kernel(images: torch.Tensor, sigma: float) -> int:
    """Our kernel size, capped at the widest torch's reflect padding accepts (2 * side - 1)."""
    return min(2 * math.ceil(3 * sigma) + 1, 2 * min(images.shape[-2:]) - 1)


def scipy_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter in float64 over H and W (reflect = our default)."""
    out = ndimage.gaussian_filter(images.detach().cpu().double().numpy(),
                                  sigma=(0, 0, sigma, sigma), mode="reflect", truncate=3.0)
    return torch.from_numpy(out.astype(np.float32)).to(images.device)


def check_bit_identity(images: torch.Tensor, boxes: list[torch.Tensor],
                       sigmas: list[float]) -> bool:
    """The project's blur equals the frozen previous code bit for bit (torch.equal)."""
    cases = 0
    for sigma in sigmas:
        for padding in ("reflect", "mirror"):
            def prev(x, s, p=padding):
                return previous_blur_separable(x, s, p)
            for mode in ("image", "crop"):
                ours = blur_inside_boxes(images, boxes, sigma, mode, padding=padding)
                if not torch.equal(ours, inside_boxes(prev, images, boxes, sigma, mode)):
                    print(f"check: NOT bit-identical at sigma {sigma}, {mode}, {padding}")
                    return False
                cases += 1
    rng = random.Random(0)
    for _ in range(60):  # random shapes, sigmas and paddings, whole-image blur
        n, c = rng.choice([1, 2, 3, 5, 64]), rng.choice([1, 3, 4])
        h, w = rng.randint(1, 70), rng.randint(1, 70)
        sigma = rng.choice([0.3, 0.5, 1.0, 1.43, 2.86, 5.0, 12.9, 20.0, 45.0])
        padding = rng.choice(["reflect", "mirror"])
        x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(cases)).to(images.device)
        if not torch.equal(gaussian_blur_separable(x, sigma, padding=padding),
                           previous_blur_separable(x, sigma, padding)):
            print(f"check: NOT bit-identical on {(n, c, h, w)}, sigma {sigma}, {padding}")
            return False
        cases += 1
    print(f"check: project blur == previous code, torch.equal, in all {cases} cases (sigmas "
          f"{sigmas} x image/crop x reflect/mirror on the benchmark batch + 60 random shapes)")
    return True


def sides(images: torch.Tensor, boxes: list[torch.Tensor], sigma: float) -> dict[str, Callable]:
    """Every way of blurring inside the boxes at ``sigma``."""
    out: dict[str, Callable] = {}
    for mode in ("image", "crop"):
        out[f"project {mode}"] = lambda m=mode: blur_inside_boxes(images, boxes, sigma, m)
        out[f"previous {mode}"] = lambda m=mode: inside_boxes(previous_blur_separable, images,
                                                              boxes, sigma, m)
        out[f"torchvision {mode}"] = lambda m=mode: inside_boxes(torchvision_blur, images,
                                                                 boxes, sigma, m)
        out[f"scipy {mode}"] = lambda m=mode: inside_boxes(scipy_blur, images, boxes, sigma, m)
    return out


def agreement(images: torch.Tensor, boxes: list[torch.Tensor], sigma: float) -> str:
    """Max |diff| of torchvision (vs our mirror padding) and scipy (vs reflect), per mode."""
    parts = []
    for mode in ("image", "crop"):
        mirror = blur_inside_boxes(images, boxes, sigma, mode, padding="mirror")
        reflect = blur_inside_boxes(images, boxes, sigma, mode)
        tv = inside_boxes(torchvision_blur, images, boxes, sigma, mode)
        sp = inside_boxes(scipy_blur, images, boxes, sigma, mode)
        parts.append(f"{mode}: tv {float((tv - mirror).abs().max()):.1e}, "
                     f"scipy {float((sp - reflect).abs().max()):.1e}")
    return "; ".join(parts)


def time_sigma(fns: dict[str, Callable], args) -> dict[str, list[float]]:
    """Interleaved times; sides slower than SLOW s are timed once after one warm-up."""
    slow = {name for name, fn in fns.items() if measure(fn, args.device) > SLOW}
    fast = {k: v for k, v in fns.items() if k not in slow}
    times = interleave(fast, device=args.device, warmup=args.warmup, repeats=args.repeats)
    times.update(interleave({k: fns[k] for k in slow}, device=args.device, warmup=0,
                            repeats=1))
    return {name: times[name] for name in fns}


def capped(images: torch.Tensor, boxes: list[torch.Tensor], sigma: float) -> dict[str, bool]:
    """Whether torchvision's kernel had to be capped, per mode."""
    k = 2 * math.ceil(3 * sigma) + 1
    height, width = images.shape[-2:]
    sides_ = [min(r1 - r0, c1 - c0) for b in boxes for box in b
              for r0, r1, c0, c1 in [pixel_ranges(box, height, width)]]
    return {"image": k > 2 * min(height, width) - 1, "crop": k > 2 * min(sides_) - 1}


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=5)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--sigmas", default="1,2,5,20,45")
    args = p.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    small, _, small_boxes = tiny_imagenet_sample(args.images, per_class=-(-args.images // 40))
    images = upsample(small, args.size).to(args.device)
    boxes = [(b * args.size / small.shape[-1]).to(args.device) for b in small_boxes]
    area = float(boxes_mask(boxes, args.size, args.size).float().mean())
    print(f"blur inside boxes, {args.images} real photos at {args.size} px, one box each "
          f"({area:.0%} of the pixels), {machine(args.device)}; median (min-max) ms of "
          f"{args.repeats} after {args.warmup} warm-ups, interleaved")
    if not check_bit_identity(images, boxes, sigmas):
        raise SystemExit("the project's blur changed its output: not timing it")
    worst: dict[str, list[float]] = {}
    for sigma in sigmas:
        fns = sides(images, boxes, sigma)
        times = time_sigma(fns, args)
        caps = capped(images, boxes, sigma)
        print(f"\nsigma {sigma:g} (kernel {2 * math.ceil(3 * sigma) + 1}); "
              f"{agreement(images, boxes, sigma)}")
        for name, values in times.items():
            mark = "~" if len(values) == 1 else " "
            cap = "*" if name.startswith("torchvision") and caps[name.split()[1]] else ""
            print(f"  {name:<18}{mark} {spread(values, 1e3):>28} {cap}")
        for mode in ("image", "crop"):
            ours = times[f"project {mode}"]
            others = {k: statistics.median(v) for k, v in times.items()
                      if k.endswith(mode) and not k.startswith(("project", "previous"))}
            best = min(others, key=others.get)
            ratios = [others[best] / t for t in ours]
            gain = [a / b for a, b in zip(times[f"previous {mode}"], ours, strict=True)]
            print(f"  {mode}: fastest other {best}, other / project {spread(ratios)}x; "
                  f"previous / project {spread(gain)}x")
            if mode not in worst or statistics.median(ratios) < statistics.median(worst[mode]):
                worst[mode] = ratios
    print("* torchvision's kernel capped at 2 x side - 1 (its reflect padding fails beyond)")
    mode = min(worst, key=lambda m: statistics.median(worst[m]))
    print(ratio_line(f"blur_vs_fastest_other (worst sigma, {mode} mode)", worst[mode], TARGET))


if __name__ == "__main__":
    main()
