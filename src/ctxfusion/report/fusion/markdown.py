"""The robust fusion table as markdown (for the README): ``ctxfusion fusion-table RUN_DIR``.

The same table as report.html's robust fusion section (:mod:`.select`): per column the
accuracy in % [95 % interval] and, for each alpha and method row, the paired difference in
points vs fg and vs the fused classifier with its interval, marked **better** or **worse**
only where the interval excludes zero.
"""

from __future__ import annotations

from pathlib import Path

from ctxfusion.errors import ConfigError, DataError
from ctxfusion.report.fusion.select import (
    NO_DIFFERENCE,
    DiffCell,
    FusionTable,
    format_diff,
    format_point,
    fusion_tables,
)
from ctxfusion.report.rundir import RunData, load_run
from ctxfusion.roles import JOINT


def _diff(d: DiffCell | None) -> str:
    if d is None:
        return "-"
    return format_diff(d) + ("" if d.verdict == NO_DIFFERENCE else f" **{d.verdict}**")


def table_markdown(table: FusionTable) -> str:
    """One dataset/subset as a markdown table with a heading and a legend line."""
    head = ["classifier"]
    for c in table.columns:
        head += [f"{c.title}: accuracy", "vs fg", f"vs {table.base}"]
    lines = [f"### {table.dataset} / {table.subset}", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in table.rows:
        cells = [f"`{row.classifier}`"]
        for c in table.columns:
            cells.append(format_point(row.cells.get(c.key)))
            cells += [_diff(row.versus.get(role, {}).get(c.key)) for role in ("fg", JOINT)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


LEGEND = ("Accuracy in % [95 % interval] (mean over seeds of the per-seed Wilson bounds); "
          "blur in the boxes at the sigma closest to the paper's 10 px at 224 px; FGSM crafted "
          "on fg (fg itself white-box) and through each classifier's own gradient (white-box) "
          "at the transfer matrix's eps (pixel space); "
          "differences in percentage points [95 % paired interval] vs fg and vs the fused "
          "classifier (held-out rows: vs fg-heldout and joint-heldout), **better**/**worse** "
          f"only where the interval excludes zero (every seed), else {NO_DIFFERENCE}. "
          "A method counts as robust to white-box attacks only where its white-box column "
          "says so.")


def fusion_markdown(run_dir: str | Path | RunData, dataset: str | None = None) -> str:
    """The robust fusion tables of a run (of ``dataset``) as markdown; a run without robust
    fusion rows, or an unknown dataset, raises a :class:`~ctxfusion.errors.CtxfusionError`."""
    run = run_dir if isinstance(run_dir, RunData) else load_run(run_dir)
    if dataset is not None and dataset not in run.datasets():
        raise ConfigError(f"--dataset {dataset}: no such dataset in {run.run_dir}; it holds "
                          f"{', '.join(run.datasets()) or 'none'}")
    tables = fusion_tables(run, dataset)
    if not tables:
        where = f" for dataset {dataset}" if dataset else ""
        raise DataError(f"{run.run_dir}: results.csv has no rows of robust fusion or held-out "
                        f"classifiers{where} (joint-<method>, *-heldout): run a config with "
                        "fusion methods first")
    parts = ["## Robust fusion (beyond the paper)", "", LEGEND]
    parts += ["\n" + table_markdown(t) for t in tables]
    return "\n".join(parts) + "\n"
