"""Figures and report.html of a run directory built by the test (rendering, not the method)."""

from __future__ import annotations

import base64
import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ctxfusion import cli
from ctxfusion.errors import DataError
from ctxfusion.report import build_report, classifier_style, load_run, make_figures
from ctxfusion.report.html import format_accuracy, format_level
from ctxfusion.report.style import Palette, parse_classifier

SIGMAS = [0.001, 2.0, 5.0, 10.0, 45.0]
EPS = [0.0, 0.01, 0.03, 0.075]
ALPHAS = [0.1, 1.0, 10.0]
SUBSETS = {"all": [f"class{k}" for k in range(24)],
           "dissimilar": ["dog", "airplane", "toilet", "pizza", "clock", "kite", "bench", "tv"],
           "similar": ["dog", "cat", "horse", "sheep", "cow", "bear", "zebra", "giraffe"]}
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
HEADER = ["experiment", "dataset", "subset", "classifier", "source", "perturbation", "level",
          "accuracy", "n"]


def _decay(start: float, floor: float, levels: list[float], scale: float) -> list[float]:
    """A plausible accuracy curve falling from ``start`` towards ``floor``."""
    return [round(floor + (start - floor) * float(np.exp(-lv / scale)), 4) for lv in levels]


def _coco_rows(dataset: str, subsets: dict[str, list[str]]) -> list[list]:
    rows: list[list] = []
    n = {"all": 1875, "dissimilar": 620, "similar": 610}
    for subset in subsets:
        clean = {"fg": 0.82, "bg": 0.71, "joint": 0.83, "bg@context": 0.64, "joint@context": 0.83,
                 "fg-advtrain": 0.74, **{f"joint-alpha{a:g}": 0.83 - 0.01 * a for a in ALPHAS}}
        for name, acc in clean.items():
            rows.append(["paper", dataset, subset, name, "", "none", 0, acc, n[subset]])
        for name, floor, scale in (("fg", 0.12, 6), ("bg", 0.55, 30), ("joint", 0.3, 10),
                                   ("bg@context", 0.6, 80), ("joint@context", 0.4, 12)):
            for sigma, acc in zip(SIGMAS, _decay(clean[name], floor, SIGMAS, scale), strict=True):
                rows.append(["paper", dataset, subset, name, "", "blur", sigma, acc, n[subset]])
        for name in clean:
            floor, scale = (0.05, 0.01) if name.startswith("fg") else (0.3, 0.05)
            if name.startswith("joint-alpha"):
                floor = 0.3 + 0.03 * float(parse_classifier(name).alpha)
            # like `ctxfusion run`, dissimilar attacks fg-advtrain through its own gradient
            source = "fg-advtrain" if (name, subset) == ("fg-advtrain", "dissimilar") else "fg"
            for eps, acc in zip(EPS, _decay(clean[name], floor, EPS, scale), strict=True):
                rows.append(["paper", dataset, subset, name, source, "fgsm", eps, acc, n[subset]])
    for name, floor in (("joint", 0.01), ("fg", 0.2), ("bg", 0.4)):  # crafted on joint
        for attack, scale in (("fgsm", 0.02), ("pgd", 0.008)):
            for eps, acc in zip(EPS, _decay(0.8, floor, EPS, scale), strict=True):
                rows.append(["paper", dataset, "all", name, "joint", attack, eps, acc, 1875])
    return rows


def _weights(dataset: str, subsets: list[str]) -> list[list]:
    rows = []
    for subset in subsets:
        rows += [[dataset, subset, "joint", 0, "fg", 0.021], [dataset, subset, "joint", 0, "bg",
                                                               0.019]]
        for a in ALPHAS:
            rows += [[dataset, subset, f"joint-alpha{a:g}", a, "fg", round(0.02 / (1 + a), 5)],
                     [dataset, subset, f"joint-alpha{a:g}", a, "bg", round(0.02 + 0.002 * a, 5)]]
    return rows


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _dataset_info(has_boxes: bool, kind: str, subsets: dict, strength: float | None) -> dict:
    return {"has_boxes": has_boxes, "kind": kind, "context_strength": strength,
            "subsets": subsets, "n_train": 5625, "n_test": 1875,
            "notes": ["similar: largest supercategory <animal> & 8 classes"]}


