"""Feature extraction through the project's own path vs a bare inference loop, images/s.

    .venv/bin/python benchmarks/bench_extraction.py [--device cpu|cuda] [--per-class 2]
        [--batch 24] [--repeats 3] [--warmup 3] [--models resnet18,efficientnet]

* project: the Tiny ImageNet val split of ``configs/offline-tinyimagenet.yaml`` (real JPEGs on
  disk, prepared by ``prepare_dataset`` into a temporary CTXFUSION_HOME; ``--per-class``
  images of each of its 24 classes), read by ``load_split`` (ManifestDataset + DataLoader) at
  its 64-px image size, the stream resizing to 224 inside, through ``cached_extract`` into a
  fresh temporary FeatureCache (a miss every call), with the run's defaults on this device:
  ``precision``/``memory_format`` ``auto`` (``Execution.resolve``) and ``num_workers: null``
  (``default_num_workers``); also with 2 loader workers, for comparison.
* bare: ``with torch.inference_mode(): model(x)`` over the same images already in memory as
  224-px tensors (resized once beforehand by the stream's own resize), same batches, in both
  layouts (contiguous, channels_last); the headline compares the project path with the bare
  loop in the same layout.
* matmul: a 2048 x 2048 float32 matmul, for the GFLOP/s the bare loops achieve (their FLOPs
  counted with ``torch.utils.flop_counter.FlopCounterMode``).

All sides run interleaved in one process. Checked first: project and bare features in the same
layout are identical (torch.equal); channels_last and contiguous features allclose (max |diff|
printed). ResNet18 is torchvision's with random weights (``torchvision:resnet18``, speed only);
EfficientNet-Lite0 is the real offline stream. On CUDA a bf16-autocast bare loop is timed too.
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import interleave, machine, parser, ratio_line, spread
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"resnet18": "torchvision:resnet18", "efficientnet": "efficientnet-lite0-imagenet"}
TARGET = 0.9
MATMUL = 2048


def load_test_split(per_class: int, batch: int, workers: int | None = None):
    """The offline-tinyimagenet val split, ``per_class`` images per class, via load_split."""
    from ctxfusion.config import ExperimentConfig, load_config
    from ctxfusion.experiments.splits import load_split, prepare_dataset

    overrides = [f"datasets[0].max_test_per_class={per_class}", f"batch_size={batch}"]
    if workers is not None and "num_workers" in ExperimentConfig.__dataclass_fields__:
        overrides.append(f"num_workers={workers}")
    config = load_config(ROOT / "configs" / "offline-tinyimagenet.yaml", overrides)
    dataset = config.datasets[0]
    manifest = prepare_dataset(dataset, progress=False)
    return load_split(config, dataset, manifest, "test", dataset.image_size)


def build_stream(name: str, device: str) -> nn.Module:
    from ctxfusion import create_stream

    torch.manual_seed(0)
    kwargs = {"weights": "random"} if name.startswith("torchvision:") else {}
    return create_stream(name, **kwargs).to(device).eval()


def project_fn(stream: nn.Module, split, execution, scratch: Path) -> Callable:
    """``cached_extract`` of the split into a fresh FeatureCache each call, with the run's
    resolved precision and memory layout (``execution``)."""
    from ctxfusion.features import FeatureCache, cached_extract

    def run() -> torch.Tensor:
        cache = FeatureCache(tempfile.mkdtemp(dir=scratch))
        features, _, _ = cached_extract(cache, {"s": {"benchmark": "extraction",
                                                       "versions": {"benchmark": 1}}},
                                        {"s": stream}, split.loader, execution=execution)
        return features["s"]

    return run


def bare_fn(model: nn.Module, batches: list[torch.Tensor], autocast: bool = False) -> Callable:
    """The bare loop: model(x) under inference_mode over in-memory batches."""

    def run() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=autocast):
            return torch.cat([model(x).float().cpu() for x in batches])

    return run


def flops(model: nn.Module, batches: list[torch.Tensor]) -> int:
    """FLOPs of one pass of the bare loop."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        for x in batches:
            model(x)
    return counter.get_total_flops()


