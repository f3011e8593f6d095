"""One-gradient FGSM sweep vs one torchattacks.FGSM call per eps, side by side.

    .venv/bin/python benchmarks/bench_fgsm_sweep.py [--device cpu|cuda] [--repeats 5]

A small conv net (4 conv layers, normalisation inside) on 32 RGB 64 x 64 images, 8 eps values;
3 warm-up iterations, then the median of ``--repeats``. Outputs are checked to be identical.
"""

from __future__ import annotations

import argparse

import torch
import torchattacks
from _timing import timed  # benchmarks/ is on sys.path when a benchmark runs as a script
from torch import nn

from ctxfusion.models import Normalize
from ctxfusion.perturb.attacks import fgsm_sweep

EPSILONS = [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 0.1, 0.3]


def small_conv_net() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))]
    channels = [3, 32, 64, 64, 128]
    for c_in, c_out in zip(channels, channels[1:], strict=False):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out),
                   nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)]
    return nn.Sequential(*layers).eval()



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = small_conv_net().to(args.device)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(32, 3, 64, 64, generator=g).to(args.device)
    labels = torch.randint(0, 10, (32,), generator=g).to(args.device)

    def per_eps():
        return [torchattacks.FGSM(model, eps=e)(images, labels) for e in EPSILONS]

    same = all(torch.equal(a, b) for a, b in
               zip(fgsm_sweep(model, images, labels, EPSILONS), per_eps(), strict=True))
    sweep = timed(lambda: fgsm_sweep(model, images, labels, EPSILONS), args.device, 3,
                  args.repeats)
    loop = timed(per_eps, args.device, 3, args.repeats)
    print(f"FGSM, {len(EPSILONS)} eps, 32 x 3 x 64 x 64, small conv net on {args.device} "
          f"({torch.get_num_threads()} threads), median of {args.repeats} after 3 warm-ups")
    print(f"{'one-gradient sweep ms':>22} {'per-eps torchattacks ms':>24} {'ratio':>7} "
          f"{'identical':>10}")
    print(f"{sweep * 1e3:>22.2f} {loop * 1e3:>24.2f} {loop / sweep:>6.1f}x {str(same):>10}")
    print("(the sweep excludes classifying the adversarial batches, which both ways need)")


if __name__ == "__main__":
    main()