def make_run_dir(root: Path) -> Path:
    """A realistic run directory: COCO-like, CIFAR-10 and two contextual-scenes datasets."""
    root.mkdir(parents=True, exist_ok=True)
    rows = _coco_rows("coco", SUBSETS)
    for strength in (0.2, 0.8):
        ds = f"scenes-cs{strength}"
        for name, clean, floor in (("fg", 0.9, 0.1), ("bg", 0.5 + 0.4 * strength, 0.5),
                                   ("joint", 0.92, 0.2 + 0.5 * strength)):
            rows.append(["paper", ds, "all", name, "", "none", 0, clean, 400])
            for sigma, acc in zip(SIGMAS, _decay(clean, min(floor, clean), SIGMAS, 8),
                                  strict=True):
                rows.append(["paper", ds, "all", name, "", "blur", sigma, acc, 400])
    for name, clean in (("fg", 0.85), ("bg", 0.6), ("joint", 0.86)):
        for eps, acc in zip(EPS, _decay(clean, 0.1, EPS, 0.02), strict=True):
            rows.append(["paper", "cifar10", "all", name, "fg", "fgsm", eps, acc, 10000])
    _write_csv(root / "results.csv", HEADER, rows)
    weights = _weights("coco", ["all", "dissimilar"]) + [["cifar10", "all", "joint", 0, "fg", 0.04],
                                                         ["cifar10", "all", "joint", 0, "bg", 0.01]]
    _write_csv(root / "weights.csv", ["dataset", "subset", "classifier", "alpha", "stream",
                                      "mean_abs_weight"], weights)
    rng = np.random.default_rng(0)
    pca = []
    for stream, shift in (("fg", 3.0), ("bg", 0.2)):
        for k, label in enumerate(["dog", "airplane", "toilet"]):
            for condition, offset in (("clean", 0.0), ("blur", shift)):
                for x, y in rng.normal(0, 0.5, (15, 2)) + [2 * k + offset, k]:
                    pca.append(["coco", stream, condition, label, round(x, 4), round(y, 4)])
    _write_csv(root / "pca.csv", ["dataset", "stream", "condition", "label", "pc1", "pc2"], pca)
    (root / "examples").mkdir(exist_ok=True)
    side = np.zeros((64, 128, 3), np.uint8)
    side[16:48, 16:48] = [200, 40, 40]
    side[16:48, 80:112] = [150, 90, 90]
    Image.fromarray(side).save(root / "examples" / "blur_example_coco.png")
    info = {
        "experiment": "paper-sweeps", "started": "2025-01-01T10:00:00",
        "finished": "2025-01-01T10:20:00", "duration_s": 1200.0,
        "versions": {"torch": "2.14.1", "ctxfusion": "0.1.0"}, "device": "cpu", "seed": 0,
        "timings": {"features": 600.5, "heads": 30.2},
        "threat_model": {"norm": "Linf", "eps_space": "pixel", "epsilons_pixel": EPS,
                         "epsilons_normalized": [[e / s for s in (0.247, 0.243, 0.261)]
                                                 for e in EPS],
                         "attacks": [{"name": "fgsm", "source": "fg", "setting": "transfer",
                                      "evaluated_on": ["fg", "bg", "joint"]},
                                     {"name": "pgd", "source": "joint", "setting": "white-box",
                                      "evaluated_on": "every classifier", "steps": 10}]},
        "datasets": {"coco": _dataset_info(True, "coco", SUBSETS, None),
                     "scenes-cs0.2": _dataset_info(True, "scenes", {"all": ["a", "b"]}, 0.2),
                     "scenes-cs0.8": _dataset_info(True, "scenes", {"all": ["a", "b"]}, 0.8),
                     "cifar10": _dataset_info(False, "cifar10", {"all": CIFAR}, None)},
        "streams": {"fg": {"name": "resnet18"}, "bg": {"name": "places365-resnet18"}},
        "notes": ["eps < 0.3 & pixel space <script>alert(1)</script>"],
    }
    (root / "run.json").write_text(json.dumps(info))
    (root / "config.yaml").write_text("experiment: paper-sweeps\nblur:\n  sigmas: [0.001, 45]\n")
    return root


