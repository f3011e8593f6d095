"""The run directory: resolved config, provenance (versions, device, seeds, timings), results."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml

from ctxfusion.errors import ConfigError, DataError
from ctxfusion.experiments.differences import Outcome, OutcomeKey, paired_differences
from ctxfusion.io import atomic_write_text, writable_folder_problem
from ctxfusion.schema import (
    DifferenceRow,
    PcaRow,
    ResultRow,
    RunInfo,
    RunPaths,
    WeightRow,
    csv_text,
    record_dict,
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


R = TypeVar("R")


def write_records(path: Path, record_type: type[R], records: list[R]) -> Path:
    """Write ``records`` as CSV (the record type's columns), atomically."""
    return atomic_write_text(path, csv_text(record_type, records))


def as_records(record_type: type[R], items: list[R | dict[str, Any]]) -> list[R]:
    """``items`` as records; dicts (appended by older callers) are converted by column."""
    return [item if isinstance(item, record_type) else record_type(**item) for item in items]


@dataclass
class RunRecorder:
    """Collects rows, timings and notes of one run and writes them into ``out``."""

    out: Path
    experiment: str
    started: float = field(default_factory=time.time)
    results: list[ResultRow] = field(default_factory=list)
    differences: list[DifferenceRow] = field(default_factory=list)
    outcomes: dict[OutcomeKey, Outcome] = field(default_factory=dict)
    weights: list[WeightRow] = field(default_factory=list)
    pca: list[PcaRow] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    status: str = "running"  # see ctxfusion.schema.RUN_STATUSES
    error: str | None = None
    writes: bool = True  # False on the ranks > 0 of a sharded run: rank 0 writes the run

    def add_result(
        self, *, dataset: str, subset: str, classifier: str, perturbation: str, level: float,
        seed: int, rows: torch.Tensor, correct: torch.Tensor, source: str = "",
        threat: str = "none", region: str | None = None,
    ) -> None:
        """One accuracy row from per-image outcomes (``correct`` aligned with the test
        ``rows``), with its Wilson interval; the outcomes are kept for paired comparisons.
        ``region``: where the perturbation acted (default: the boxes for blur, else the
        image)."""
        region = region or ("box" if perturbation == "blur" else "image")
        correct = correct.detach().cpu().bool()
        n, hits = len(correct), int(correct.sum())
        low, high = wilson_interval(hits, n)
        self.results.append(ResultRow(
            experiment=self.experiment, dataset=dataset, subset=subset, classifier=classifier,
            source=source, threat=threat, perturbation=perturbation, region=region, level=level,
            seed=seed, accuracy=hits / n if n else float("nan"), ci_low=low, ci_high=high, n=n,
        ))
        key = OutcomeKey(dataset, subset, classifier, source, threat, perturbation, level, seed,
                         region)
        self.outcomes[key] = Outcome(rows.detach().cpu(), correct)

    def compare(self, dataset: str, sets: Mapping[str, Sequence[str]]) -> None:
        """Add the paired differences of ``dataset``'s results (see ``differences``);
        ``sets``: the configured classifiers and the streams they read."""
        mine = {k: v for k, v in self.outcomes.items() if k.dataset == dataset}
        self.differences += [DifferenceRow(experiment=self.experiment, **row)
                             for row in paired_differences(mine, sets)]

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
            if self.writes:  # one rank speaks for a sharded run
                print(f"note: {text}", file=sys.stderr)

    @property
    def paths(self) -> RunPaths:
        """The run directory's files."""
        return RunPaths(self.out)

    def write_config(self, config_dict: dict[str, Any]) -> None:
        if not self.writes:
            return
        atomic_write_text(self.paths.config_yaml,
                          yaml.safe_dump(config_dict, sort_keys=False))

    def run_info(self) -> RunInfo:
        """run.json's content so far (``info`` checked against :class:`RunInfo`)."""
        finished = time.time()
        run = {
            "experiment": self.experiment,
            "started": _iso(self.started),
            "finished": _iso(finished),
            "duration_s": round(finished - self.started, 2),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "status": self.status,
            "error": self.error,
            **self.info,
            "notes": self.notes,
        }
        plain = json.loads(json.dumps(run, default=str))  # paths, tuples: as JSON has them
        return RunInfo.from_json(plain, f"{self.paths.run_json} (being written)")

    def write(self) -> None:
        """Write results.csv/json, differences.csv, weights.csv, pca.csv and run.json (each
        atomically)."""
        if not self.writes:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        paths = self.paths
        results = as_records(ResultRow, self.results)
        text = csv_text(ResultRow, results)
        atomic_write_text(paths.results_csv, text)
        atomic_write_text(paths.results_json,
                          json.dumps([record_dict(r) for r in results], indent=1))
        rows = {"results": len(results)}
        tables = (("differences", paths.differences_csv, DifferenceRow, self.differences),
                  ("weights", paths.weights_csv, WeightRow, self.weights),
                  ("pca", paths.pca_csv, PcaRow, self.pca))
        for name, path, record_type, items in tables:
            if items:
                write_records(path, record_type, as_records(record_type, items))
                rows[name] = len(items)
        # what readers check (ctxfusion.report.run_check): the tables as written
        self.info["rows"] = rows
        self.info["results_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.write_run_json()

    def write_run_json(self) -> None:
        """Write run.json alone (atomically): its status, timings and what is recorded."""
        if not self.writes:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.paths.run_json, json.dumps(self.run_info().to_json(), indent=1))


def check_run_dir(out: Path, experiment: str, option: str = "--out",
                  overwrite: bool = False) -> None:
    """Raise ConfigError unless ``out`` can become this experiment's run directory: a new
    folder in a writable place, an empty folder, or a run directory of the same experiment
    (complete or not: rerunning resumes it; ``overwrite``: of any experiment, moved aside).
    Writes nothing."""
    problem = writable_folder_problem(out)
    valid = (f"give a new folder, an empty one or a run directory of experiment "
             f"{experiment!r}")
    if problem:
        raise ConfigError(f"{option} {out}: {problem}: {valid}")
    if not out.is_dir() or all(_is_temporary(p) for p in out.iterdir()):
        return
    run_json = RunPaths(out).run_json
    if not run_json.is_file():
        raise ConfigError(f"{option} {out}: a folder with other files, not a ctxfusion run "
                          f"directory (no {run_json.name}): {valid}")
    try:
        info = RunInfo.from_json(json.loads(run_json.read_text(encoding="utf-8")),
                                 str(run_json))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, DataError) as exc:
        raise ConfigError(f"{option} {out}: {run_json.name} cannot be read ({exc}), so this is "
                          f"not a run directory ctxfusion can resume: {valid}") from None
    if info.experiment != experiment and not overwrite:
        raise ConfigError(f"{option} {out}: holds a run of experiment {info.experiment!r}, not "
                          f"{experiment!r}: {valid} (or pass --overwrite to move it aside)")


def _is_temporary(path: Path) -> bool:
    """A ``*.tmp-<pid>`` leftover of an atomic write, or the run directory's lock file."""
    return ".tmp-" in path.name or path.name == ".lock"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")
