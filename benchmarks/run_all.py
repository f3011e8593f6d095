"""Run every ``bench_*.py`` beside this file, each in its own process, then list headlines.

    .venv/bin/python benchmarks/run_all.py [--device cuda] [--repeats N] [--warmup N]

The arguments are passed to every benchmark, so give only the flags they all take
(``--device``, ``--repeats``, ``--warmup``). Each benchmark prints its headline (a ratio, or
the demo's wall time and peak) as its last line; they are repeated at the end with each
benchmark's wall time. About 10-12 minutes on 2 quiet CPU cores.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def run(script: Path, args: list[str]) -> tuple[int, str, float]:
    """Run one benchmark, echoing its output; (exit status, last line, seconds)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                             text=True, bufsize=1)
    last = ""
    for line in child.stdout:
        print(line, end="", flush=True)
        if line.strip():
            last = line.strip()
    status = child.wait()
    return status, last, time.perf_counter() - start


def main() -> int:
    here = Path(__file__).resolve().parent
    summary, failed = [], []
    start = time.perf_counter()
    for script in sorted(here.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        status, last, seconds = run(script, sys.argv[1:])
        if status:
            failed.append(script.name)
            last = f"FAILED (exit status {status})"
        summary.append(f"{script.name:<22} {seconds:5.0f} s  {last}")
        print(flush=True)
    print(f"== headlines ({time.perf_counter() - start:.0f} s in all)")
    print("\n".join(summary))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
