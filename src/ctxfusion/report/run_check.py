"""What ``report`` and ``claims`` check before they read a run directory.

A run directory must hold run.json; its run must be complete (or the reader was asked for a
``--partial`` view); and its tables must hold the rows run.json records (``rows``,
``results_sha256``: written with the tables), so a file cut or edited after the run is
refused instead of judged. run.json files of older runs, without the record, pass that check.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ctxfusion.errors import DataError
from ctxfusion.io import sha256_file
from ctxfusion.report.rundir import read_run_info
from ctxfusion.schema import RunInfo, RunPaths

#: the label of every page and table made from an incomplete run with ``--partial``
PARTIAL = "partial"


def _data_rows(path: Path) -> int:
    """The number of rows of a CSV file after its header."""
    with open(path, newline="", encoding="utf-8") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def check_rows(paths: RunPaths, info: RunInfo) -> None:
    """Raise DataError when a table does not hold the rows (or results.csv the sha256) that
    run.json recorded."""
    if info.rows is None:
        return
    files = {"results": paths.results_csv, "differences": paths.differences_csv,
             "weights": paths.weights_csv, "pca": paths.pca_csv}
    for name, expected in sorted(info.rows.items()):
        path = files.get(name)
        if path is None:
            continue
        found = _data_rows(path) if path.is_file() else 0
        if found != expected:
            raise DataError(f"{path}: {found} rows, but {paths.run_json} records {expected}: "
                            "the file was cut or changed after the run wrote it; rerun the "
                            "`ctxfusion run` command into a new --out (or restore the file)")
    if info.results_sha256 and paths.results_csv.is_file():
        if sha256_file(paths.results_csv) != info.results_sha256:
            raise DataError(f"{paths.results_csv}: its content differs from what the run wrote "
                            f"(sha256 recorded in {paths.run_json}): the file was changed "
                            "after the run; rerun the `ctxfusion run` command into a new --out "
                            "(or restore the file)")


def check_readable(run_dir: Path, partial: bool = False) -> bool:
    """Raise DataError unless ``run_dir`` can be read as a finished run (``partial``: an
    unfinished one is allowed too). Returns whether the run is incomplete (a partial view)."""
    paths = RunPaths(run_dir)
    if not paths.root.is_dir() or not paths.results_csv.is_file():
        return False  # load_run names what is missing
    if not paths.run_json.is_file():
        raise DataError(f"{paths.root}: no {paths.run_json.name}: not a run directory written "
                        "by `ctxfusion run` (run.json records the status and the rows the "
                        "tables must hold), or run.json was deleted; rerun the run")
    info = read_run_info(paths.run_json)
    if info.state != "complete" and not partial:
        raise DataError(f"{paths.root}: the run is not complete (status: {info.state}): rerun "
                        "the same `ctxfusion run` command to finish it, or pass --partial for "
                        "a view of the finished part, labelled partial")
    check_rows(paths, info)
    return info.state != "complete"
