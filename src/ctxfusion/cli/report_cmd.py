"""``ctxfusion report RUN_DIR``: redraw the figures and rebuild report.html of a run."""

from __future__ import annotations

import argparse

from ctxfusion.report.html import build_report


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run directory written by `ctxfusion run` (with results.csv)")


def main(args: argparse.Namespace) -> int:
    """Rebuild the figures and the page; print the page's path. Bad input raises DataError."""
    path = build_report(args.run_dir)
    print(path)
    return 0