def bench_model(key: str, splits: dict, args, scratch: Path) -> list[float]:
    """Interleaved project (per loader setting, the run's default layout) / bare loops in both
    layouts / matmul for one model; returns the per-round ratios of the default project path
    to the bare loop in the same layout."""
    from ctxfusion.execution import Execution

    execution = Execution.resolve(torch.device(args.device))  # the run's defaults
    stream = build_stream(MODELS[key], args.device)
    default = next(iter(splits))
    batches = [stream.resize(b[0].to(args.device)).contiguous() for b in splits[default].loader]
    n = sum(len(x) for x in batches)
    cl_model = copy.deepcopy(stream).to(memory_format=torch.channels_last)
    cl_batches = [x.contiguous(memory_format=torch.channels_last) for x in batches]
    same_layout = "bare channels_last" if execution.memory_format == "channels_last" else "bare"
    a = torch.rand(MATMUL, MATMUL, device=args.device)
    project_stream = copy.deepcopy(stream)  # the project path converts its stream's layout
    fns = {name: project_fn(project_stream, split, execution, scratch)
           for name, split in splits.items()}
    fns.update({"bare": bare_fn(stream, batches),
                "bare channels_last": bare_fn(cl_model, cl_batches),
                "matmul": lambda: a @ a})
    if args.device.startswith("cuda"):
        fns["bare bf16 autocast"] = bare_fn(cl_model, cl_batches, autocast=True)
    ours, bare, cl = fns[default](), fns["bare"](), fns["bare channels_last"]()
    reference = cl if same_layout == "bare channels_last" else bare
    print(f"\n{key} ({MODELS[key]}), {n} images, batches of {args.batch}; project path: "
          f"{execution.precision}, {execution.memory_format} (the run's defaults here)")
    print(f"check: project == {same_layout} features (torch.equal): "
          f"{torch.equal(ours, reference)}; channels_last vs contiguous max |diff| "
          f"{float((cl - bare).abs().max()):.2e} "
          f"(allclose rtol 1e-4 atol 1e-4: {torch.allclose(cl, bare, rtol=1e-4, atol=1e-4)})")
    if not torch.allclose(ours, reference, rtol=1e-5, atol=1e-5):
        raise SystemExit("project and bare features differ: not timing them")
    times = interleave(fns, device=args.device, warmup=max(args.warmup - 1, 0),
                       repeats=args.repeats)
    for name, values in times.items():
        if name != "matmul":
            print(f"  {name:<34} images/s {spread([n / t for t in values], fmt='.1f')}")
    model_gflop = flops(stream, batches) / 1e9
    for name in ("bare", "bare channels_last"):
        rate = [model_gflop / t for t in times[name]]
        mm_rate = [2 * MATMUL**3 / 1e9 / t for t in times["matmul"]]
        print(f"  GFLOP/s: {name} {spread(rate, fmt='.1f')} ({model_gflop / n:.2f} GFLOP per "
              f"image), {MATMUL}^2 fp32 matmul {spread(mm_rate, fmt='.1f')}; {name} / matmul "
              f"{spread([b / m for b, m in zip(rate, mm_rate, strict=True)])}")
    speed = [b / c for b, c in zip(times["bare"], times["bare channels_last"], strict=True)]
    print(f"  channels_last / contiguous speed: {spread(speed)}x "
          f"({'channels_last' if statistics.median(speed) > 1 else 'contiguous'} faster)")
    for name in splits:
        print(f"  {name} / {same_layout} speed: "
              f"{spread(ratios_to_bare(times, name, same_layout))}x")
    return ratios_to_bare(times, default, same_layout)


def ratios_to_bare(times: dict[str, list[float]], name: str, bare: str) -> list[float]:
    """Per round: speed of side ``name`` over the bare loop ``bare`` (its time / ours)."""
    return [b / p for p, b in zip(times[name], times[bare], strict=True)]


def load_splits(args) -> dict:
    """The project path's loaders: the run's default workers on this device (``num_workers:
    null``) and, for comparison, 2 workers."""
    from ctxfusion.execution import default_num_workers

    default = default_num_workers(torch.device(args.device))
    splits = {f"project (num_workers {default}, default)":
              load_test_split(args.per_class, args.batch, default)}
    if default != 2:
        splits["project (num_workers 2)"] = load_test_split(args.per_class, args.batch, 2)
    return splits


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=3)
    p.add_argument("--per-class", type=int, default=2, help="val images per class (24 classes)")
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: " +
                   ", ".join(MODELS))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CTXFUSION_HOME"] = str(Path(tmp) / "home")
        os.environ.setdefault("CTXFUSION_OFFLINE", "1")
        splits = load_splits(args)
        count = len(next(iter(splits.values())).labels)
        print(f"extraction, {count} real Tiny ImageNet val JPEGs (64 px, streams at 224 px), "
              f"{machine(args.device)}; {args.warmup} untimed rounds (the check is the "
              f"first), {args.repeats} timed, in random order")
        results = {key: bench_model(key, splits, args, Path(tmp))
                   for key in args.models.split(",")}
    worst = min(results, key=lambda k: statistics.median(results[k]))
    others = ", ".join(f"{k} {statistics.median(v):.2f}x" for k, v in results.items())
    print(ratio_line(f"extraction_project_vs_bare (config defaults; worst model: {worst}; "
                     f"{others})", results[worst], TARGET))


if __name__ == "__main__":
    main()
