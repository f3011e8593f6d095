"""Reading a run directory (results.csv, differences.csv, weights.csv, pca.csv, run.json,
config.yaml); file names and columns come from :mod:`ctxfusion.schema`.

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
from ctxfusion.schema import (
    CONFIG_YAML,
    DIFFERENCE_COLUMNS,
    DIFFERENCES_CSV,
    PCA_COLUMNS,
    PCA_CSV,
    RESULT_COLUMNS,
    RESULTS_CSV,
    RUN_JSON,
    THREATS,
    WEIGHT_COLUMNS,
    WEIGHTS_CSV,
)
from ctxfusion.stats import wilson_interval


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
    threat: str = "none"
    seed: int = 0
    ci_low: float = 0.0
    ci_high: float = 1.0


@dataclass(frozen=True)
class DifferenceRow:
    """A paired comparison of two classifiers on the same images (a row of differences.csv)."""

    experiment: str
    dataset: str
    subset: str
    source: str
    threat: str
    perturbation: str
    level: float
    seed: int
    classifier_a: str
    classifier_b: str
    acc_a: float
    acc_b: float
    diff: float
    ci_low: float
    ci_high: float
    n: int
    a_only: int
    b_only: int
    mcnemar_p: float


@dataclass(frozen=True)
class WeightRow:
    """One stream's contribution to a joint head (a row of weights.csv).

    Older files carry only the mean |w|: then ``alpha_sum``, ``alpha_mean``,
    ``scaled_weight`` and ``logit_share`` are None, ``seed`` is 0 and ``alpha_reduction`` is
    the run's (run.json ``alpha_reduction``, else ``mean``: the loss averaged the CE then).
    """

    dataset: str
    subset: str
    classifier: str
    alpha: float
    stream: str
    mean_abs_weight: float
    alpha_reduction: str = "mean"
    alpha_sum: float | None = None
    alpha_mean: float | None = None
    seed: int = 0
    scaled_weight: float | None = None
    logit_share: float | None = None


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
    differences: list[DifferenceRow] | None = None
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

    def image_size(self, dataset: str) -> int | None:
        """The working image size in pixels (run.json), or None when not recorded."""
        size = self.dataset_info(dataset).get("image_size")
        return int(size) if isinstance(size, int | float) and size > 0 else None

    def seeds(self) -> list[int]:
        """The repeats' seeds found in results.csv (ascending)."""
        return sorted({r.seed for r in self.results}) or [0]

    @property
    def alpha_reduction(self) -> str:
        """How the joint heads' CE was reduced: ``mean`` (default of older runs) or ``sum``."""
        value = self.run_info.get("alpha_reduction")
        if value in ("mean", "sum"):
            return str(value)
        recorded = {w.alpha_reduction for w in self.weights or []}
        return recorded.pop() if len(recorded) == 1 else "mean"


def _read_csv(path: Path, columns: tuple[str, ...],
              expected: tuple[str, ...] | None = None) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV file as (line number, dict); checks that every column is present."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {missing}; found {header}, "
                    f"expected {list(expected or columns)}"
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


def _optional(path: Path, line: int, row: dict[str, str], column: str,
              **limits: float) -> float | None:
    """Like :func:`_number`, but None when the column is absent or empty (older files)."""
    if not (row.get(column) or "").strip():
        return None
    return _number(path, line, row, column, **limits)


def _choice(path: Path, line: int, row: dict[str, str], column: str,
            valid: tuple[str, ...]) -> str:
    value = (row.get(column) or "").strip()
    if value not in valid:
        raise DataError(f"{path} line {line}: column {column!r} = {value!r}; "
                        f"valid: {', '.join(valid)}")
    return value


#: the columns of results.csv that older runs did not write (they are inferred)
NEW_RESULT_COLUMNS = ("threat", "seed", "ci_low", "ci_high")


def infer_threat(perturbation: str, classifier: str, source: str) -> str:
    """The threat of an older row: none for clean/blur, white-box when the attack was crafted
    on the classifier itself, transfer when it was crafted on another one."""
    if perturbation in ("none", "blur") or not source:
        return "none"
    return "whitebox" if source == classifier else "transfer"


