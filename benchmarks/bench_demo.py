"""Wall time, peak memory and each step's share of ``make demo`` (``configs/demo.yaml``).

    .venv/bin/python benchmarks/bench_demo.py [--full | --trimmed] [--keep DIR]

Runs ``ctxfusion run`` in a child process with a fresh temporary CTXFUSION_HOME (nothing
cached: the benchmark images are generated, features extracted, heads trained) and
CTXFUSION_SHARED set; reports the child's wall time and peak RSS (``os.wait4``: the largest
single process, so loader worker processes are not added to it) and, from run.json, each
step's seconds and share of the wall time (what to cut first when the demo grows).

Default: ``configs/demo.yaml`` as ``make demo`` runs it (about 3 minutes on 2 quiet cores).
``--full``: ``configs/demo-full.yaml`` (``make demo-full``, about 12 minutes). ``--trimmed``:
the demo at half its images, 3 sigmas, 3 eps, 24 white-box images and 1 adversarial-retraining
epoch, every step still running (about a minute). ``--device`` and
``--repeats`` are accepted for ``run_all.py``; the device comes from the config.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _timing import parser

from ctxfusion.paths import shared_dir

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
DEMO_FULL = ROOT / "configs" / "demo-full.yaml"


def trimmed_config(folder: Path) -> Path:
    """The demo config at half its images, fewer sigmas and eps, a smaller white-box sample
    and one adversarial-retraining epoch: every step still runs."""
    config = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    config["datasets"][0].update(num_train=1200, num_test=400)
    config["whitebox"]["max_images"] = 24
    config["advtrain"]["epochs"] = 1
    config["blur"]["sigmas"] = [0.001, 2.86, 12.9]
    config["fgsm"]["epsilons"] = [0, 0.01, 0.04]
    config["whitebox"]["epsilons"] = [0.01]
    path = folder / "demo-trimmed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run(config: Path, out: Path, home: Path) -> tuple[float, float, int]:
    """``ctxfusion run config --out out``: wall seconds, peak RSS GB, exit status."""
    env = {**os.environ, "CTXFUSION_HOME": str(home), "CTXFUSION_SHARED": str(shared_dir()),
           "CTXFUSION_OFFLINE": "1"}
    command = [sys.executable, "-m", "ctxfusion.cli", "run", str(config), "--out", str(out)]
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        print(stderr[-3000:], file=sys.stderr)
    return seconds, usage.ru_maxrss / 2**20, child.returncode


def step_shares(out: Path, wall: float) -> list[str]:
    """One line per step of the run's own timings (run.json): seconds and share of ``wall``,
    largest first (``dataset <name>`` totals hold their steps and are listed apart)."""
    path = out / "run.json"
    if not path.is_file():
        return ["no run.json"]
    timings = {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).get(
        "timings", {}).items() if isinstance(v, int | float)}
    steps = sorted(((k, v) for k, v in timings.items() if not k.startswith("dataset ")),
                   key=lambda item: -item[1])
    totals = [(k, v) for k, v in timings.items() if k.startswith("dataset ")]
    lines = [f"  {k:<24} {v:7.1f} s  {100 * v / wall:5.1f} %" for k, v in steps]
    lines += [f"  ({k}: {v:.1f} s, {100 * v / wall:.1f} %)" for k, v in totals]
    rest = wall - sum(v for _, v in steps)
    lines.append(f"  {'start-up and the rest':<24} {rest:7.1f} s  {100 * rest / wall:5.1f} %")
    return lines or ["no timings recorded"]


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=1)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--full", action="store_true", help="configs/demo-full.yaml (12 min)")
    which.add_argument("--trimmed", action="store_true", help="the demo at half size (1 min)")
    p.add_argument("--keep", type=Path, help="keep the run directory here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = DEMO_FULL if args.full else trimmed_config(folder) if args.trimmed else DEMO
        label = ("configs/demo-full.yaml" if args.full else "configs/demo.yaml"
                 + (" trimmed (half size, 3 sigmas, 3 eps)" if args.trimmed else ""))
        out = args.keep or folder / "run"
        seconds, peak, status = run(config, out, folder / "home")
        print(f"ctxfusion run {label} (fresh CTXFUSION_HOME), exit status {status}")
        print("steps (run.json), share of the wall time:")
        print("\n".join(step_shares(out, seconds)))
    if status:
        raise SystemExit(f"ctxfusion run failed with status {status}")
    print(f"{label}: {seconds:.0f} s, peak {peak:.2f} GB")


if __name__ == "__main__":
    main()
