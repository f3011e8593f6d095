"""Peak memory (max RSS) of what scales with work: attack gradients and dataset size.

    .venv/bin/python benchmarks/bench_memory.py [--images 32] [--chunk 8] [--repeats 2]
        [--dataset]

1. ``gradient`` (always): one FGSM gradient through both streams of
   ``configs/offline-cifar10.yaml`` (EfficientNet-Lite0 + SqueezeNet-Places365 at 224 px) for
   ``--images`` images, with the whole batch in one backward graph (the behaviour before
   ``gradient_batch_size``) and in chunks of ``--chunk`` (``gradient_batch_size``; the
   config default is 16 of a 64-image batch, ``--images 64 --chunk 16``): peak RSS and
   images/s. Checked first: both give the identical direction (sha256 of sign(grad)).
2. ``dataset`` (opt-in, ``--dataset``, about 10 min on 2 cores): ``ctxfusion run`` of the
   demo's first dataset at 1x and 4x its size (a fresh cache each): the peak must not grow
   with the number of images beyond their features.

Each measurement runs in its own process (max RSS is per process), variants alternating,
repeated; medians with min-max. Each child runs one untimed gradient, then one timed (the
peak, the figure of interest, is reached by the first).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import parser, ratio_line

ROOT = Path(__file__).resolve().parents[1]

GRADIENT_CHILD = """
import hashlib, resource, sys, time, torch
from ctxfusion.allocator import keep_freed_memory
keep_freed_memory()
from ctxfusion import create_stream
from ctxfusion.models import FusionClassifier, LinearHead
from ctxfusion.perturb.attacks import fgsm_direction
torch.manual_seed(0)
fg, bg = create_stream("efficientnet-lite0-imagenet"), create_stream("squeezenet-places365")
model = FusionClassifier([fg, bg], LinearHead([fg.feature_dim, bg.feature_dim], 10)).eval()
n, chunk = int(sys.argv[1]), int(sys.argv[2])
g = torch.Generator().manual_seed(1)
x, y = torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
fgsm_direction(model, x, y, max_batch=chunk)  # warm-up (oneDNN builds its kernels)
start = time.perf_counter()
direction = fgsm_direction(model, x, y, max_batch=chunk)
seconds = time.perf_counter() - start
digest = hashlib.sha256(direction.numpy().tobytes()).hexdigest()[:16]
print(n / seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, digest)
"""


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"


def gradient(images: int, chunk: int, repeats: int) -> list[float]:
    """Peak RSS and images/s, whole batch vs chunks, alternating; per-pair peak ratios."""
    chunks = (images, chunk)
    rows: dict[int, list[list[str]]] = {c: [] for c in chunks}
    for i in range(repeats):
        for c in chunks if i % 2 == 0 else chunks[::-1]:
            out = subprocess.run([sys.executable, "-c", GRADIENT_CHILD, str(images), str(c)],
                                 capture_output=True, text=True, check=True).stdout.split()
            rows[c].append(out)
    digests = {r[2] for rs in rows.values() for r in rs}
    print(f"FGSM gradient, {images} images, fg+bg of offline-cifar10 (median, min-max)")
    print(f"check: identical direction (sha256 of sign(grad)) in every child: "
          f"{len(digests) == 1}")
    if len(digests) != 1:
        raise SystemExit("chunking changed the FGSM direction")
    print(f"{'images per graph':>17} {'peak RSS GB':>20} {'images/s':>20}")
    for c in chunks:
        print(f"{c:>17} {_median([float(r[1]) for r in rows[c]]):>20} "
              f"{_median([float(r[0]) for r in rows[c]]):>20}")
    return [float(a[1]) / float(b[1]) for a, b in zip(rows[images], rows[chunk], strict=True)]


def _scaled_demo(folder: Path, scale: int) -> Path:
    """The demo config with only its first dataset, ``scale`` times its size."""
    text = (ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8")
    line = re.search(r"^  - \{name: scenes-cs0\.8.*$", text, flags=re.M).group(0)
    scaled = (line.replace("num_train: 2400", f"num_train: {2400 * scale}")
              .replace("num_test: 800", f"num_test: {800 * scale}"))
    datasets = re.search(r"^datasets:\n(?:  - .*\n)+", text, flags=re.M).group(0)
    path = folder / f"demo-x{scale}.yaml"
    path.write_text(text.replace(datasets, f"datasets:\n{scaled}\n"), encoding="utf-8")
    return path


RUN_CHILD = """
import resource, sys
from ctxfusion.cli import main
status = main(["run", sys.argv[1], "--out", sys.argv[2]])
print(status, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def dataset() -> None:
    print("ctxfusion run, the demo's first dataset scaled (fresh cache; one run each)")
    print(f"{'scale':>6} {'train/test images':>18} {'peak RSS GB':>12}")
    for scale in (1, 4):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = _scaled_demo(folder, scale)
            out = subprocess.run([sys.executable, "-c", RUN_CHILD, str(config),
                                  str(folder / "run")], check=True, capture_output=True,
                                 text=True, env={**os.environ, "CTXFUSION_HOME": str(folder)})
            status, peak = out.stdout.split()[-2:]
            if status != "0":
                raise SystemExit(f"ctxfusion run failed: {out.stderr[-2000:]}")
            print(f"{scale:>5}x {2400 * scale:>8}/{800 * scale:<9} {float(peak):>12.2f}")


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=2)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--chunk", type=int, default=8, help="gradient_batch_size")
    p.add_argument("--dataset", action="store_true", help="also part 2 (about 10 min)")
    args = p.parse_args()
    if not args.device.startswith("cpu"):
        print(f"peak RSS is host memory: measured on the CPU (not {args.device})")
    ratios = gradient(args.images, args.chunk, args.repeats)
    if args.dataset:
        print()
        dataset()
    print(ratio_line(f"peak_rss_whole_batch_vs_chunks_of_{args.chunk}", ratios))


if __name__ == "__main__":
    main()
