"""Images/s of a 224-px backbone on the CPU with and without ``keep_freed_memory``.

    .venv/bin/python benchmarks/bench_allocator.py [--model resnet18] [--batch 16]
        [--batches 3] [--repeats 3] [--warmup 3]

The allocator setting is process-wide, so each measurement is its own child process: the
two variants alternate (default, tuned, tuned, default, ...), ``--repeats`` children each.
A child runs ``--warmup`` untimed batches, then ``--batches`` timed ones, and prints its
images/s, kernel (system) CPU seconds and a sha256 of its outputs: both variants must
compute identical features (checked). ``--model``: resnet18 (torchvision, random weights:
speed only) or a registered stream name.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from _timing import parser, ratio_line, spread

CHILD = """
import hashlib, resource, sys, time, torch, torchvision
from ctxfusion.allocator import keep_freed_memory
variant, batch, batches, warmup, model_name = sys.argv[1:6]
if variant == "tuned":
    keep_freed_memory()
torch.manual_seed(0)
if model_name == "resnet18":
    model = torchvision.models.resnet18().eval()  # random weights: speed only
else:
    from ctxfusion import create_stream
    model = create_stream(model_name).eval()
x = torch.rand(int(batch), 3, 224, 224, generator=torch.Generator().manual_seed(1))
with torch.inference_mode():
    for _ in range(int(warmup)):
        out = model(x)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(int(batches)):
        out = model(x)
    seconds = time.perf_counter() - start
    r1 = resource.getrusage(resource.RUSAGE_SELF)
digest = hashlib.sha256(out.contiguous().numpy().tobytes()).hexdigest()[:16]
print(int(batch) * int(batches) / seconds, r1.ru_stime - r0.ru_stime, digest)
"""


def measure(variant: str, args) -> tuple[float, float, str]:
    """images/s, kernel seconds and output digest of one child process."""
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(args.batch),
                          str(args.batches), str(args.warmup), args.model],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), out[2]


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--batches", type=int, default=3, help="timed batches per child")
    p.add_argument("--model", default="resnet18",
                   help="resnet18 (torchvision, random weights) or a registered stream name")
    args = p.parse_args()
    if not args.device.startswith("cpu"):
        print(f"glibc allocator setting: CPU only; measured on the CPU (not {args.device})")
    results: dict[str, list[tuple[float, float, str]]] = {"default": [], "tuned": []}
    for i in range(args.repeats):
        order = ("default", "tuned") if i % 2 == 0 else ("tuned", "default")
        for variant in order:
            results[variant].append(measure(variant, args))
    digests = {r[2] for rs in results.values() for r in rs}
    print(f"{args.model} forward, batch {args.batch} x 3 x 224 x 224, cpu, {args.batches} "
          f"batches after {args.warmup} warm-ups per child, {args.repeats} children per "
          f"variant, alternating")
    print(f"check: outputs identical in every child (sha256): {len(digests) == 1}")
    if len(digests) != 1:
        raise SystemExit("the variants computed different outputs")
    print(f"{'allocator':>10} {'images/s':>22} {'kernel s':>22}")
    for variant, rows in results.items():
        print(f"{variant:>10} {spread([r[0] for r in rows], fmt='.1f'):>22} "
              f"{spread([r[1] for r in rows]):>22}")
    ratios = [t[0] / d[0] for d, t in zip(results["default"], results["tuned"], strict=True)]
    note = f"kernel s {statistics.median(r[1] for r in results['default']):.2f} -> " \
           f"{statistics.median(r[1] for r in results['tuned']):.2f}"
    print(ratio_line(f"allocator_tuned_vs_default[{args.model}]", ratios, limit=note))


if __name__ == "__main__":
    main()
