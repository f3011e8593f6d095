"""End to end: a small demo-config run writes a complete, reproducible run directory."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ctxfusion.config import load_config
from ctxfusion.experiments import run_experiment
from ctxfusion.report.select import is_fusion_classifier
from ctxfusion.schema import RESULT_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "datasets=[{name: scenes-cs0.8, kind: scenes, context_strength: 0.8, num_train: 240, "
    "num_test: 96, seed: 5}]",
    "blur.sigmas=[0.001, 2.86]",
    "blur.example_sigma=12.9",
    "fgsm.epsilons=[0, 0.01]",
    "whitebox.epsilons=[0.01]",
    "whitebox.steps=2",
    "whitebox.max_images=16",
    "advtrain.epochs=1",
    "heads.epochs=30",
    "heads.alphas=[0.1, 10]",
    "whitebox.adaptive=[joint-alpha10, joint@context]",
    "corruptions.max_images=16",
    "corruptions.severities=[1, 5]",
    "pca.max_points_per_class=10",
    "batch_size=64",
    # the regions beyond the image and the robust fusion methods have their own end-to-end
    # tests (test_threats, test_fusion); here one region and two cheap methods keep them in
    "fgsm.regions=[image]",
    "whitebox.regions=[image]",
    "corruptions.regions=[image]",
    "fusion={methods: [dropout, poe], heldout_folds: 2}",
    "experiment=demo",  # the name the reference rows (tests/data/two_stream_rows) carry
]


def _run_with_home(tmp_path_factory, home: Path, name: str, report: bool = True) -> Path:
    patch = pytest.MonkeyPatch()
    patch.setenv("CTXFUSION_HOME", str(home))
    try:
        out = tmp_path_factory.mktemp(name)
        run_experiment(load_config(REPO / "configs" / "demo-full.yaml", SMALL), out,
                       report=report)
    finally:
        patch.undo()
    return out


@pytest.fixture(scope="module")
def small_home(tmp_path_factory) -> Path:
    """The ``CTXFUSION_HOME`` of :func:`small_runs` (empty before its first run)."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory, small_home: Path) -> tuple[Path, Path, dict]:
    """The same small config run twice with one cache (second run: all cache hits)."""
    home = small_home
    first = _run_with_home(tmp_path_factory, home, "run1")
    second = _run_with_home(tmp_path_factory, home, "run2")
    return first, second, json.loads((second / "run.json").read_text())


