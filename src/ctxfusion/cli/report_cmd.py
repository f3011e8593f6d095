"""``ctxfusion report RUN_DIR``: redraw the figures and rebuild report.html of a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctxfusion.errors import DataError
from ctxfusion.report.layout import build_report
from ctxfusion.report.rundir import load_run, read_run_info
from ctxfusion.schema import RunPaths


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run directory written by `ctxfusion run` (with results.csv)")


def main(args: argparse.Namespace) -> int:
    """Rebuild the figures and the page; print the page's path, after a warning when the run
    is not complete. Bad input raises DataError."""
    paths = RunPaths(Path(args.run_dir))
    if paths.run_json.is_file() and not paths.results_csv.is_file():
        status = read_run_info(paths.run_json).state
        if status != "complete":
            raise DataError(f"{paths.root}: incomplete run (status: {status}) with no finished "
                            "dataset yet (no results.csv): nothing to report; rerun the same "
                            "`ctxfusion run` command to resume it")
    message = load_run(paths.root).incomplete()
    if message:
        print(f"warning: {message}", file=sys.stderr)
    path = build_report(paths.root)
    print(path)
    return 0
