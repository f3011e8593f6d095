"""End-to-end FGSM sweep as the experiment runs it vs the per-eps loop a user would write.

    .venv/bin/python benchmarks/bench_fgsm_sweep.py [--device cpu|cuda] [--images 4]
        [--repeats 3] [--warmup 3]

Real offline streams at 224 px: EfficientNet-Lite0 (fg, ImageNet) and SqueezeNet (bg,
Places365); real Tiny ImageNet photos upsampled 64 -> 224; random linear heads (24 classes)
for the fg, bg and joint classifiers. The attack is crafted on the fg classifier, K = 8 eps.

* project: ``fgsm_sweep`` (one gradient for every eps: sign(grad) does not depend on eps),
  then ONE forward per eps per stream whose features serve the fg, bg and joint heads
  (``ctxfusion.experiments.sweeps.fgsm_sweep_features``).
* loop: per eps ``torchattacks.FGSM(fg_classifier, eps)``, then the fg, bg and joint
  classifiers each called on the adversarial batch (the joint one runs both streams again).

Checked first: the adversarial images and every prediction are IDENTICAL (torch.equal) per
eps. Arithmetic limit in stream forwards (F fg, B bg, G = fg gradient = forward + backward,
about 3F): loop K(G + 2F + 2B), project G + K(F + B).
"""

from __future__ import annotations

import statistics

import torch
import torchattacks
from _timing import compare, machine, parser, ratio_line, tiny_imagenet_sample, upsample

from ctxfusion import FusionClassifier, LinearHead, create_stream
from ctxfusion.perturb.attacks import fgsm_direction, fgsm_sweep

EPSILONS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16]
NUM_CLASSES = 24
GRADIENT_BATCH = 16  # the config default gradient_batch_size, as the experiment runs it
TARGET = 2.5

Predictions = list[tuple[torch.Tensor, ...]]


def classifiers(device: str) -> dict[str, FusionClassifier]:
    """fg, bg and joint classifiers over the two offline streams (random seeded heads)."""
    torch.manual_seed(0)
    fg, bg = create_stream("efficientnet-lite0-imagenet"), create_stream("squeezenet-places365")
    return {
        "fg": FusionClassifier([fg], LinearHead([fg.feature_dim], NUM_CLASSES)),
        "bg": FusionClassifier([bg], LinearHead([bg.feature_dim], NUM_CLASSES)),
        "joint": FusionClassifier([fg, bg], LinearHead([fg.feature_dim, bg.feature_dim],
                                                       NUM_CLASSES)),
    }


def project_path(models: dict[str, FusionClassifier], images: torch.Tensor,
                 labels: torch.Tensor) -> tuple[list[torch.Tensor], Predictions]:
    """One gradient for all eps, then one forward per stream per eps shared by the heads."""
    adversarial = fgsm_sweep(models["fg"], images, labels, EPSILONS, max_batch=GRADIENT_BATCH)
    fg, bg = models["joint"].streams
    predictions = []
    with torch.no_grad():
        for batch in adversarial:
            f, b = fg(batch), bg(batch)
            predictions.append((models["fg"].head(f).argmax(1), models["bg"].head(b).argmax(1),
                                models["joint"].head(torch.cat([f, b], 1)).argmax(1)))
    return adversarial, predictions


def loop_path(models: dict[str, FusionClassifier], images: torch.Tensor,
              labels: torch.Tensor) -> tuple[list[torch.Tensor], Predictions]:
    """torchattacks.FGSM per eps, then the three classifiers on its images."""
    adversarial, predictions = [], []
    for eps in EPSILONS:
        adv = torchattacks.FGSM(models["fg"], eps=eps)(images, labels)
        with torch.no_grad():
            predictions.append(tuple(models[k](adv).argmax(1) for k in ("fg", "bg", "joint")))
        adversarial.append(adv)
    return adversarial, predictions


