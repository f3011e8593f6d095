"""Reading a run directory (results.csv, differences.csv, weights.csv, pca.csv, run.json,
config.yaml); file names and columns come from :mod:`ctxfusion.schema`.

The report is rebuilt from files another process wrote, possibly long ago or from a partial
run, so every file but results.csv is optional and every malformed value raises a
:class:`~ctxfusion.errors.DataError` naming the file, the line, the column and what is valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ctxfusion.errors import DataError
from ctxfusion.schema import (
    ALPHA_REDUCTIONS,
    NEW_RESULT_COLUMNS,
    RESULT_COLUMNS,
    RESULTS_CSV,
    RUN_JSON,
    DatasetInfo,
    DifferenceRow,
    PcaRow,
    ResultRow,
    RunInfo,
    RunPaths,
    WeightRow,
    infer_threat,
    read_records,
    wilson,
)

__all__ = [
    "NEW_RESULT_COLUMNS", "DifferenceRow", "PcaRow", "ResultRow", "RunData", "WeightRow",
    "infer_threat", "load_run", "read_differences", "read_pca", "read_results",
    "read_weights", "wilson",
]


@dataclass
class RunData:
    """Everything the figures and the page need from one run directory; ``info`` is run.json
    (empty when the run has none)."""

    run_dir: Path
    results: list[ResultRow]
    weights: list[WeightRow] | None = None
    pca: list[PcaRow] | None = None
    differences: list[DifferenceRow] | None = None
    info: RunInfo = field(default_factory=RunInfo)
    config_text: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def paths(self) -> RunPaths:
        """The run directory's files."""
        return RunPaths(self.run_dir)

    @property
    def status(self) -> str:
        """run.json's status (``complete`` for older runs without one)."""
        return self.info.state

    def configured_datasets(self) -> list[str]:
        """The dataset names of config.yaml (empty when it is missing or unreadable)."""
        try:
            config = yaml.safe_load(self.config_text or "") or {}
        except yaml.YAMLError:
            return []
        listed = config.get("datasets") if isinstance(config, dict) else None
        return [str(d["name"]) for d in listed or [] if isinstance(d, dict) and "name" in d]

    def missing_datasets(self) -> list[str]:
        """Datasets of config.yaml that run.json does not list: not finished."""
        return [name for name in self.configured_datasets() if name not in self.info.datasets]

    def incomplete(self, status: str | None = None) -> str | None:
        """Why the run is incomplete (``status``: instead of run.json's), or None if it is
        complete."""
        status = status or self.status
        if status == "complete":
            return None
        why = {"running": "it is still running, or was killed",
               "failed": "an error ended it", "interrupted": "it was interrupted"}[status]
        missing = self.missing_datasets()
        parts = [f"{self.run_dir} is incomplete (status: {status}): {why}"]
        if self.info.error:
            parts.append(f"error: {self.info.error}")
        parts.append("datasets not finished: " + ", ".join(missing) if missing
                     else "every dataset finished, the end of the run (report) did not")
        parts.append("rerun the same `ctxfusion run` command to resume it")
        return "; ".join(parts)

    def datasets(self) -> list[str]:
        """Dataset names, in order of first appearance (results.csv, then run.json)."""
        names = list(dict.fromkeys(row.dataset for row in self.results))
        return names + [name for name in self.info.datasets if name not in names]

    def dataset_info(self, dataset: str) -> DatasetInfo:
        """run.json's entry of ``dataset`` (all fields unset when absent)."""
        return self.info.dataset(dataset)

    def subset_classes(self, dataset: str, subset: str) -> list[str] | None:
        """Class names of ``subset`` of ``dataset`` from run.json, or None when unknown."""
        classes = self.info.dataset(dataset).subsets.get(subset)
        return list(classes) if classes is not None else None

    def chance(self, dataset: str, subset: str) -> float | None:
        """Chance accuracy 1/C of a subset, or None when run.json does not list its classes."""
        classes = self.subset_classes(dataset, subset)
        return 1.0 / len(classes) if classes else None

    def has_boxes(self, dataset: str) -> bool:
        """Whether the dataset has object boxes (run.json; else: it has blur rows)."""
        flag = self.info.dataset(dataset).has_boxes
        if flag is not None:
            return flag
        return any(r.dataset == dataset and r.perturbation == "blur" for r in self.results)

    def image_size(self, dataset: str) -> int | None:
        """The working image size in pixels (run.json), or None when not recorded."""
        size = self.info.dataset(dataset).image_size
        return size if size is not None and size > 0 else None

    def seeds(self) -> list[int]:
        """The repeats' seeds found in results.csv (ascending)."""
        return sorted({r.seed for r in self.results}) or [0]

    @property
    def alpha_reduction_recorded(self) -> bool:
        """Whether run.json records a valid ``alpha_reduction``."""
        return self.info.alpha_reduction in ALPHA_REDUCTIONS

    @property
    def alpha_reduction(self) -> str:
        """How the joint heads' CE was reduced: ``mean`` (default of older runs) or ``sum``."""
        if self.alpha_reduction_recorded:
            return str(self.info.alpha_reduction)
        recorded = {w.alpha_reduction for w in self.weights or []}
        return recorded.pop() if len(recorded) == 1 else "mean"


