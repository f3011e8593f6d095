"""Reading a run directory (results.csv, weights.csv, pca.csv, run.json, config.yaml).

The report is rebuilt from files another process wrote, possibly long ago or from a partial
run, so every file but results.csv is optional and every malformed value raises a
:class:`~ctxfusion.errors.DataError` naming the file, the line, the column and what is valid.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxfusion.errors import DataError

RESULT_COLUMNS = (
    "experiment", "dataset", "subset", "classifier", "source", "perturbation", "level",
    "accuracy", "n",
)
WEIGHT_COLUMNS = ("dataset", "subset", "classifier", "alpha", "stream", "mean_abs_weight")
PCA_COLUMNS = ("dataset", "stream", "condition", "label", "pc1", "pc2")


@dataclass(frozen=True)
class ResultRow:
    """One accuracy measurement (a row of results.csv)."""

    experiment: str
    dataset: str
    subset: str
    classifier: str
    source: str
    perturbation: str
    level: float
    accuracy: float
    n: int


@dataclass(frozen=True)
class WeightRow:
    """Mean |w| of one stream's half of a joint head (a row of weights.csv)."""

    dataset: str
    subset: str
    classifier: str
    alpha: float
    stream: str
    mean_abs_weight: float


@dataclass(frozen=True)
class PcaRow:
    """One feature vector projected on the first two principal components (pca.csv)."""

    dataset: str
    stream: str
    condition: str
    label: str
    pc1: float
    pc2: float


@dataclass
class RunData:
    """Everything the figures and the page need from one run directory."""

    run_dir: Path
    results: list[ResultRow]
    weights: list[WeightRow] | None = None
    pca: list[PcaRow] | None = None
    run_info: dict[str, Any] = field(default_factory=dict)
    config_text: str | None = None
    warnings: list[str] = field(default_factory=list)

    def datasets(self) -> list[str]:
        """Dataset names, in order of first appearance (results.csv, then run.json)."""
        names = list(dict.fromkeys(row.dataset for row in self.results))
        for name in self.run_info.get("datasets", {}) or {}:
            if name not in names:
                names.append(name)
        return names

    def dataset_info(self, dataset: str) -> dict[str, Any]:
        """The run.json entry of ``dataset`` (empty when absent)."""
        info = (self.run_info.get("datasets") or {}).get(dataset)
        return info if isinstance(info, dict) else {}

    def subset_classes(self, dataset: str, subset: str) -> list[str] | None:
        """Class names of ``subset`` of ``dataset`` from run.json, or None when unknown."""
        classes = (self.dataset_info(dataset).get("subsets") or {}).get(subset)
        return list(classes) if isinstance(classes, list) else None

    def chance(self, dataset: str, subset: str) -> float | None:
        """Chance accuracy 1/C of a subset, or None when run.json does not list its classes."""
        classes = self.subset_classes(dataset, subset)
        return 1.0 / len(classes) if classes else None

    def has_boxes(self, dataset: str) -> bool:
        """Whether the dataset has object boxes (run.json; else: it has blur rows)."""
        flag = self.dataset_info(dataset).get("has_boxes")
        if isinstance(flag, bool):
            return flag
        return any(r.dataset == dataset and r.perturbation == "blur" for r in self.results)


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file as (line number, dict); checks that every column is present."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {missing}; found {header}, "
                    f"expected {list(columns)}"
                )
            return [(reader.line_num, row) for row in reader if any((v or "").strip()
                                                                    for v in row.values())]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV: {exc}") from exc


