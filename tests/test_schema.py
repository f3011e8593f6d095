"""The run-directory schema: the writer (RunRecorder) and the reader (load_run) share one
definition of every row and of run.json."""

from __future__ import annotations

import csv
import json
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from ctxfusion.errors import DataError
from ctxfusion.experiments.recorder import RunRecorder
from ctxfusion.report.rundir import load_run
from ctxfusion.schema import (
    DIFFERENCE_COLUMNS,
    PCA_COLUMNS,
    RESULT_COLUMNS,
    WEIGHT_COLUMNS,
    DatasetInfo,
    DifferenceRow,
    PcaRow,
    ResultRow,
    RunInfo,
    RunPaths,
    WeightRow,
    csv_text,
    read_records,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"

RESULT = ResultRow(experiment="e", dataset="coco", subset="all", classifier="joint-alpha10",
                   source="fg", threat="transfer", perturbation="fgsm", region="box",
                   level=0.0123456789,
                   seed=2, accuracy=0.123456789, ci_low=0.1, ci_high=0.15, n=686)
DIFFERENCE = DifferenceRow(
    experiment="e", dataset="coco", subset="all", source="", threat="none",
    perturbation="blur", region="box", level=10.0, seed=0, classifier_a="joint", classifier_b="fg",
    acc_a=0.8123456, acc_b=0.7, diff=0.1123456, ci_low=0.05, ci_high=0.17, n=686, a_only=80,
    b_only=3, mcnemar_p=1.23456789e-9)
WEIGHT = WeightRow(dataset="coco", subset="all", classifier="joint", alpha=0.0,
                   alpha_reduction="sum", alpha_sum=0.0, alpha_mean=0.0, seed=1, stream="scene",
                   mean_abs_weight=0.0123456789, scaled_weight=0.5, logit_share=0.3333333)
PCA = PcaRow(dataset="coco", stream="object", condition="blur", label="dog",
             pc1=-1.23456789, pc2=1e-7)


def _written(record):
    """A record as the reader sees it after writing: floats to 6 significant digits."""
    return replace(record, **{f.name: float(f"{getattr(record, f.name):.6g}")
                              for f in fields(record)
                              if isinstance(getattr(record, f.name), float)})


def _recorded(tmp_path: Path) -> RunRecorder:
    recorder = RunRecorder(out=tmp_path, experiment="e")
    recorder.results.append(RESULT)
    recorder.differences.append(DIFFERENCE)
    recorder.weights += [WEIGHT, replace(WEIGHT, stream="crop", logit_share=None)]
    recorder.pca.append(PCA)
    recorder.info.update({"seed": 0, "alpha_reduction": "sum", "datasets": {
        "coco": {"kind": "coco", "has_boxes": True, "context_strength": None, "image_size": 64,
                 "subsets": {"all": ["dog", "cat"]}, "n_train": 10, "n_test": 4,
                 "manifest": "/m.json", "notes": []}}})
    recorder.write()
    return recorder


def test_every_record_round_trips_through_writer_and_reader(tmp_path: Path) -> None:
    _recorded(tmp_path)
    run = load_run(tmp_path)
    assert run.results == [_written(RESULT)]
    assert run.differences == [_written(DIFFERENCE)]
    assert run.weights == [_written(WEIGHT),
                           _written(replace(WEIGHT, stream="crop", logit_share=None))]
    assert run.pca == [_written(PCA)]
    assert json.loads((tmp_path / "results.json").read_text())[0]["accuracy"] == 0.123456789


def test_headers_are_the_column_tuples(tmp_path: Path) -> None:
    _recorded(tmp_path)
    paths = RunPaths(tmp_path)
    for path, expected in ((paths.results_csv, RESULT_COLUMNS),
                           (paths.differences_csv, DIFFERENCE_COLUMNS),
                           (paths.weights_csv, WEIGHT_COLUMNS), (paths.pca_csv, PCA_COLUMNS)):
        with open(path, newline="") as handle:
            assert tuple(next(csv.reader(handle))) == expected, path.name
    assert RESULT_COLUMNS == ("experiment", "dataset", "subset", "classifier", "source",
                              "threat", "perturbation", "region", "level", "seed", "accuracy",
                              "ci_low", "ci_high", "n")


def test_a_bad_cell_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "weights.csv"
    text = csv_text(WeightRow, [WEIGHT, WEIGHT]).splitlines()
    text[2] = text[2].replace(",0.0123457,", ",lots,")
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"weights.csv line 3: column 'mean_abs_weight' = "
                                        r"'lots' is not a valid number"):
        read_records(path, WeightRow)
    path.write_text(csv_text(WeightRow, [replace(WEIGHT, stream="")]))
    with pytest.raises(DataError, match=r"line 2: column 'stream' is empty"):
        read_records(path, WeightRow)