def wilson(accuracy: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of an accuracy over ``n`` images ((0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    low, high = wilson_interval(int(round(accuracy * n)), n)
    return float(low), float(high)


def _result_row(path: Path, line: int, row: dict[str, str]) -> ResultRow:
    text = {c: (row.get(c) or "").strip() for c in RESULT_COLUMNS}
    for column in ("dataset", "subset", "classifier", "perturbation"):
        if not text[column]:
            raise DataError(f"{path} line {line}: column {column!r} is empty")
    accuracy = _number(path, line, row, "accuracy", low=0.0, high=1.0)
    n = _number(path, line, row, "n", kind=int, low=0)
    threat = (_choice(path, line, row, "threat", THREATS) if text["threat"] else
              infer_threat(text["perturbation"], text["classifier"], text["source"]))
    seed = _number(path, line, row, "seed", kind=int) if text["seed"] else 0
    low = _optional(path, line, row, "ci_low", low=0.0, high=1.0)
    high = _optional(path, line, row, "ci_high", low=0.0, high=1.0)
    if low is None or high is None:
        low, high = wilson(accuracy, n)
    elif low > high:
        raise DataError(f"{path} line {line}: ci_low = {low} is above ci_high = {high}")
    return ResultRow(
        experiment=text["experiment"], dataset=text["dataset"], subset=text["subset"],
        classifier=text["classifier"], source=text["source"], perturbation=text["perturbation"],
        level=_number(path, line, row, "level", low=0.0), accuracy=accuracy, n=n,
        threat=threat, seed=seed, ci_low=low, ci_high=high,
    )


def read_results(path: Path) -> list[ResultRow]:
    """Parse results.csv (accuracy in [0,1], level >= 0, n a non-negative integer).

    A file without ``threat``/``seed``/``ci_low``/``ci_high`` (older runs) still loads: the
    threat is inferred (:func:`infer_threat`), the seed is 0 and the interval is Wilson's.
    """
    required = tuple(c for c in RESULT_COLUMNS if c not in NEW_RESULT_COLUMNS)
    return [_result_row(path, line, row)
            for line, row in _read_csv(path, required, RESULT_COLUMNS)]


def read_differences(path: Path) -> list[DifferenceRow]:
    """Parse differences.csv (accuracies in [0,1], diff and its interval in [-1,1])."""
    rows = []
    for line, row in _read_csv(path, DIFFERENCE_COLUMNS):
        text = {c: (row.get(c) or "").strip() for c in DIFFERENCE_COLUMNS}
        for column in ("dataset", "subset", "perturbation", "classifier_a", "classifier_b"):
            if not text[column]:
                raise DataError(f"{path} line {line}: column {column!r} is empty")
        unit = {"low": 0.0, "high": 1.0}
        signed = {"low": -1.0, "high": 1.0}
        rows.append(DifferenceRow(
            experiment=text["experiment"], dataset=text["dataset"], subset=text["subset"],
            source=text["source"], threat=_choice(path, line, row, "threat", THREATS),
            perturbation=text["perturbation"], level=_number(path, line, row, "level", low=0.0),
            seed=_number(path, line, row, "seed", kind=int),
            classifier_a=text["classifier_a"], classifier_b=text["classifier_b"],
            acc_a=_number(path, line, row, "acc_a", **unit),
            acc_b=_number(path, line, row, "acc_b", **unit),
            diff=_number(path, line, row, "diff", **signed),
            ci_low=_number(path, line, row, "ci_low", **signed),
            ci_high=_number(path, line, row, "ci_high", **signed),
            n=_number(path, line, row, "n", kind=int, low=0),
            a_only=_number(path, line, row, "a_only", kind=int, low=0),
            b_only=_number(path, line, row, "b_only", kind=int, low=0),
            mcnemar_p=_number(path, line, row, "mcnemar_p", **unit),
        ))
    return rows


def read_weights(path: Path, alpha_reduction: str = "mean") -> list[WeightRow]:
    """Parse weights.csv (stream fg or bg, alpha >= 0, mean |w| >= 0); the scale-aware
    columns of newer files are optional (None when absent)."""
    required = ("dataset", "subset", "classifier", "alpha", "stream", "mean_abs_weight")
    rows = []
    for line, row in _read_csv(path, required, WEIGHT_COLUMNS):
        reduction = (row.get("alpha_reduction") or "").strip()
        rows.append(WeightRow(
            dataset=row["dataset"].strip(), subset=row["subset"].strip(),
            classifier=row["classifier"].strip(),
            alpha=_number(path, line, row, "alpha", low=0.0),
            stream=_choice(path, line, row, "stream", ("fg", "bg")),
            mean_abs_weight=_number(path, line, row, "mean_abs_weight", low=0.0),
            alpha_reduction=(_choice(path, line, row, "alpha_reduction", ("mean", "sum"))
                             if reduction else alpha_reduction),
            alpha_sum=_optional(path, line, row, "alpha_sum", low=0.0),
            alpha_mean=_optional(path, line, row, "alpha_mean", low=0.0),
            seed=(_number(path, line, row, "seed", kind=int)
                  if (row.get("seed") or "").strip() else 0),
            scaled_weight=_optional(path, line, row, "scaled_weight", low=0.0),
            logit_share=_optional(path, line, row, "logit_share", low=0.0, high=1.0),
        ))
    return rows


def read_pca(path: Path) -> list[PcaRow]:
    """Parse pca.csv (stream fg or bg, condition clean or blur)."""
    rows = []
    for line, row in _read_csv(path, PCA_COLUMNS):
        rows.append(PcaRow(
            dataset=row["dataset"].strip(), stream=_choice(path, line, row, "stream", ("fg", "bg")),
            condition=_choice(path, line, row, "condition", ("clean", "blur")),
            label=row["label"].strip(),
            pc1=_number(path, line, row, "pc1"), pc2=_number(path, line, row, "pc2"),
        ))
    return rows


def _repeat_warning(results: list[ResultRow]) -> str | None:
    """A warning when rows repeat a key (experiment ... level, threat, seed), else None."""
    seen: set[tuple] = set()
    repeated = []
    for row in results:
        key = (row.experiment, row.dataset, row.subset, row.classifier, row.source, row.threat,
               row.perturbation, row.level, row.seed)
        if key in seen:
            repeated.append(key)
        seen.add(key)
    if not repeated:
        return None
    return (f"{RESULTS_CSV}: {len(repeated)} row(s) repeat the (experiment, dataset, subset, "
            "classifier, source, threat, perturbation, level, seed) of an earlier row, e.g. "
            f"{repeated[0]}; tables and figures show the one with the largest n (the last on "
            "ties)")


def _read_run_json(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(info, dict):
        raise DataError(f"{path}: top level must be a JSON object, got {type(info).__name__}")
    if not isinstance(info.get("datasets", {}), dict):
        raise DataError(f"{path}: key 'datasets' must be an object "
                        "{name: {has_boxes, subsets, ...}}")
    return info


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory; only results.csv is required."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory not found: {run_dir} (expected a folder written by "
                        f"`ctxfusion run`, containing {RESULTS_CSV})")
    results_path = run_dir / RESULTS_CSV
    if not results_path.is_file():
        raise DataError(f"{results_path} not found: a run directory must contain {RESULTS_CSV} "
                        "(columns: " + ",".join(RESULT_COLUMNS) + ")")
    run = RunData(run_dir=run_dir, results=read_results(results_path))
    warning = _repeat_warning(run.results)
    if warning:
        run.warnings.append(warning)
    info_path = run_dir / RUN_JSON
    if info_path.is_file():
        run.run_info = _read_run_json(info_path)
    else:
        run.warnings.append(f"{RUN_JSON} not found: run summary, class lists (chance "
                            "levels) and the threat model are incomplete")
    reduction = run.run_info.get("alpha_reduction")
    if (run_dir / WEIGHTS_CSV).is_file():
        run.weights = read_weights(run_dir / WEIGHTS_CSV,
                                   reduction if reduction in ("mean", "sum") else "mean")
    if (run_dir / PCA_CSV).is_file():
        run.pca = read_pca(run_dir / PCA_CSV)
    if (run_dir / DIFFERENCES_CSV).is_file():
        run.differences = read_differences(run_dir / DIFFERENCES_CSV)
    config_path = run_dir / CONFIG_YAML
    if config_path.is_file():
        try:
            run.config_text = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{config_path}: cannot read: {exc}") from exc
    else:
        run.warnings.append(f"{CONFIG_YAML} not found: the resolved config is not shown")
    return run