def _number(path: Path, line: int, row: dict[str, str], column: str, kind: type = float,
            low: float | None = None, high: float | None = None) -> Any:
    """Parse ``row[column]`` as a finite number within [low, high], or raise DataError."""
    raw = (row.get(column) or "").strip()
    try:
        value: float | None = float(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or (kind is int and not value.is_integer()):
        raise DataError(f"{path} line {line}: column {column!r} = {raw!r} is not a valid "
                        f"{'integer' if kind is int else 'number'}")
    value = kind(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise DataError(f"{path} line {line}: column {column!r} = {raw!r} is outside "
                        f"[{low}, {high if high is not None else 'inf'}]")
    return value


def read_results(path: Path) -> list[ResultRow]:
    """Parse results.csv (accuracy in [0,1], level >= 0, n a non-negative integer)."""
    rows = []
    for line, row in _read_csv(path, RESULT_COLUMNS):
        text = {c: (row.get(c) or "").strip() for c in RESULT_COLUMNS}
        for column in ("dataset", "subset", "classifier", "perturbation"):
            if not text[column]:
                raise DataError(f"{path} line {line}: column {column!r} is empty")
        rows.append(ResultRow(
            experiment=text["experiment"], dataset=text["dataset"], subset=text["subset"],
            classifier=text["classifier"], source=text["source"],
            perturbation=text["perturbation"],
            level=_number(path, line, row, "level", low=0.0),
            accuracy=_number(path, line, row, "accuracy", low=0.0, high=1.0),
            n=_number(path, line, row, "n", kind=int, low=0),
        ))
    return rows


def read_weights(path: Path) -> list[WeightRow]:
    """Parse weights.csv (stream fg or bg, alpha >= 0, mean |w| >= 0)."""
    rows = []
    for line, row in _read_csv(path, WEIGHT_COLUMNS):
        stream = (row.get("stream") or "").strip()
        if stream not in ("fg", "bg"):
            raise DataError(f"{path} line {line}: column 'stream' = {stream!r}; valid: fg, bg")
        rows.append(WeightRow(
            dataset=row["dataset"].strip(), subset=row["subset"].strip(),
            classifier=row["classifier"].strip(),
            alpha=_number(path, line, row, "alpha", low=0.0), stream=stream,
            mean_abs_weight=_number(path, line, row, "mean_abs_weight", low=0.0),
        ))
    return rows


def read_pca(path: Path) -> list[PcaRow]:
    """Parse pca.csv (stream fg or bg, condition clean or blur)."""
    rows = []
    for line, row in _read_csv(path, PCA_COLUMNS):
        stream = (row.get("stream") or "").strip()
        condition = (row.get("condition") or "").strip()
        if stream not in ("fg", "bg"):
            raise DataError(f"{path} line {line}: column 'stream' = {stream!r}; valid: fg, bg")
        if condition not in ("clean", "blur"):
            raise DataError(f"{path} line {line}: column 'condition' = {condition!r}; "
                            "valid: clean, blur")
        rows.append(PcaRow(
            dataset=row["dataset"].strip(), stream=stream, condition=condition,
            label=row["label"].strip(),
            pc1=_number(path, line, row, "pc1"), pc2=_number(path, line, row, "pc2"),
        ))
    return rows


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory; only results.csv is required."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory not found: {run_dir} (expected a folder written by "
                        "`ctxfusion run`, containing results.csv)")
    results_path = run_dir / "results.csv"
    if not results_path.is_file():
        raise DataError(f"{results_path} not found: a run directory must contain results.csv "
                        "(columns: " + ",".join(RESULT_COLUMNS) + ")")
    run = RunData(run_dir=run_dir, results=read_results(results_path))
    seen: set[tuple] = set()
    repeated = []
    for row in run.results:
        key = (row.experiment, row.dataset, row.subset, row.classifier, row.source,
               row.perturbation, row.level)
        if key in seen:
            repeated.append(key)
        seen.add(key)
    if repeated:
        run.warnings.append(
            f"{results_path.name}: {len(repeated)} row(s) repeat the (experiment, dataset, subset, "
            f"classifier, source, perturbation, level) of an earlier row, e.g. {repeated[0]}; "
            "tables and figures show the last one")
    if (run_dir / "weights.csv").is_file():
        run.weights = read_weights(run_dir / "weights.csv")
    if (run_dir / "pca.csv").is_file():
        run.pca = read_pca(run_dir / "pca.csv")
    info_path = run_dir / "run.json"
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{info_path}: not valid JSON: {exc}") from exc
        if not isinstance(info, dict):
            raise DataError(f"{info_path}: top level must be a JSON object, got "
                            f"{type(info).__name__}")
        if not isinstance(info.get("datasets", {}), dict):
            raise DataError(f"{info_path}: key 'datasets' must be an object "
                            "{name: {has_boxes, subsets, ...}}")
        run.run_info = info
    else:
        run.warnings.append(f"{info_path.name} not found: run summary, class lists (chance "
                            "levels) and the threat model are incomplete")
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        try:
            run.config_text = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{config_path}: cannot read: {exc}") from exc
    else:
        run.warnings.append(f"{config_path.name} not found: the resolved config is not shown")
    return run