def test_any_stream_name_is_read(tmp_path: Path) -> None:
    names = ("fg", "bg", "scene", "crop", "object")
    (tmp_path / "weights.csv").write_text(
        csv_text(WeightRow, [replace(WEIGHT, stream=s) for s in names]))
    (tmp_path / "pca.csv").write_text(csv_text(PcaRow, [replace(PCA, stream=s) for s in names]))
    assert [w.stream for w in read_records(tmp_path / "weights.csv", WeightRow)] == list(names)
    assert [p.stream for p in read_records(tmp_path / "pca.csv", PcaRow)] == list(names)


def test_old_results_without_threat_seed_and_interval_are_read(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text(
        "experiment,dataset,subset,classifier,source,perturbation,level,accuracy,n\n"
        "e,coco,all,fg,fg,fgsm,0.01,0.3,100\ne,coco,all,joint,fg,fgsm,0.01,0.5,100\n")
    (tmp_path / "weights.csv").write_text(
        "dataset,subset,classifier,alpha,stream,mean_abs_weight\ncoco,all,joint,0,scene,0.1\n")
    (tmp_path / "run.json").write_text(json.dumps({"alpha_reduction": "sum"}))
    run = load_run(tmp_path)
    assert [(r.threat, r.seed) for r in run.results] == [("whitebox", 0), ("transfer", 0)]
    assert run.results[0].ci_low < 0.3 < run.results[0].ci_high
    assert run.weights[0].alpha_reduction == "sum" and run.weights[0].alpha_sum is None


def test_run_json_round_trips_through_the_typed_sections(tmp_path: Path) -> None:
    for example in sorted(EXAMPLES.glob("*/run.json")):
        data = json.loads(example.read_text())
        info = RunInfo.from_json(data, str(example))
        assert info.to_json() == data and list(info.to_json()) == list(data)
        assert all(isinstance(d, DatasetInfo) for d in info.datasets.values())
    recorder = _recorded(tmp_path)
    written = json.loads((tmp_path / "run.json").read_text())
    assert written["datasets"] == recorder.info["datasets"] and written["notes"] == []
    assert list(written)[:5] == ["experiment", "started", "finished", "duration_s", "timings"]
    run = load_run(tmp_path)
    assert run.info.datasets["coco"].has_boxes is True and run.image_size("coco") == 64
    assert run.info.datasets["coco"].subsets == {"all": ["dog", "cat"]}
    assert run.info.to_json() == written


def test_a_wrong_type_in_run_json_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text(csv_text(ResultRow, [RESULT]))
    (tmp_path / "run.json").write_text(json.dumps({"datasets": []}))
    with pytest.raises(DataError, match=r"run.json: key 'datasets' must be an object, got a list"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"datasets": {"coco": {"image_size": "64"}}}))
    with pytest.raises(DataError, match=r"key 'datasets.coco.image_size' must be an integer"):
        load_run(tmp_path)


def test_unknown_run_json_keys_and_dict_rows_are_kept(tmp_path: Path) -> None:
    """Keys the schema does not declare survive; rows appended as dicts are converted."""
    recorder = RunRecorder(out=tmp_path, experiment="e")
    recorder.add_result(dataset="d", subset="all", classifier="fg", perturbation="none",
                        level=0.0, seed=0, rows=torch.arange(4),
                        correct=torch.tensor([True, True, False, True]))
    recorder.weights.append({f.name: getattr(WEIGHT, f.name) for f in fields(WEIGHT)})
    recorder.info["new_section"] = {"anything": [1, 2]}
    recorder.write()
    assert json.loads((tmp_path / "run.json").read_text())["new_section"] == {
        "anything": [1, 2]}
    run = load_run(tmp_path)
    assert run.results[0].accuracy == 0.75 and run.weights == [_written(WEIGHT)]
