"""Separable Gaussian blur vs torchvision's gaussian_blur (full 2-D kernel), side by side.

    .venv/bin/python benchmarks/bench_blur.py [--device cpu|cuda] [--repeats 5]

Batch of 4 RGB 224 x 224 images; 3 warm-up iterations, then the median of ``--repeats``.
torchvision pads with torch's reflect padding, which fails when the kernel is wider than the
image: at sigma = 45 (kernel 271 > 224) it runs with the kernel capped at 223 (marked *).
"""

from __future__ import annotations

import argparse
import math

import torch
from _timing import timed  # benchmarks/ is on sys.path when a benchmark runs as a script
from torchvision.transforms.functional import gaussian_blur

from ctxfusion.perturb.blur import gaussian_blur_separable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    images = torch.rand(4, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    images = images.to(args.device)
    print(f"blur of 4 x 3 x {args.size} x {args.size} on {args.device} "
          f"({torch.get_num_threads()} threads), median of {args.repeats} after 3 warm-ups")
    print(f"{'sigma':>6} {'kernel':>7} {'separable ms':>13} {'torchvision ms':>15} "
          f"{'ratio':>7} {'max |diff|':>11}")
    for sigma in (1.0, 5.0, 10.0, 45.0):
        k = 2 * math.ceil(3 * sigma) + 1
        k_tv = min(k, (args.size - 1) // 2 * 2 + 1)
        ours = timed(lambda s=sigma: gaussian_blur_separable(images, s), args.device, 3,
                     args.repeats)
        theirs = timed(lambda s=sigma, kk=k_tv: gaussian_blur(images, [kk, kk], [s, s]),
                       args.device, 3, args.repeats)
        # same kernel and torch's reflect padding (= our "mirror"): results must agree
        diff = (gaussian_blur_separable(images, sigma, kernel_size=k_tv, padding="mirror")
                - gaussian_blur(images, [k_tv, k_tv], [sigma, sigma])).abs().max()
        mark = "*" if k_tv != k else " "
        print(f"{sigma:>6g} {k_tv:>6d}{mark} {ours * 1e3:>13.2f} {theirs * 1e3:>15.2f} "
              f"{theirs / ours:>6.1f}x {float(diff):>11.2e}")
    print("* torchvision kernel capped at the image size (its reflect padding fails beyond);"
          " the separable blur uses the full kernel")


if __name__ == "__main__":
    main()