def check_identical(models: dict[str, FusionClassifier], images: torch.Tensor,
                    labels: torch.Tensor) -> None:
    """Both paths give the same adversarial images and predictions at every eps."""
    adv_p, pred_p = project_path(models, images, labels)
    adv_l, pred_l = loop_path(models, images, labels)
    same_images = [torch.equal(a, b) for a, b in zip(adv_p, adv_l, strict=True)]
    same_preds = [all(torch.equal(a, b) for a, b in zip(p, q, strict=True))
                  for p, q in zip(pred_p, pred_l, strict=True)]
    print(f"check: adversarial images identical (torch.equal) per eps: {same_images}")
    print(f"check: fg, bg, joint predictions identical per eps: {same_preds}")
    if not all(same_preds):
        raise SystemExit("the two paths disagree: not timing them")


def stream_costs(models: dict[str, FusionClassifier], images: torch.Tensor,
                 labels: torch.Tensor, args) -> tuple[float, float, float]:
    """Median seconds of one fg forward F, one bg forward B and one fg gradient G."""
    fg, bg = models["joint"].streams

    def forward(stream):
        def run():
            with torch.no_grad():
                stream(images)
        return run

    fb = compare(forward(fg), forward(bg), labels=("fg forward F", "bg forward B"),
                 device=args.device, warmup=args.warmup, repeats=max(5, 2 * args.repeats))
    fg_grad = compare(forward(fg),
                      lambda: fgsm_direction(models["fg"], images, labels,
                                             max_batch=GRADIENT_BATCH),
                      labels=("fg forward F", "fg gradient G"), device=args.device,
                      warmup=args.warmup, repeats=max(5, 2 * args.repeats))
    print(f"stream costs on {len(images)} images (ms per batch):\n{fb.table()}\n"
          f"{fg_grad.table()}")
    f, b = statistics.median(fb.a), statistics.median(fb.b)
    return f, b, fg_grad.ratio * f


def arithmetic_limit(f: float, b: float, grad: float) -> float:
    """loop / project counted in stream passes: K(G + 2F + 2B) / (G + K(F + B))."""
    k = len(EPSILONS)
    return k * (grad + 2 * f + 2 * b) / (grad + k * (f + b))


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=3)
    p.add_argument("--images", type=int, default=4, help="batch of 224-px images")
    args = p.parse_args()
    images, labels, _ = tiny_imagenet_sample(args.images, per_class=max(1, args.images // 4))
    images, labels = upsample(images).to(args.device), labels.to(args.device)
    models = {k: m.to(args.device).eval() for k, m in classifiers(args.device).items()}
    print(f"FGSM sweep, K={len(EPSILONS)} eps, {args.images} x 3 x 224 x 224 real photos, "
          f"fg EfficientNet-Lite0 + bg SqueezeNet-Places365, {machine(args.device)}")
    check_identical(models, images, labels)  # also the first untimed call of each side
    f, b, g = stream_costs(models, images, labels, args)
    limit = arithmetic_limit(f, b, g)
    print(f"arithmetic limit K(G+2F+2B) / (G+K(F+B)), K={len(EPSILONS)}, B/F={b / f:.2f}, "
          f"G/F={g / f:.2f} measured: {limit:.2f}x (with G=3F: "
          f"{arithmetic_limit(f, b, 3 * f):.2f}x)")
    result = compare(lambda: project_path(models, images, labels),
                     lambda: loop_path(models, images, labels),
                     labels=("project: one gradient + shared features",
                             "loop: torchattacks.FGSM per eps + 3 classifiers"),
                     device=args.device, warmup=max(args.warmup - 1, 0), repeats=args.repeats)
    print(f"end to end (s per sweep), {args.warmup} untimed calls each (the check is the "
          f"first):\n{result.table('s', 1.0)}")
    print(ratio_line("fgsm_sweep_end_to_end", result.ratios, TARGET,
                     f"arithmetic limit {limit:.2f}x"))


if __name__ == "__main__":
    main()