def _rows(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_directory_is_complete(small_runs) -> None:
    run, _, info = small_runs
    for name in ("config.yaml", "run.json", "results.csv", "results.json", "weights.csv",
                 "pca.csv", "report.html", "examples/blur_example_scenes-cs0.8.png"):
        assert (run / name).is_file(), name
    assert {"versions", "device", "seed", "timings", "threat_model"} <= set(info)
    assert info["threat_model"]["norm"] == "Linf"
    figures = {p.name.split("_")[0].split(".")[0] for p in run.glob("fig*.png")}
    assert {"fig2", "fig3a", "fig3b", "fig3c", "fig3d", "fig4a", "fig4b", "fig5a", "fig5b",
            "fig5c", "fig5d"} <= figures


def test_results_table_has_every_row(small_runs) -> None:
    run, _, _ = small_runs
    rows = _rows(run)
    assert tuple(rows[0]) == RESULT_COLUMNS
    classifiers = {"fg", "bg", "bg@context", "crop", "joint", "joint@context", "joint3",
                   "joint3@context", "joint-alpha0.1", "joint-alpha10"}
    for subset in ("all", "dissimilar", "similar"):
        for perturbation, levels in (("none", {"0"}), ("blur", {"0.001", "2.86"})):
            for classifier in classifiers:
                found = {r["level"] for r in rows if r["subset"] == subset
                         and r["classifier"] == classifier and r["perturbation"] == perturbation}
                assert found == levels, (subset, classifier, perturbation, found)
        fgsm = {(r["classifier"], r["source"], r["threat"]) for r in rows
                if r["subset"] == subset and r["perturbation"] == "fgsm"}
        # crafted on fg: white-box for fg itself, transfer for every other classifier
        assert ("fg", "fg", "whitebox") in fgsm
        assert {(c, "fg", "transfer") for c in classifiers - {"fg"}} <= fgsm
        assert {(c, "joint", "transfer") for c in classifiers - {"joint"}} <= fgsm
        assert ("fg-advtrain", "fg", "transfer") in fgsm  # the baseline meets the same attack
        assert ("fg-advtrain", "fg-advtrain", "whitebox") in fgsm
        # ... and every classifier through its own gradient
        assert {(c, c, "whitebox") for c in classifiers} <= fgsm
        pgd = {(r["classifier"], r["source"], r["threat"]) for r in rows
               if r["subset"] == subset and r["perturbation"] == "pgd"
               and r["threat"] == "whitebox"}
        assert pgd == {("fg", "fg", "whitebox"), ("joint", "joint", "whitebox")}
    keys = [tuple(r[c] for c in RESULT_COLUMNS if c not in ("accuracy", "ci_low", "ci_high",
                                                           "n")) for r in rows]
    assert len(keys) == len(set(keys))  # threat and seed tell every row apart
    for row in rows:
        assert float(row["ci_low"]) <= float(row["accuracy"]) <= float(row["ci_high"])
    for row in rows:
        assert 0.0 <= float(row["accuracy"]) <= 1.0 and int(row["n"]) > 0
    # No clean-accuracy cost at eps = 0: FGSM at eps 0 equals the clean accuracy.
    clean = {(r["subset"], r["classifier"]): r["accuracy"] for r in rows
             if r["perturbation"] == "none"}
    for r in rows:  # (the baseline fg-advtrain has no clean row)
        if (r["perturbation"] == "fgsm" and float(r["level"]) == 0 and r["source"] == "fg"
                and r["region"] == "image" and r["classifier"] != "fg-advtrain"):
            assert r["accuracy"] == clean[(r["subset"], r["classifier"])]


def test_second_run_reuses_the_cache_and_gives_identical_results(small_runs) -> None:
    first, second, info = small_runs
    assert info["cache"]["misses"] == 0 and info["cache"]["hits"] > 0
    assert (first / "results.csv").read_text() == (second / "results.csv").read_text()
    assert (first / "weights.csv").read_text() == (second / "weights.csv").read_text()


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory) -> tuple[Path, Path]:
    """The small config in a fresh cache, killed mid-way (after features and heads, during
    the attacks) and started again: its home and the resumed run directory. Everything in
    that cache was computed from scratch, by the killed run or by the resumed one."""
    import ctxfusion.experiments.runner as runner

    home = tmp_path_factory.mktemp("home3")
    patch = pytest.MonkeyPatch()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    patch.setattr(runner, "whitebox_rows", killed)
    try:
        with pytest.raises(KeyboardInterrupt):
            _run_with_home(tmp_path_factory, home, "killed")
    finally:
        patch.undo()
    # its results are compared, not its figures: no report (``ctxfusion run --no-report``)
    return home, _run_with_home(tmp_path_factory, home, "resumed", report=False)


def test_fresh_run_with_the_same_seed_gives_identical_results(small_runs, small_home: Path,
                                                              killed_and_resumed) -> None:
    """A second run from an empty cache (the killed and resumed one) computes as many cache
    entries as the first (their keys differ: each home prepares the dataset in its own
    folder) and the same numbers."""
    first, _, _ = small_runs
    home, fresh = killed_and_resumed
    cached = list((home / "features").glob("*.safetensors"))
    assert cached and len(cached) == len(list((small_home / "features").glob("*.safetensors")))
    assert (first / "results.csv").read_text() == (fresh / "results.csv").read_text()
    # without the report, the claims are judged all the same
    assert not (fresh / "report.html").exists()
    assert _claims(fresh) == _claims(first)


