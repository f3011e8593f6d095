"""The run directory: resolved config, provenance (versions, device, seeds, timings), results."""

from __future__ import annotations

import csv
import io
import json
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml

from ctxfusion.experiments.differences import Outcome, OutcomeKey, paired_differences
from ctxfusion.io import atomic_write_text
from ctxfusion.schema import (
    CONFIG_YAML,
    DIFFERENCE_COLUMNS,
    DIFFERENCES_CSV,
    PCA_COLUMNS,
    PCA_CSV,
    RESULT_COLUMNS,
    RESULTS_CSV,
    RESULTS_JSON,
    RUN_JSON,
    WEIGHT_COLUMNS,
    WEIGHTS_CSV,
)
from ctxfusion.stats import wilson_interval

_PACKAGES = ("ctxfusion", "torch", "torchvision", "numpy", "torchattacks", "pycocotools",
             "scikit-learn", "matplotlib", "safetensors")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_device(device: torch.device) -> str:
    """A human-readable device description (GPU name, or CPU with thread count)."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as CSV with a fixed column order, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k, "")) for k in columns})
    atomic_write_text(path, buffer.getvalue())


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


@dataclass
class RunRecorder:
    """Collects rows, timings and notes of one run and writes them into ``out``."""

    out: Path
    experiment: str
    started: float = field(default_factory=time.time)
    results: list[dict[str, Any]] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[OutcomeKey, Outcome] = field(default_factory=dict)
    weights: list[dict[str, Any]] = field(default_factory=list)
    pca: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_result(
        self, *, dataset: str, subset: str, classifier: str, perturbation: str, level: float,
        seed: int, rows: torch.Tensor, correct: torch.Tensor, source: str = "",
        threat: str = "none",
    ) -> None:
        """One accuracy row from per-image outcomes (``correct`` aligned with the test
        ``rows``), with its Wilson interval; the outcomes are kept for paired comparisons."""
        correct = correct.detach().cpu().bool()
        n, hits = len(correct), int(correct.sum())
        low, high = wilson_interval(hits, n)
        self.results.append({
            "experiment": self.experiment, "dataset": dataset, "subset": subset,
            "classifier": classifier, "source": source, "threat": threat,
            "perturbation": perturbation, "level": level, "seed": seed,
            "accuracy": hits / n if n else float("nan"), "ci_low": low, "ci_high": high, "n": n,
        })
        key = OutcomeKey(dataset, subset, classifier, source, threat, perturbation, level, seed)
        self.outcomes[key] = Outcome(rows.detach().cpu(), correct)

    def compare(self, dataset: str) -> None:
        """Add the paired differences of ``dataset``'s results (see ``differences``)."""
        mine = {k: v for k, v in self.outcomes.items() if k.dataset == dataset}
        self.differences += [{"experiment": self.experiment, **row}
                             for row in paired_differences(mine)]

    @contextmanager
    def timed(self, step: str):
        """Time a step; repeated steps accumulate."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - start

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            print(f"note: {text}", file=sys.stderr)

    def write_config(self, config_dict: dict[str, Any]) -> None:
        atomic_write_text(self.out / CONFIG_YAML, yaml.safe_dump(config_dict, sort_keys=False))

    def write(self) -> None:
        """Write results.csv/json, differences.csv, weights.csv, pca.csv and run.json (each
        atomically)."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_csv(self.out / RESULTS_CSV, RESULT_COLUMNS, self.results)
        rows = [{k: r.get(k, "") for k in RESULT_COLUMNS} for r in self.results]
        atomic_write_text(self.out / RESULTS_JSON, json.dumps(rows, indent=1))
        if self.differences:
            write_csv(self.out / DIFFERENCES_CSV, DIFFERENCE_COLUMNS, self.differences)
        if self.weights:
            write_csv(self.out / WEIGHTS_CSV, WEIGHT_COLUMNS, self.weights)
        if self.pca:
            write_csv(self.out / PCA_CSV, PCA_COLUMNS, self.pca)
        finished = time.time()
        run = {
            "experiment": self.experiment,
            "started": _iso(self.started),
            "finished": _iso(finished),
            "duration_s": round(finished - self.started, 2),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            **self.info,
            "notes": self.notes,
        }
        atomic_write_text(self.out / RUN_JSON, json.dumps(run, indent=1, default=str))


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")
