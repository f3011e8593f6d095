"""Images/s of a 224-px backbone on the CPU with and without ``keep_freed_memory``.

The allocator setting is process-wide, so each variant runs in its own subprocess.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import resource, sys, time, torch, torchvision
from ctxfusion.allocator import keep_freed_memory
if sys.argv[1] == "tuned":
    keep_freed_memory()
if sys.argv[4] == "resnet18":
    model = torchvision.models.resnet18().eval()  # random weights: speed only
else:
    from ctxfusion import create_stream
    model = create_stream(sys.argv[4])
x = torch.rand(int(sys.argv[2]), 3, 224, 224)
with torch.no_grad():
    for _ in range(3):
        model(x)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(int(sys.argv[3])):
        model(x)
    seconds = time.perf_counter() - start
    r1 = resource.getrusage(resource.RUSAGE_SELF)
print(int(sys.argv[2]) * int(sys.argv[3]) / seconds, r1.ru_stime - r0.ru_stime)
"""


def measure(variant: str, batch: int, repeats: int, model: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(batch), str(repeats), model],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="resnet18",
                        help="resnet18 (torchvision, random weights) or a registered stream name")
    args = parser.parse_args()
    default, default_sys = measure("default", args.batch, args.repeats, args.model)
    tuned, tuned_sys = measure("tuned", args.batch, args.repeats, args.model)
    print(f"{args.model} forward, batch {args.batch} x 3 x 224 x 224, cpu, "
          f"{args.repeats} batches after 3 warm-ups")
    print(f"{'allocator':>10} {'images/s':>9} {'kernel s':>9}")
    print(f"{'default':>10} {default:9.1f} {default_sys:9.2f}")
    print(f"{'tuned':>10} {tuned:9.1f} {tuned_sys:9.2f}   ratio {tuned / default:.1f}x")


if __name__ == "__main__":
    main()