def read_results(path: Path) -> list[ResultRow]:
    """Parse results.csv (accuracy in [0,1], level >= 0, n a non-negative integer).

    A file without ``threat``/``seed``/``ci_low``/``ci_high`` (older runs) still loads: the
    threat is inferred (:func:`infer_threat`), the seed is 0 and the interval is Wilson's.
    """
    return read_records(path, ResultRow)


def read_differences(path: Path) -> list[DifferenceRow]:
    """Parse differences.csv (accuracies in [0,1], diff and its interval in [-1,1])."""
    return read_records(path, DifferenceRow)


def read_weights(path: Path, alpha_reduction: str = "mean") -> list[WeightRow]:
    """Parse weights.csv (any stream name, alpha >= 0, mean |w| >= 0); the scale-aware
    columns of newer files are optional (None when absent), a missing ``alpha_reduction``
    is ``alpha_reduction`` (the run's)."""
    return read_records(path, WeightRow, {"alpha_reduction": alpha_reduction})


def read_pca(path: Path) -> list[PcaRow]:
    """Parse pca.csv (any stream name, condition clean or blur)."""
    return read_records(path, PcaRow)


def _repeat_warning(results: list[ResultRow]) -> str | None:
    """A warning when rows repeat a key (experiment ... region, level, seed), else None."""
    seen: set[tuple] = set()
    repeated = []
    for row in results:
        key = (row.experiment, row.dataset, row.subset, row.classifier, row.source, row.threat,
               row.perturbation, row.region, row.level, row.seed)
        if key in seen:
            repeated.append(key)
        seen.add(key)
    if not repeated:
        return None
    return (f"{RESULTS_CSV}: {len(repeated)} row(s) repeat the (experiment, dataset, subset, "
            "classifier, source, threat, perturbation, region, level, seed) of an earlier row, "
            "e.g. "
            f"{repeated[0]}; tables and figures show the one with the largest n (the last on "
            "ties)")


def read_run_info(path: Path) -> RunInfo:
    """Parse run.json into its typed sections (wrong types: DataError naming the key)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from exc
    return RunInfo.from_json(data, str(path))


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory; only results.csv is required."""
    paths = RunPaths(Path(run_dir))
    if not paths.root.is_dir():
        raise DataError(f"run directory not found: {paths.root} (expected a folder written by "
                        f"`ctxfusion run`, containing {RESULTS_CSV})")
    if not paths.results_csv.is_file():
        raise DataError(f"{paths.results_csv} not found: a run directory must contain "
                        f"{RESULTS_CSV} (columns: " + ",".join(RESULT_COLUMNS) + ")")
    run = RunData(run_dir=paths.root, results=read_results(paths.results_csv))
    warning = _repeat_warning(run.results)
    if warning:
        run.warnings.append(warning)
    if paths.run_json.is_file():
        run.info = read_run_info(paths.run_json)
    else:
        run.warnings.append(f"{RUN_JSON} not found: run summary, class lists (chance "
                            "levels) and the threat model are incomplete")
    reduction = run.info.alpha_reduction if run.alpha_reduction_recorded else "mean"
    if paths.weights_csv.is_file():
        run.weights = read_weights(paths.weights_csv, str(reduction))
    if paths.pca_csv.is_file():
        run.pca = read_pca(paths.pca_csv)
    if paths.differences_csv.is_file():
        run.differences = read_differences(paths.differences_csv)
    if paths.config_yaml.is_file():
        try:
            run.config_text = paths.config_yaml.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{paths.config_yaml}: cannot read: {exc}") from exc
    else:
        run.warnings.append(f"{paths.config_yaml.name} not found: the resolved config is not "
                            "shown")
    return run