EXPECTED = {
    *(f"{fig}_coco.png" for fig in ("fig2", "fig3a", "fig3b", "fig3c", "fig3d", "fig4a", "fig4b",
                                    "fig5a", "fig5b", "fig5c", "fig5d")),
    "figS2_whitebox_coco.png", "fig4c_cifar10.png", "fig4d_cifar10.png",
    "fig3a_scenes-cs0.2.png", "fig3a_scenes-cs0.8.png", "figS1_context_strength.png",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run_dir = make_run_dir(tmp_path_factory.mktemp("run") / "run")
    page = build_report(run_dir)
    assert page == run_dir / "report.html"
    return run_dir, page.read_text(encoding="utf-8")


def test_every_expected_figure_is_a_valid_png(built: tuple[Path, str]) -> None:
    run_dir, _ = built
    assert {p.name for p in run_dir.glob("fig*.png")} == EXPECTED
    assert {p.name for p in make_figures(run_dir)} == EXPECTED  # rebuilding gives the same set
    for name in EXPECTED:
        with Image.open(run_dir / name) as image:
            image.verify()
        with Image.open(run_dir / name) as image:
            assert image.format == "PNG"
            assert 300 <= image.width <= 2000 and 200 <= image.height <= 1200, name
            assert len(np.unique(np.asarray(image.convert("L")))) > 10, name  # not blank


def test_report_inlines_every_figure_and_is_self_contained(built: tuple[Path, str]) -> None:
    run_dir, page = built
    for name in EXPECTED:
        assert base64.b64encode((run_dir / name).read_bytes()).decode() in page, name
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "eps &lt; 0.3 &amp; pixel space" in page
    assert "experiment: paper-sweeps" in page and "sigmas: [0.001, 45]" in page
    assert "every classifier" in page and "steps: 10" in page
    assert "fg-advtrain is attacked through its own gradients" in page  # fig5a (dissimilar)
    for text in ("Linf", "white-box", "transfer", "gradient masking", "2.14.1", "600.5 s",
                 "Reproduces paper Fig. 3a", "Reproduces paper Fig. 5d", "scenes-cs0.8"):
        assert text in page, text
    assert "figS2_whitebox_cifar10" in page  # listed as not produced, with a reason


class _Tables(HTMLParser):
    """Collects the results tables: {(dataset, pert): {(subset, clf, src, level): (text, n)}}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[tuple[str, str], dict] = {}
        self.levels: list[str] = []
        self.key: tuple[str, str] | None = None
        self.row: tuple[str, str, str] | None = None
        self.cell: list | None = None
        self.values: list = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("class") == "results":
            self.key = (a["data-dataset"], a["data-perturbation"])
            self.tables[self.key], self.levels = {}, []
        elif self.key and tag == "th" and "data-level" in a:
            self.levels.append(a["data-level"])
        elif self.key and tag == "tr" and "data-classifier" in a:
            self.row = (a["data-subset"], a["data-classifier"], a["data-source"])
            self.values = []
        elif self.row and tag == "td":
            self.cell = [a.get("data-n"), ""]

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            self.values.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row:
            cells = [v for v in self.values[3:-1]]  # skip subset, classifier, source; drop n
            assert len(cells) == len(self.levels)
            for level, (n, text) in zip(self.levels, cells, strict=True):
                if n is not None:
                    self.tables[self.key][(*self.row, level)] = (text, int(n))
            self.row = None
        elif tag == "table":
            self.key = None


def test_table_cells_match_results_csv(built: tuple[Path, str]) -> None:
    run_dir, page = built
    parser = _Tables()
    parser.feed(page)
    with open(run_dir / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    shown = sum(len(t) for t in parser.tables.values())
    assert shown == len(rows)  # every row once, nothing else
    for r in rows:
        table = parser.tables[(r["dataset"], r["perturbation"])]
        cell = table[(r["subset"], r["classifier"], r["source"], format_level(float(r["level"])))]
        assert cell == (format_accuracy(float(r["accuracy"])), int(r["n"])), r
        assert cell[0] == f"{100 * float(r['accuracy']):.1f}"


def _has_colour(path: Path, hex_colour: str, tolerance: int = 3) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    return bool((np.abs(pixels - rgb).max(axis=1) <= tolerance).sum() >= 10)


def test_classifier_colours_are_consistent(built: tuple[Path, str]) -> None:
    run_dir, _ = built
    joint = classifier_style("joint").color
    assert Palette([0.001, 1000]).colour("joint") == Palette().colour("joint") == joint
    for view in ("joint@context", "joint@object"):
        style = Palette().style(view)
        assert style.color == joint and style.linestyle == "--" and style.label == view
    assert Palette().style("bg@context").color == classifier_style("bg").color
    assert classifier_style("joint").linestyle == "-"
    bases = {classifier_style(n).color for n in ("fg", "bg", "joint", "fg-advtrain")}
    assert len(bases) == 4
    ramp = [Palette(ALPHAS).colour(f"joint-alpha{a:g}") for a in ALPHAS]
    assert len(set(ramp)) == len(ALPHAS) and joint not in ramp
    luminance = [sum(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in ramp]
    assert luminance == sorted(luminance, reverse=True)  # darker with larger alpha
    assert parse_classifier("joint-alpha0.1@context") == parse_classifier("joint-alpha0.1@context")
    assert (parse_classifier("joint-alpha0.1@context").alpha,
            parse_classifier("joint-alpha0.1@context").view) == (0.1, "context")
    for name in ("fig3a_coco.png", "fig4a_coco.png", "fig5a_coco.png", "figS2_whitebox_coco.png",
                 "fig4c_cifar10.png", "fig3a_scenes-cs0.2.png"):
        assert _has_colour(run_dir / name, joint), name
    assert not _has_colour(run_dir / "fig4b_coco.png", joint)  # bars use the stream colours
    advtrain = classifier_style("fg-advtrain").color
    for name in ("fig5a_coco.png", "fig5b_coco.png"):  # own-gradient (5a) and fg-crafted (5b)
        assert _has_colour(run_dir / name, advtrain), name


def test_run_without_blur_or_pca_lists_missing_figures(tmp_path: Path) -> None:
    run_dir = tmp_path / "cifar-run"
    run_dir.mkdir()
    rows = [["cifar", "cifar10", "all", name, "fg", "fgsm", eps, acc, 100]
            for name, clean in (("fg", 0.85), ("joint", 0.86))
            for eps, acc in zip(EPS, _decay(clean, 0.1, EPS, 0.02), strict=True)]
    _write_csv(run_dir / "results.csv", HEADER, rows + [rows[0]])  # one repeated row
    (run_dir / "run.json").write_text(json.dumps(
        {"experiment": "cifar", "datasets": {"cifar10": _dataset_info(False, "cifar10",
                                                                      {"all": CIFAR}, None)}}))
    assert cli.main(["report", str(run_dir)]) == 0
    assert [p.name for p in run_dir.glob("fig*.png")] == ["fig4c.png"]  # one dataset: no suffix
    page = (run_dir / "report.html").read_text()
    for name in ("fig2", "fig3a", "fig3b", "fig3c", "fig3d", "fig4d", "fig5a", "fig5b",
                 "fig5c", "fig5d", "figS1_context_strength", "figS2_whitebox_cifar10"):
        assert f"data-figure='{name}'" in page, name
    assert "box-free dataset" in page and "pca.csv not found" in page
    assert "weights.csv not found" in page and "config.yaml not found" in page
    assert "1 row(s) repeat" in page


def test_cli_errors_name_the_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no-such-run"
    assert cli.main(["report", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err
    assert cli.main(["report", str(tmp_path)]) == 2
    assert str(tmp_path / "results.csv") in capsys.readouterr().err


def test_bad_values_raise_data_error(tmp_path: Path) -> None:
    _write_csv(tmp_path / "results.csv", HEADER,
               [["e", "coco", "all", "fg", "", "none", 0, 1.7, 10]])
    with pytest.raises(DataError, match=r"results.csv line 2: column 'accuracy' = '1.7'"):
        load_run(tmp_path)
    _write_csv(tmp_path / "results.csv", HEADER[:-1], [["e", "coco", "all", "fg", "", "none", 0,
                                                        0.5]])
    with pytest.raises(DataError, match=r"missing column\(s\) \['n'\]"):
        load_run(tmp_path)
    _write_csv(tmp_path / "results.csv", HEADER, [["e", "coco", "all", "fg", "", "none", 0, 0.5,
                                                   "ten"]])
    with pytest.raises(DataError, match="column 'n' = 'ten' is not a valid integer"):
        load_run(tmp_path)
    _write_csv(tmp_path / "results.csv", HEADER, [])
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(DataError, match="run.json: not valid JSON"):
        load_run(tmp_path)