def _claims(run: Path) -> list[dict]:
    """claims.csv's rows without the run's name (its folder)."""
    with open(run / "claims.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "run"} for row in csv.DictReader(handle)]


def test_report_cells_show_the_results(small_runs) -> None:
    """Every accuracy of results.csv is in its own cell of the report's tables (parsed by
    row attributes and level, not searched for anywhere in a page full of base64)."""
    from ctxfusion.report.rundir import read_results
    from ctxfusion.report.select import is_standard
    from ctxfusion.report.tables import format_accuracy, format_level
    from test_report import _Tables

    run, _, _ = small_runs
    parser = _Tables()
    parser.feed((run / "report.html").read_text())
    # the results tables hold the paper's rows; the rows beyond it have their own sections
    standard = {(r.subset, r.classifier, r.source, r.threat, r.perturbation, r.region, r.level)
                for r in read_results(run / "results.csv")
                if is_standard(r) and not is_fusion_classifier(r.classifier)
                and not is_fusion_classifier(r.source)}
    for row in _rows(run):
        if (row["subset"], row["classifier"], row["source"], row["threat"], row["perturbation"],
                row["region"], float(row["level"])) not in standard:
            continue
        cell = parser.tables[(row["dataset"], row["perturbation"])][(
            row["subset"], row["classifier"], row["source"], row["threat"],
            format_level(float(row["level"])))]
        assert cell[:2] == (format_accuracy(float(row["accuracy"])), int(row["n"])), row


def test_differences_pair_joint_and_fg(small_runs) -> None:
    run, _, _ = small_runs
    with open(run / "differences.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    results = {(r["subset"], r["classifier"], r["perturbation"], r["level"]): r
               for r in _rows(run) if r["threat"] == "none"}
    blur = [r for r in rows if (r["classifier_a"], r["classifier_b"]) == ("joint", "fg")
            and r["perturbation"] == "blur" and r["threat"] == "none"]
    assert len(blur) == 3 * 2  # every subset and sigma
    for row in blur:
        joint = results[(row["subset"], "joint", "blur", row["level"])]
        fg = results[(row["subset"], "fg", "blur", row["level"])]
        diff = float(joint["accuracy"]) - float(fg["accuracy"])
        assert float(row["diff"]) == pytest.approx(diff, abs=1e-5)
        assert float(row["ci_low"]) <= float(row["diff"]) <= float(row["ci_high"])
        assert 0 <= float(row["mcnemar_p"]) <= 1 and int(row["n"]) == int(fg["n"])


def test_killed_run_resumes_with_identical_results(small_runs, killed_and_resumed) -> None:
    """A run killed mid-way and started again reuses what was finished and ends with the
    numbers of an uninterrupted run."""
    first, _, _ = small_runs
    _, resumed = killed_and_resumed
    info = json.loads((resumed / "run.json").read_text())
    assert info["cache"]["hits"] > 0  # features computed before the kill were reused
    assert (first / "results.csv").read_text() == (resumed / "results.csv").read_text()


def test_finetuning_the_fg_stream_changes_its_features(tmp_path_factory) -> None:
    """SPEC §1's CIFAR-10 path: every layer of the fg stream is fine-tuned before the heads;
    the fine-tuned backbone (cached by content) then serves the fg and joint classifiers. On
    the same test images its features differ from the pretrained fg stream's, while the
    pretrained fg stream and the bg stream are left as they were."""
    import torch

    from ctxfusion.experiments.context import RunContext
    from ctxfusion.experiments.finetune import finetuned_stream
    from ctxfusion.experiments.splits import load_split, prepare_dataset

    home = tmp_path_factory.mktemp("home4")
    config = load_config(REPO / "configs" / "demo-full.yaml", [
        "datasets=[{name: scenes-cs0.8, kind: scenes, context_strength: 0.8, num_train: 96, "
        "num_test: 48, seed: 6, subsets: [all]}]",
        "steps=[]", "heads.alphas=[10]", "heads.epochs=10", "batch_size=48",
        "finetune={enabled: true, epochs: 1, lr: 0.001}",
    ])
    patch = pytest.MonkeyPatch()
    patch.setenv("CTXFUSION_HOME", str(home))
    try:
        tuned = tmp_path_factory.mktemp("tuned")
        run_experiment(config, tuned)
        # The run's streams and splits again, through the package API (same cache).
        ctx = RunContext.create(config, tmp_path_factory.mktemp("check"))
        dataset = config.datasets[0]
        manifest = prepare_dataset(dataset)
        size = dataset.image_size or ctx.streams["fg"].input_size
        train = load_split(config, dataset, manifest, "train", size)
        test = load_split(config, dataset, manifest, "test", size)
        pretrained_fg, bg = ctx.streams["fg"], ctx.streams["bg"]
        images = next(iter(test.loader))[0].to(ctx.device)
        with torch.no_grad():
            fg_before, bg_before = pretrained_fg(images), bg(images)
        tuned_fg = finetuned_stream(ctx, train, len(manifest.classes))
        with torch.no_grad():
            fg_tuned, fg_again, bg_again = tuned_fg(images), pretrained_fg(images), bg(images)
    finally:
        patch.undo()
    info = json.loads((tuned / "run.json").read_text())
    assert "finetune" in info["timings"]
    tuned_sha = info["datasets"]["scenes-cs0.8"]["finetuned_stream"]["weights_sha256"]
    assert tuned_sha != info["streams"]["fg"]["weights_sha256"]
    assert tuned_fg.weights_sha256 == tuned_sha  # the backbone the run used
    assert not tuned_fg.training and not any(p.requires_grad for p in tuned_fg.parameters())
    # The fine-tuned fg features differ, clearly, on the same images ...
    assert fg_tuned.shape == fg_before.shape
    change = (fg_tuned - fg_before).norm() / fg_before.norm()
    assert change > 1e-2, f"fine-tuning barely changed the fg features ({change:.2e})"
    # ... while the pretrained fg stream (fine-tuned as a copy) and the bg stream are untouched.
    assert torch.equal(fg_again, fg_before)
    assert torch.equal(bg_again, bg_before)
    assert {"fg", "bg", "joint"} <= {r["classifier"] for r in _rows(tuned)}


def test_every_whitebox_attack_runs_on_the_fused_model(tmp_path_factory) -> None:
    """Each configurable white-box attack gets the settings it takes (BIM no restarts,
    AutoAttack the class count) and attacking can only lower accuracy."""
    home = tmp_path_factory.mktemp("home5")
    overrides = [
        "datasets=[{name: scenes-cs0.8, kind: scenes, context_strength: 0.8, num_train: 96, "
        "num_test: 48, seed: 7, subsets: [all]}]",
        "steps=[whitebox]", "heads.alphas=[10]", "heads.epochs=10", "batch_size=48",
        "whitebox={attacks: [pgd, bim, autoattack], epsilons: [0.02], steps: 2, "
        "max_images: 8, targets: [joint]}",
    ]
    patch = pytest.MonkeyPatch()
    patch.setenv("CTXFUSION_HOME", str(home))
    try:
        out = tmp_path_factory.mktemp("whitebox")
        run_experiment(load_config(REPO / "configs" / "demo-full.yaml", overrides), out)
    finally:
        patch.undo()
    rows = _rows(out)
    clean = next(float(r["accuracy"]) for r in rows
                 if r["classifier"] == "joint" and r["perturbation"] == "none")
    attacked = {r["perturbation"]: r for r in rows if r["source"] == "joint"}
    assert set(attacked) == {"pgd", "bim", "autoattack"}
    for row in attacked.values():
        assert row["classifier"] == "joint" and int(row["n"]) == 8
        assert float(row["accuracy"]) <= clean + 1 / 8  # 8 of the 48 clean images


GOLDEN = REPO / "tests" / "data" / "two_stream_rows"
#: the columns that identify a row of each file (the rest are its measured values)
ROW_KEYS = {
    "results.csv": ("dataset", "subset", "classifier", "source", "threat", "perturbation",
                    "level", "seed"),
    "differences.csv": ("dataset", "subset", "source", "threat", "perturbation", "level",
                        "seed", "classifier_a", "classifier_b"),
    "weights.csv": ("dataset", "subset", "classifier", "alpha", "seed", "stream"),
    "pca.csv": None,  # compared in order, per stream
}


#: weights.csv's float statistics (the other columns are compared exactly)
WEIGHT_STATISTICS = ("mean_abs_weight", "scaled_weight", "logit_share")


def _keyed(path: Path, keys: tuple[str, ...]) -> dict[tuple, dict]:
    """Rows by ``keys`` and region (files written before regions: box for blur, else image)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "perturbation" in rows[0]:
        for r in rows:
            r.setdefault("region", "box" if r["perturbation"] == "blur" else "image")
        keys = (*keys, "region")
    return {tuple(r[k] for k in keys): r for r in rows}


@pytest.mark.parametrize("name", ["results.csv", "differences.csv", "weights.csv"])
def test_the_paper_streams_give_the_same_rows_as_before_n_streams(small_runs, name) -> None:
    """tests/data/two_stream_rows: the same small run by the code before streams became roles
    (two fixed streams fg and bg). Adding the demo's third stream adds rows (crop, joint3 and
    their comparisons) and changes none of the paper's."""
    run, _, _ = small_runs
    keys = ROW_KEYS[name]
    before, now = _keyed(GOLDEN / name, keys), _keyed(run / name, keys)
    missing = sorted(set(before) - set(now))
    assert not missing, missing[:5]
    for key, row in before.items():
        if name == "weights.csv":  # six significant digits of float32 weight statistics: the
            # last one can differ between CPUs (oneDNN kernels), so compare to 1e-5 relative
            assert now[key].keys() == row.keys(), key
            for column, value in row.items():
                if column in WEIGHT_STATISTICS:
                    assert float(now[key][column]) == pytest.approx(float(value), rel=1e-5), \
                        (key, column)
                else:
                    assert now[key][column] == value, (key, column)
            continue
        assert now[key] == row, key
    if name == "results.csv":
        # the paper's kind of rows (the rows beyond it: regions, adaptive, corruptions, the
        # transfer matrix's further sources, the unbounded attack, came later)
        added = {now[k]["classifier"] for k in set(now) - set(before)
                 if now[k]["region"] == ("box" if now[k]["perturbation"] == "blur" else "image")
                 and now[k]["threat"] != "adaptive" and float(now[k]["level"]) < 0.5
                 and now[k]["perturbation"] in ("none", "blur", "fgsm", "pgd")
                 and (now[k]["threat"] != "transfer" or now[k]["source"] in ("fg", "joint"))
                 and not is_fusion_classifier(now[k]["classifier"])}  # robust fusion: later
        assert added == {"crop", "joint3", "joint3@context"}


