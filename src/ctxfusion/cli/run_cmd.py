"""``ctxfusion run CONFIG``: one experiment end to end, into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from ctxfusion.config import load_config
from ctxfusion.distributed import is_main_process


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML (see configs/)")
    parser.add_argument("--out", help="run directory (default: runs/<experiment>)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, YAML value, dotted keys: --set blur.sigmas=[1,5] "
        "--set datasets[0].num_train=200 (repeatable)",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="when --out holds a run of another config, move it aside to "
        "<out>.replaced-<time> (never deleted) and run afresh; without it such a run is refused",
    )


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    from ctxfusion.experiments import run_experiment

    out = Path(args.out) if args.out else Path("runs") / config.experiment
    report = run_experiment(config, out, overwrite=args.overwrite)
    if not is_main_process():  # under torchrun, rank 0 speaks for the run
        return 0
    from ctxfusion.report.claims import evaluate_run, render_verdicts
    from ctxfusion.schema import RunPaths

    paths = RunPaths(out)
    print(f"\nThe paper's claims on this run (differences in points, 95 % intervals; the "
          f"evidence: {paths.claims_md}):\n")
    print(render_verdicts(evaluate_run(out)))
    print(f"\nreport:     {report}\nclaims.csv: {paths.claims_csv}")
    return 0
