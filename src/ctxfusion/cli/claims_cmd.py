"""``ctxfusion claims RUN_DIR [RUN_DIR ...] [--out DIR]``: the paper's claims, judged.

Evaluates every claim of SPEC §5 on each dataset of each run directory (rules:
:mod:`ctxfusion.report.claims`) and writes ``claims.csv`` and ``claims.md``. Where: ``--out
DIR`` when given; else, for one run directory, that directory; several run directories need
``--out`` (a table across runs belongs to none of them). Prints the markdown table and the
paths written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctxfusion.errors import ConfigError
from ctxfusion.report.claims import evaluate_run, render_markdown, write_claims
from ctxfusion.report.run_check import PARTIAL, check_readable
from ctxfusion.report.rundir import load_run


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments."""
    parser.add_argument("run_dirs", metavar="RUN_DIR", nargs="+",
                        help="run directories written by `ctxfusion run` (with results.csv)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="where to write claims.csv and claims.md (default: the run "
                        "directory when only one is given; required for several)")
    parser.add_argument("--dataset", dest="datasets", action="append", default=[],
                        metavar="NAME", help="judge only this dataset of the runs "
                        "(repeatable; default: every dataset)")
    parser.add_argument("--partial", action="store_true",
                        help="also judge runs that are not complete; their columns are "
                        "labelled partial")


def _labels(paths: list[Path]) -> list[str]:
    """Column labels: folder names, or the paths as given where two names clash."""
    names = [p.resolve().name for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names, strict=True)]


def main(args: argparse.Namespace) -> int:
    """Judge the claims of each run; write the two files. Bad input raises a CtxfusionError."""
    paths = [Path(p) for p in args.run_dirs]
    if args.out is None and len(paths) > 1:
        raise ConfigError(f"{len(paths)} run directories given: pass --out DIR for the "
                          "claims table across runs")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out}: is a file, not a folder: give a folder (new or "
                          "existing) for claims.csv and claims.md")
    partial = [check_readable(p, args.partial) for p in paths]
    runs = [load_run(p) for p in paths]  # every directory is checked before anything is written
    labels = [f"{label} ({PARTIAL})" if part else label
              for label, part in zip(_labels(paths), partial, strict=True)]
    rows = [row for run, label in zip(runs, labels, strict=True)
            for row in evaluate_run(run, label)
            if not args.datasets or row.dataset in args.datasets]
    found = {row.dataset for row in rows}
    missing = [name for name in args.datasets if name not in found]
    if missing:
        raise ConfigError(f"--dataset {missing[0]}: no such dataset in the run directories; "
                          f"they hold {', '.join(sorted({d for r in runs for d in r.datasets()}))}")
    out = Path(args.out) if args.out is not None else paths[0]
    csv_path, md_path = write_claims(rows, out)
    print(render_markdown(rows))
    print(csv_path)
    print(md_path)
    return 0