def test_the_pca_of_the_paper_streams_is_unchanged(small_runs) -> None:
    run, _, _ = small_runs

    def by_stream(path: Path) -> dict[str, list[dict]]:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return {s: [r for r in rows if r["stream"] == s] for s in {r["stream"] for r in rows}}

    before, now = by_stream(GOLDEN / "pca.csv"), by_stream(run / "pca.csv")
    assert set(now) == {"fg", "bg", "crop"}
    for stream in ("fg", "bg"):  # pc1 and pc2 to six digits: the last differs between CPUs
        assert len(now[stream]) == len(before[stream])
        for row, old in zip(now[stream], before[stream], strict=True):
            assert {k: v for k, v in row.items() if k not in ("pc1", "pc2")} == \
                {k: v for k, v in old.items() if k not in ("pc1", "pc2")}
            for column in ("pc1", "pc2"):
                assert float(row[column]) == pytest.approx(float(old[column]), rel=1e-4,
                                                           abs=1e-4), (stream, column)


def test_the_three_way_joint_is_in_the_report(small_runs) -> None:
    run, _, info = small_runs
    assert info["classifiers"]["joint3"] == ["fg", "bg", "crop"]
    with open(run / "weights.csv", newline="") as handle:
        streams = {r["stream"] for r in csv.DictReader(handle) if r["classifier"] == "joint3"}
    assert streams == {"fg", "bg", "crop"}
    html = (run / "report.html").read_text()
    assert "each stream&#x27;s part (fg, bg, crop)" in html  # fig 4b: a bar per stream
