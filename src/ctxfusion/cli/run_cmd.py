"""``ctxfusion run CONFIG``: one experiment end to end, into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctxfusion.config import ExperimentConfig


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
    parser.add_argument(
        "--no-report", dest="report", action="store_false",
        help="write the results, tables and claims but not the figures and report.html "
        "(for sweeps; `ctxfusion report OUT` builds them later)",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="validate the config (YAML, keys, types, ranges, stream names, adaptive targets) "
        "and --out, say what the run would do, and exit without running (0: it would run)",
    )


def main(args: argparse.Namespace) -> int:
    if args.out:  # a second writer is refused at once, before the slow imports of a run
        from ctxfusion.experiments.rundir import RunDirLock

        RunDirLock(Path(args.out)).refuse_if_held()
    from ctxfusion.config import load_config
    from ctxfusion.distributed import is_main_process

    config = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / config.experiment
    if is_main_process():  # --out refused before the experiment layer's imports (seconds)
        from ctxfusion.experiments.recorder import check_run_dir

        check_run_dir(out, config.experiment, overwrite=args.overwrite)
    if args.check:
        return check_only(config, out, args.overwrite)
    from ctxfusion.experiments import run_experiment

    report = run_experiment(config, out, overwrite=args.overwrite, report=args.report)
    if not is_main_process():  # under torchrun, rank 0 speaks for the run
        return 0
    from ctxfusion.report.claims import evaluate_run, render_verdicts
    from ctxfusion.schema import RunPaths

    paths = RunPaths(out)
    print(f"\nThe paper's claims on this run (differences in points, 95 % intervals; the "
          f"evidence: {paths.claims_md}):\n")
    print(render_verdicts(evaluate_run(out)))
    built = report if report.is_file() else f"not built (`ctxfusion report {out}` builds it)"
    print(f"\nreport:     {built}\nclaims.csv: {paths.claims_csv}")
    return 0


def check_only(config: ExperimentConfig, out: Path, overwrite: bool) -> int:
    """``--check``, after the config and ``out`` were checked: the rest of what a run checks
    that needs neither the data nor the weights (those are checked when the run starts), and
    what the run would do with ``out``; nothing is written."""
    from ctxfusion.experiments.rundir import COMPLETE, REPLACE, RESUME, inspect_run_dir
    from ctxfusion.experiments.runner import check_adaptive_targets

    check_adaptive_targets(config)
    decision = inspect_run_dir(out, config.to_dict(), overwrite)
    what = {RESUME: f"resume the incomplete run in {out}",
            COMPLETE: f"do nothing: {out} is already complete with this config",
            REPLACE: f"move the run in {out} aside and run afresh"}.get(
                decision, f"start a fresh run in {out}")
    print(f"ok: {config.source_path or 'the config'} is valid; ctxfusion run would {what}")
    return 0
