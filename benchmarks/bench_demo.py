"""Wall time and peak memory of ``make demo`` (``ctxfusion run configs/demo.yaml``).

    .venv/bin/python benchmarks/bench_demo.py [--full] [--keep DIR]

Runs ``ctxfusion run`` in a child process with a fresh temporary CTXFUSION_HOME (nothing
cached: the benchmark images are generated, features extracted, heads trained) and
CTXFUSION_SHARED set; reports the child's wall time and peak RSS (``os.wait4``: the largest
single process, so loader worker processes are not added to it) and the run's own step
timings from run.json.

Default: the demo trimmed to its first dataset at half its size (1,200 / 400 images), 3 blur
sigmas, 3 FGSM eps, 1 white-box eps on 24 images, 1 adversarial-retraining epoch: every step
of the demo still runs (about a minute or two on 2 quiet cores). ``--full``: the demo config
as ``make demo`` runs it (about 4-5 minutes on 2 cores). ``--device`` and ``--repeats`` are
accepted for ``run_all.py``; the device comes from the config (``device: auto``).
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


def trimmed_config(folder: Path) -> Path:
    """The demo config with its first dataset only, half its images, fewer sigmas and eps,
    a smaller white-box sample and one adversarial-retraining epoch: every step still runs."""
    config = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    config["datasets"] = config["datasets"][:1]
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


def step_timings(out: Path) -> str:
    """The run's own timings (run.json), if it wrote them."""
    path = out / "run.json"
    if not path.is_file():
        return "no run.json"
    timings = json.loads(path.read_text(encoding="utf-8")).get("timings", {})
    return ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()
                     if isinstance(v, int | float)) or "no timings recorded"


def main() -> None:
    p = parser(__doc__.splitlines()[0], repeats=1)
    p.add_argument("--full", action="store_true", help="the whole demo config (4-5 min)")
    p.add_argument("--keep", type=Path, help="keep the run directory here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = DEMO if args.full else trimmed_config(folder)
        out = args.keep or folder / "run"
        seconds, peak, status = run(config, out, folder / "home")
        print(f"ctxfusion run {'configs/demo.yaml' if args.full else 'demo, trimmed'} "
              f"(fresh CTXFUSION_HOME), exit status {status}")
        print(f"step timings (run.json): {step_timings(out)}")
    if status:
        raise SystemExit(f"ctxfusion run failed with status {status}")
    label = "demo (full)" if args.full else "demo (trimmed: 1 dataset, half size, 3 sigmas, 3 eps)"
    print(f"{label}: {seconds:.0f} s, peak {peak:.2f} GB")


if __name__ == "__main__":
    main()
