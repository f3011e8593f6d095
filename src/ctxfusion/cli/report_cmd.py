"""``ctxfusion report RUN_DIR``: redraw the figures and rebuild report.html of a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctxfusion.errors import DataError
from ctxfusion.report.claims import evaluate_run, write_claims
from ctxfusion.report.layout import build_report
from ctxfusion.report.run_check import PARTIAL, check_readable
from ctxfusion.report.rundir import load_run, read_run_info
from ctxfusion.schema import RunPaths


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run directory written by `ctxfusion run` (with results.csv)")
    parser.add_argument("--partial", action="store_true",
                        help="also report a run that is not complete (interrupted, failed or "
                        "still running); the page and the claims tables are labelled partial")


def main(args: argparse.Namespace) -> int:
    """Rebuild the figures and the page; print the page's path, after a warning when the run
    is not complete (only with ``--partial``). Bad input, a run directory without run.json or
    with tables that do not match it raise DataError."""
    paths = RunPaths(Path(args.run_dir))
    if paths.run_json.is_file() and not paths.results_csv.is_file():
        status = read_run_info(paths.run_json).state
        if status != "complete":
            raise DataError(f"{paths.root}: incomplete run (status: {status}) with no finished "
                            "dataset yet (no results.csv): nothing to report; rerun the same "
                            "`ctxfusion run` command to resume it")
    partial = check_readable(paths.root, args.partial)
    message = load_run(paths.root).incomplete()
    if message:
        print(f"warning: {message}", file=sys.stderr)
    path = build_report(paths.root)
    if partial:  # the claims tables of a partial run say so in their run column
        label = f"{paths.root.resolve().name} ({PARTIAL})"
        write_claims(evaluate_run(paths.root, label), paths.root)
    print(path)
    return 0
