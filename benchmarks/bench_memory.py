"""Peak memory (max RSS) of what scales with work: attack gradients and dataset size.

1. ``gradient``: one FGSM gradient through both streams of ``configs/offline-cifar10.yaml``
   (EfficientNet-Lite0 + SqueezeNet-Places365 at 224 px) for a batch of 64 images, with the
   whole batch in one backward graph (``--gradient-batch 64``, the behaviour before
   ``gradient_batch_size``) and in chunks of 16 (the default): peak RSS and images/s.
2. ``dataset``: ``ctxfusion run`` of the demo's first dataset at 1x and 4x its size (a fresh
   cache each): the peak must not grow with the number of images beyond their features.

Each measurement runs in its own process (max RSS is per process), variants interleaved,
repeated; medians with min-max. ``--skip-dataset`` leaves out part 2 (about 10 min on 2 cores).

    .venv/bin/python benchmarks/bench_memory.py [--repeats 3] [--skip-dataset]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GRADIENT_CHILD = """
import resource, sys, time, torch
from ctxfusion.allocator import keep_freed_memory
keep_freed_memory()
from ctxfusion import create_stream
from ctxfusion.models import FusionClassifier, LinearHead
from ctxfusion.perturb.attacks import fgsm_direction
torch.manual_seed(0)
fg, bg = create_stream("efficientnet-lite0-imagenet"), create_stream("squeezenet-places365")
model = FusionClassifier([fg, bg], LinearHead([fg.feature_dim, bg.feature_dim], 10)).eval()
x, y = torch.rand(64, 3, 32, 32), torch.randint(0, 10, (64,))
chunk = int(sys.argv[1])
fgsm_direction(model, x, y, max_batch=chunk)  # warm-up (oneDNN builds its kernels)
start = time.perf_counter()
for _ in range(2):
    fgsm_direction(model, x, y, max_batch=chunk)
seconds = time.perf_counter() - start
print(128 / seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"


def gradient(repeats: int) -> None:
    chunks = (64, 16)
    speed: dict[int, list[float]] = {c: [] for c in chunks}
    peak: dict[int, list[float]] = {c: [] for c in chunks}
    for _ in range(repeats):
        for chunk in chunks:  # interleaved, so a slow moment of the machine hits both
            out = subprocess.run([sys.executable, "-c", GRADIENT_CHILD, str(chunk)],
                                 capture_output=True, text=True, check=True).stdout.split()
            speed[chunk].append(float(out[0]))
            peak[chunk].append(float(out[1]))
    print("FGSM gradient, 64 images, fg+bg of offline-cifar10 (median, min-max)")
    print(f"{'images per graph':>17} {'peak RSS GB':>20} {'images/s':>20}")
    for chunk in chunks:
        print(f"{chunk:>17} {_median(peak[chunk]):>20} {_median(speed[chunk]):>20}")
    ratio = statistics.median(peak[64]) / statistics.median(peak[16])
    print(f"peak 64 / peak 16: {ratio:.2f}x")


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-dataset", action="store_true")
    args = parser.parse_args()
    gradient(args.repeats)
    if not args.skip_dataset:
        print()
        dataset()


if __name__ == "__main__":
    main()
