"""Head training and the alpha sweep on cached features vs re-running the backbones per head.

    .venv/bin/python benchmarks/bench_heads.py [--device cpu|cuda] [--images 32]
        [--repeats 3] [--warmup 3]

The heads of ``configs/offline-tinyimagenet.yaml`` (bg on its full view only): fg, bg, joint and
one joint head per alpha of its sweep (7 alphas; 60 epochs, Adam, lr 0.01, sum reduction),
for one subset and one seed, on ``--images`` real Tiny ImageNet photos (64 px; the real
EfficientNet-Lite0 and SqueezeNet-Places365 streams resize to 224 inside).

* project: the streams' features loaded from a FeatureCache (safetensors on disk, written
  once beforehand) and ``ctxfusion.experiments.heads.train_heads`` for every head.
* no cache: what a pipeline without a feature cache pays: for every head, the frozen
  backbones it reads run again (``extract_features``), then the head is trained.

Checked first: every head's weights and bias are IDENTICAL (torch.equal) both ways. The ratio
grows with the images: the extraction is linear in them, while up to the head batch size (256)
a head's 60 full-batch Adam steps cost about the same (measured: 32x at 16 images, 170x at 64).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from _timing import compare, machine, parser, ratio_line, tiny_imagenet_sample

from ctxfusion import create_stream
from ctxfusion.config import load_config
from ctxfusion.experiments.heads import SubsetData, classifier_specs, train_heads
from ctxfusion.features import FeatureCache, extract_features

ROOT = Path(__file__).resolve().parents[1]
TARGET = 50.0
STREAMS = {"fg": "efficientnet-lite0-imagenet", "bg": "squeezenet-places365"}


def batches(images: torch.Tensor, labels: torch.Tensor, size: int) -> list:
    """An in-memory loader: (images, labels) batches."""
    return [(images[i:i + size], labels[i:i + size]) for i in range(0, len(labels), size)]


def extract(streams: dict, roles: set[str], loader: list, device: str) -> dict:
    """``extract_features`` of the given roles, keyed ``<role>@full`` like the experiment."""
    features, _, _ = extract_features({r: streams[r] for r in sorted(roles)}, loader,
                                      device=device)
    return {f"{role}@full": f for role, f in features.items()}


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=3)
    p.add_argument("--images", type=int, default=32, help="training images")
    p.add_argument("--batch", type=int, default=64, help="extraction batch (config: 64)")
    args = p.parse_args()
    config = load_config(ROOT / "configs" / "offline-tinyimagenet.yaml",
                         ["streams.bg.views=[full]"])
    specs = classifier_specs(config)
    images, labels, _ = tiny_imagenet_sample(args.images, per_class=max(1, args.images // 4))
    subset = SubsetData(rows=torch.arange(len(labels)), labels=labels,
                        classes=[str(c) for c in range(int(labels.max()) + 1)])
    streams = {role: create_stream(name) for role, name in STREAMS.items()}
    loader = batches(images, labels, args.batch)

    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        for key, tensor in extract(streams, set(STREAMS), loader, args.device).items():
            cache.save({"benchmark": "heads", "key": key, "versions": {"benchmark": 1}},
                       {"features": tensor, "labels": labels, "ids": subset.rows})

        def cached() -> dict:
            features = {key: cache.load({"benchmark": "heads", "key": key,
                                         "versions": {"benchmark": 1}})["features"]
                        for key in ("fg@full", "bg@full")}
            return train_heads(config, specs, features, subset, seed=0)

        def uncached() -> dict:
            heads = {}
            for spec in specs:
                roles = {key.split("@")[0] for key in spec.inputs}
                features = extract(streams, roles, loader, args.device)
                heads.update(train_heads(config, [spec], features, subset, seed=0))
            return heads

        ours, theirs = cached(), uncached()
        same = all(torch.equal(ours[s.name].weight, theirs[s.name].weight)
                   and torch.equal(ours[s.name].bias, theirs[s.name].bias) for s in specs)
        print(f"heads: {len(specs)} ({', '.join(s.name for s in specs)}), {len(labels)} real "
              f"images, {config.heads.epochs} epochs each, {machine(args.device)}")
        print(f"check: every head's weights and bias identical (torch.equal): {same}")
        if not same:
            raise SystemExit("the two ways train different heads: not timing them")
        result = compare(cached, uncached,
                         labels=("project: cached features + train_heads",
                                 "no cache: backbones per head + train"),
                         device=args.device, warmup=max(args.warmup - 1, 0),
                         repeats=args.repeats)
    print(f"s per sweep of all heads, {args.warmup} untimed calls each (the check is the "
          f"first):\n{result.table('s', 1.0)}")
    print(ratio_line("heads_cached_vs_backbone_per_head", result.ratios, TARGET))


if __name__ == "__main__":
    main()
