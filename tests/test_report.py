"""Figures and report.html of a run directory built by the test (rendering, not the method)."""

from __future__ import annotations

import base64
import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ctxfusion import cli
from ctxfusion.errors import DataError
from ctxfusion.report import build_report, classifier_style, load_run, make_figures
from ctxfusion.report.style import ClassifierName, Palette, parse_classifier
from ctxfusion.report.tables import format_accuracy, format_level
from ctxfusion.schema import DIFFERENCE_COLUMNS, RESULT_COLUMNS, WEIGHT_COLUMNS, infer_threat
from ctxfusion.stats import wilson_interval

SIGMAS = [0.001, 2.0, 5.0, 10.0, 45.0]
EPS = [0.0, 0.01, 0.03, 0.075]
ALPHAS = [0.1, 1.0, 10.0]
N_TRAIN = 5625
SEEDS = (0, 1)
SUBSETS = {"all": [f"class{k}" for k in range(24)],
           "dissimilar": ["dog", "airplane", "toilet", "pizza", "clock", "kite", "bench", "tv"],
           "similar": ["dog", "cat", "horse", "sheep", "cow", "bear", "zebra", "giraffe"]}
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
#: the columns of results.csv before threat, seed and the intervals were added
HEADER = ["experiment", "dataset", "subset", "classifier", "source", "perturbation", "level",
          "accuracy", "n"]
WHITEBOX_N = 200


def _decay(start: float, floor: float, levels: list[float], scale: float) -> list[float]:
    """A plausible accuracy curve falling from ``start`` towards ``floor``."""
    return [round(floor + (start - floor) * float(np.exp(-lv / scale)), 4) for lv in levels]


def result(dataset: str, subset: str, classifier: str, source: str, perturbation: str,
           level: float, accuracy: float, n: int, seed: int = 0, threat: str | None = None,
           experiment: str = "paper", region: str | None = None) -> dict:
    """One results.csv row in the new schema (threat inferred, region: the boxes for blur,
    else the image; Wilson interval)."""
    low, high = wilson_interval(round(accuracy * n), n)
    return {"experiment": experiment, "dataset": dataset, "subset": subset,
            "classifier": classifier, "source": source,
            "threat": threat or infer_threat(perturbation, classifier, source),
            "perturbation": perturbation,
            "region": region or ("box" if perturbation == "blur" else "image"),
            "level": level, "seed": seed,
            "accuracy": accuracy, "ci_low": round(low, 6), "ci_high": round(high, 6), "n": n}


def _coco_clean(subset: str, seed: int) -> dict[str, float]:
    jitter = 0.01 * seed  # each repeat of head training lands a little elsewhere
    clean = {"fg": 0.82, "bg": 0.71, "joint": 0.83, "bg@context": 0.64, "joint@context": 0.83,
             "fg-advtrain": 0.74, **{f"joint-alpha{a:g}": 0.83 - 0.01 * a for a in ALPHAS}}
    return {name: round(acc - jitter * (name != "fg"), 4) for name, acc in clean.items()}


def _coco_rows(dataset: str, subsets: dict[str, list[str]], seed: int) -> list[dict]:
    """Rows as `ctxfusion run` writes them: clean, blur, FGSM crafted on fg (transfer),
    fg-advtrain's own sweep, white-box FGSM on a sample, attacks crafted on joint."""
    rows: list[dict] = []
    n = {"all": 1875, "dissimilar": 620, "similar": 610}
    for subset in subsets:
        clean = _coco_clean(subset, seed)
        for name, acc in clean.items():
            rows.append(result(dataset, subset, name, "", "none", 0, acc, n[subset], seed))
        for name, floor, scale in (("fg", 0.12, 6), ("bg", 0.55, 30), ("joint", 0.3, 10),
                                   ("bg@context", 0.6, 80), ("joint@context", 0.4, 12)):
            for sigma, acc in zip(SIGMAS, _decay(clean[name], floor, SIGMAS, scale), strict=True):
                rows.append(result(dataset, subset, name, "", "blur", sigma, acc, n[subset],
                                   seed))
        for name in clean:
            floor, scale = (0.05, 0.01) if name.startswith("fg") else (0.3, 0.05)
            if name.startswith("joint-alpha"):
                floor = 0.3 + 0.03 * float(parse_classifier(name).alpha)
            for eps, acc in zip(EPS, _decay(clean[name], floor, EPS, scale), strict=True):
                rows.append(result(dataset, subset, name, "fg", "fgsm", eps, acc, n[subset], seed))
            source, size = ((name, n[subset]) if name == "fg-advtrain" else (name, WHITEBOX_N))
            # fg's own row above is its white-box row; on All, joint's is crafted on joint below
            if name != "fg" and (name, subset) != ("joint", "all"):
                for eps, acc in zip(EPS, _decay(clean[name], 0.02, EPS, 0.01), strict=True):
                    rows.append(result(dataset, subset, name, source, "fgsm", eps, acc, size,
                                       seed))
    for name, floor in (("joint", 0.01), ("fg", 0.2), ("bg", 0.4)):  # crafted on joint
        for attack, scale in (("fgsm", 0.02), ("pgd", 0.008)):
            for eps, acc in zip(EPS, _decay(0.8, floor, EPS, scale), strict=True):
                if attack == "pgd" and name != "joint":
                    continue
                rows.append(result(dataset, "all", name, "joint", attack, eps, acc, WHITEBOX_N,
                                   seed))
    return rows


def _pairs(names: set[str]) -> list[tuple[str, str]]:
    """The pairs the writer compares (schema: every classifier vs fg, alpha heads vs bg,
    joint and fg-advtrain, joint vs bg)."""
    pairs = [(a, "fg") for a in sorted(names) if a != "fg"]
    pairs += [(a, b) for a in sorted(names) if a.startswith("joint-alpha")
              for b in ("bg", "joint", "fg-advtrain")]
    return [(a, b) for a, b in [*pairs, ("joint", "bg")] if a in names and b in names]


def difference(row_a: dict, row_b: dict, source: str, threat: str, width: float = 0.03) -> dict:
    """A differences.csv row for two results rows (a plausible paired interval)."""
    n = min(row_a["n"], row_b["n"])
    diff = row_a["accuracy"] - row_b["accuracy"]
    b_only = round(0.05 * n)
    a_only = b_only + round(diff * n)
    if a_only < 0:
        a_only, b_only = 0, b_only - a_only
    return {"experiment": row_a["experiment"], "dataset": row_a["dataset"],
            "subset": row_a["subset"], "source": source, "threat": threat,
            "perturbation": row_a["perturbation"], "region": row_a["region"],
            "level": row_a["level"], "seed": row_a["seed"], "classifier_a": row_a["classifier"],
            "classifier_b": row_b["classifier"], "acc_a": row_a["accuracy"],
            "acc_b": row_b["accuracy"], "diff": round(diff, 6),
            "ci_low": round(max(-1.0, diff - width), 6),
            "ci_high": round(min(1.0, diff + width), 6), "n": n, "a_only": a_only,
            "b_only": b_only, "mcnemar_p": 0.001 if abs(diff) > width else 0.4}


def differences_for(rows: list[dict]) -> list[dict]:
    """The writer's comparisons: no attacker, crafted on one source, each on itself."""
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        common = (r["dataset"], r["subset"], r["perturbation"], r["level"], r["seed"])
        if r["threat"] == "none":
            groups.setdefault(("", "none", *common), {})[r["classifier"]] = r
            continue
        groups.setdefault((r["source"], "transfer", *common), {})[r["classifier"]] = r
        if r["threat"] == "whitebox":
            groups.setdefault(("own", "whitebox", *common), {})[r["classifier"]] = r
    return [difference(members[a], members[b], source, threat)
            for (source, threat, *_), members in groups.items()
            for a, b in _pairs(set(members))]


def _weights(dataset: str, subsets: list[str], seeds: tuple[int, ...]) -> list[dict]:
    rows = []
    for subset, seed in ((s, k) for s in subsets for k in seeds):
        n_train = N_TRAIN * len(SUBSETS[subset]) / 24
        heads = [("joint", 0.0, 0.021, 0.019)] + [
            (f"joint-alpha{a:g}", a, round(0.02 / (1 + a), 5), round(0.02 + 0.002 * a, 5))
            for a in ALPHAS]
        for name, alpha, w_fg, w_bg in heads:
            share = w_fg / (w_fg + w_bg)
            for stream, weight, part in (("fg", w_fg, share), ("bg", w_bg, 1 - share)):
                rows.append({"dataset": dataset, "subset": subset, "classifier": name,
                             "alpha": alpha, "alpha_reduction": "mean",
                             "alpha_sum": alpha * n_train, "alpha_mean": alpha, "seed": seed,
                             "stream": stream, "mean_abs_weight": weight,
                             "scaled_weight": round(weight * 3, 5),
                             "logit_share": round(part + 0.01 * seed, 4)})
    return rows


def write_csv(path: Path, header: list[str] | tuple[str, ...], rows: list) -> None:
    """Rows as lists (in header order) or dicts (keys outside ``header`` are dropped)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([r[c] for c in header] if isinstance(r, dict) else r for r in rows)




def _dataset_info(has_boxes: bool, kind: str, subsets: dict, strength: float | None,
                  image_size: int = 224) -> dict:
    return {"has_boxes": has_boxes, "kind": kind, "context_strength": strength,
            "image_size": image_size, "subsets": subsets, "n_train": N_TRAIN, "n_test": 1875,
            "notes": ["similar: largest supercategory <animal> & 8 classes"]}


def _other_rows() -> list[dict]:
    """Two contextual-scenes datasets (blur) and CIFAR-10 (FGSM), one seed."""
    rows = []
    for strength in (0.2, 0.8):
        ds = f"scenes-cs{strength}"
        for name, clean, floor in (("fg", 0.9, 0.1), ("bg", 0.5 + 0.4 * strength, 0.5),
                                   ("joint", 0.92, 0.2 + 0.5 * strength)):
            rows.append(result(ds, "all", name, "", "none", 0, clean, 400))
            for sigma, acc in zip(SIGMAS, _decay(clean, min(floor, clean), SIGMAS, 8),
                                  strict=True):
                rows.append(result(ds, "all", name, "", "blur", sigma, acc, 400))
    for name, clean in (("fg", 0.85), ("bg", 0.6), ("joint", 0.86)):
        for eps, acc in zip(EPS, _decay(clean, 0.1, EPS, 0.02), strict=True):
            rows.append(result("cifar10", "all", name, "fg", "fgsm", eps, acc, 10000))
    return rows


def make_run_dir(root: Path, seeds: tuple[int, ...] = SEEDS) -> Path:
    """A realistic run directory in the current schema: COCO-like (several seeds, with
    differences.csv), CIFAR-10 and two contextual-scenes datasets."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [r for seed in seeds for r in _coco_rows("coco", SUBSETS, seed)] + _other_rows()
    write_csv(root / "results.csv", RESULT_COLUMNS, rows)
    write_csv(root / "differences.csv", DIFFERENCE_COLUMNS, differences_for(rows))
    weights = _weights("coco", ["all", "dissimilar"], seeds) + [
        {"dataset": "cifar10", "subset": "all", "classifier": "joint", "alpha": 0,
         "alpha_reduction": "mean", "alpha_sum": 0, "alpha_mean": 0, "seed": 0, "stream": s,
         "mean_abs_weight": w, "scaled_weight": w, "logit_share": share}
        for s, w, share in (("fg", 0.04, 0.8), ("bg", 0.01, 0.2))]
    write_csv(root / "weights.csv", WEIGHT_COLUMNS, weights)
    rng = np.random.default_rng(0)
    pca = []
    for stream, shift in (("fg", 3.0), ("bg", 0.2)):
        for k, label in enumerate(["dog", "airplane", "toilet"]):
            for condition, offset in (("clean", 0.0), ("blur", shift)):
                for x, y in rng.normal(0, 0.5, (15, 2)) + [2 * k + offset, k]:
                    pca.append(["coco", stream, condition, label, round(x, 4), round(y, 4)])
    write_csv(root / "pca.csv", ["dataset", "stream", "condition", "label", "pc1", "pc2"], pca)
    (root / "examples").mkdir(exist_ok=True)
    side = np.zeros((64, 128, 3), np.uint8)
    side[16:48, 16:48] = [200, 40, 40]
    side[16:48, 80:112] = [150, 90, 90]
    Image.fromarray(side).save(root / "examples" / "blur_example_coco.png")
    info = {
        "experiment": "paper-sweeps", "started": "2025-01-01T10:00:00",
        "finished": "2025-01-01T10:20:00", "duration_s": 1200.0,
        "versions": {"torch": "2.14.1", "ctxfusion": "0.1.0"}, "device": "cpu", "seed": 0,
        "alpha_reduction": "mean", "repeats": len(seeds), "seeds": list(seeds),
        "timings": {"features": 600.5, "heads": 30.2},
        "threat_model": {"norm": "Linf", "eps_space": "pixel", "epsilons_pixel": EPS,
                         "normalization_std": [0.247, 0.243, 0.261],
                         "epsilons_normalized": [[e / s for s in (0.247, 0.243, 0.261)]
                                                 for e in EPS],
                         "attacks": [{"name": "fgsm", "source": "fg", "setting": "transfer",
                                      "evaluated_on": ["fg", "bg", "joint"]},
                                     {"name": "pgd", "source": "joint", "setting": "white-box",
                                      "evaluated_on": "every classifier", "steps": 10}]},
        "datasets": {"coco": _dataset_info(True, "coco", SUBSETS, None),
                     "scenes-cs0.2": _dataset_info(True, "scenes", {"all": ["a", "b"]}, 0.2, 64),
                     "scenes-cs0.8": _dataset_info(True, "scenes", {"all": ["a", "b"]}, 0.8, 64),
                     "cifar10": _dataset_info(False, "cifar10", {"all": CIFAR}, None)},
        "streams": {"fg": {"name": "resnet18"}, "bg": {"name": "places365-resnet18"}},
        "notes": ["eps < 0.3 & pixel space <script>alert(1)</script>"],
    }
    (root / "run.json").write_text(json.dumps(info))
    (root / "config.yaml").write_text("experiment: paper-sweeps\nnormalization: cifar10\n"
                                      "blur:\n  sigmas: [0.001, 45]\n")
    return root


EXPECTED = {
    *(f"{fig}_coco.png" for fig in ("fig2", "fig3a", "fig3b", "fig3c", "fig3d", "fig4a", "fig4b",
                                    "fig5a", "fig5b", "fig5c", "fig5d")),
    "figS2_whitebox_coco.png", "fig4c_cifar10.png", "fig4d_cifar10.png",
    "fig3a_scenes-cs0.2.png", "fig3a_scenes-cs0.8.png", "figS1_context_strength.png",
    "figT_tradeoff_coco_all.png", "figT_tradeoff_coco_dissimilar.png",
    *(f"figR_transfer_coco_{subset}.png" for subset in SUBSETS),  # crafted on fg and on itself
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
    assert "Right: every classifier is attacked through its own gradient" in page  # fig 5a/b
    for text in ("Linf", "white-box", "transfer", "gradient masking", "2.14.1", "600.5 s",
                 "Reproduces paper Fig. 3a", "Reproduces paper Fig. 5d", "scenes-cs0.8",
                 "mean over 2 seeds", "logit_share", "eps = 0.03 in pixel space"):
        assert text in page, text
    assert "figS2_whitebox_cifar10" in page  # listed as not produced, with a reason
    for anchor in ("claims", "conventions", "differences"):
        assert f"id='{anchor}'" in page, anchor


class _Outline(HTMLParser):
    """The page's sections (h2 ids) and tables (class) in order, and every <img> source."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.images: list[str] = []
        self.details: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "h2":
            self.order.append(f"h2#{a.get('id')}")
        elif tag == "table":
            self.order.append(f"table.{a.get('class') or ''}")
        elif tag == "img":
            self.images.append(a.get("src") or "")
            self.order.append("img")
        elif tag == "details":
            self.details.append(self.order[-1] if self.order else "")


def test_report_opens_with_the_verdicts_and_ends_with_the_metadata(
        built: tuple[Path, str]) -> None:
    """No browser on the test machines: the page's structure is checked as parsed HTML."""
    run_dir, page = built
    outline = _Outline()
    outline.feed(page)
    order = outline.order
    assert order[0] == "h2#findings" and order[1] == "table.verdicts"
    sections = [item for item in order if item.startswith("h2#")]
    assert sections[-3:] == ["h2#notes", "h2#summary", "h2#config"]
    findings_end = order.index(sections[1])
    headline = order[:findings_end].count("img")
    # blur and FGSM curves of fg, bg, joint; the fusion frontier when the run has one
    assert headline == 2 + any(run_dir.glob("figF_*_all.png"))
    assert order.index("table.verdicts") < min(order.index(s) for s in sections[1:])
    assert order.index("table.verdicts") < order.index("img")
    # the verdict table: one row per claim, its number beside the verdict
    table = page[page.index("<table class='verdicts'"):]
    table = table[:table.index("</table>")]
    assert table.count("<tr data-claim=") == 11 and "decided by" in table
    # class lists collapsed, at the end
    class_lists = "<details><summary><b>"  # (sections also fold long tables in <details>)
    assert page.count(class_lists) >= 1 and page.index(class_lists) > page.index("id='notes'")
    # every figure is inlined and decodes as PNG
    assert outline.images
    for source in outline.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    # nothing shown twice: each figure once, at the top or in its section
    assert len(outline.images) == len(set(outline.images))


class _Tables(HTMLParser):
    """Collects the results tables: {(dataset, pert): {(subset, clf, src, threat, level):
    (first text of the cell, n, seeds)}}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[tuple[str, str], dict] = {}
        self.levels: list[str] = []
        self.key: tuple[str, str] | None = None
        self.row: tuple[str, ...] | None = None
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
            self.row = (a["data-subset"], a["data-classifier"], a["data-source"],
                        a["data-threat"])
            self.values = []
        elif self.row and tag == "td":
            self.cell = [a.get("data-n"), a.get("data-seeds"), "", False]
        elif self.cell is not None:
            self.cell[3] = True  # the first text of the cell is over (e.g. <small>)

    def handle_data(self, data: str) -> None:
        if self.cell is not None and not self.cell[3]:
            self.cell[2] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            self.values.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row:
            cells = self.values[4:-1]  # skip subset, classifier, source, threat; drop n
            assert len(cells) == len(self.levels)
            for level, (n, seeds, text, _) in zip(self.levels, cells, strict=True):
                if n is not None:
                    self.tables[self.key][(*self.row, level)] = (text.strip(), int(n),
                                                                 int(seeds))
            self.row = None
        elif tag == "table":
            self.key = None


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_table_cells_match_results_csv(built: tuple[Path, str]) -> None:
    """Each cell's first text is the accuracy (mean over seeds) of its row in results.csv."""
    run_dir, page = built
    parser = _Tables()
    parser.feed(page)
    groups: dict[tuple, list[dict]] = {}
    for r in _csv_rows(run_dir / "results.csv"):
        key = (r["dataset"], r["perturbation"], r["subset"], r["classifier"], r["source"],
               r["threat"], format_level(float(r["level"])))
        groups.setdefault(key, []).append(r)
    shown = sum(len(t) for t in parser.tables.values())
    assert shown == len(groups)  # every (row key, level) once, seeds folded into one cell
    for (dataset, pert, *rest), rows in groups.items():
        text, n, seeds = parser.tables[(dataset, pert)][tuple(rest)]
        mean = sum(float(r["accuracy"]) for r in rows) / len(rows)
        assert (text, n, seeds) == (format_accuracy(mean), int(rows[0]["n"]), len(rows)), rest
    assert any(seeds == 2 for t in parser.tables.values() for _, _, seeds in t.values())


def test_table_cell_shows_the_interval_and_keeps_threats_apart(built: tuple[Path, str]) -> None:
    run_dir, page = built
    run = load_run(run_dir)
    rows = [r for r in run.results if (r.dataset, r.subset, r.classifier, r.perturbation,
                                       r.level, r.seed) == ("coco", "all", "joint", "fgsm",
                                                            0.03, 0)]
    assert {(r.source, r.threat, r.n) for r in rows} == {("fg", "transfer", 1875),
                                                         ("joint", "whitebox", WHITEBOX_N)}
    parser = _Tables()
    parser.feed(page)
    table = parser.tables[("coco", "fgsm")]
    transfer = table[("all", "joint", "fg", "transfer", "0.03")]
    whitebox = table[("all", "joint", "joint", "whitebox", "0.03")]
    assert transfer[1] == 1875 and whitebox[1] == WHITEBOX_N and transfer[0] != whitebox[0]
    # the cell of coco/all/fg clean: "<mean> <small>&plusmn;<sd over seeds> [<low>, <high>]</small>"
    match = re.search(r"<tr data-subset='all' data-classifier='fg' data-source='' "
                      r"data-threat='none'>.*?<td data-n='1875' data-seeds='2'[^>]*>"
                      r"([0-9.]+) <small>&plusmn;([0-9.]+) \[([0-9.]+), ([0-9.]+)\]</small></td>",
                      page)
    assert match is not None
    low, high = wilson_interval(round(0.82 * 1875), 1875)
    assert match.groups() == ("82.0", "0.0", format_accuracy(low), format_accuracy(high))


def test_new_columns_are_read(built: tuple[Path, str]) -> None:
    run = load_run(built[0])
    assert run.seeds() == [0, 1] and run.alpha_reduction == "mean"
    own = [r for r in run.results if (r.dataset, r.classifier, r.source, r.level)
           == ("coco", "fg", "fg", 0.03)]
    assert own and all(r.threat == "whitebox" for r in own)
    assert {r.threat for r in run.results if r.perturbation == "blur"} == {"none"}
    row = next(r for r in run.results if r.classifier == "bg" and r.seed == 1)
    assert row.ci_low < row.accuracy < row.ci_high
    assert run.differences and {d.threat for d in run.differences} == {"none", "transfer",
                                                                       "whitebox"}
    d = next(d for d in run.differences if (d.classifier_a, d.classifier_b, d.perturbation)
             == ("joint", "fg", "blur"))
    assert d.diff == pytest.approx(d.acc_a - d.acc_b, abs=1e-6) and 0 <= d.mcnemar_p <= 1
    w = next(w for w in run.weights or [] if w.classifier == "joint-alpha10"
             and (w.subset, w.stream, w.seed) == ("all", "fg", 1))
    assert (w.alpha, w.alpha_reduction, w.alpha_mean, w.alpha_sum) == (10, "mean", 10,
                                                                       10 * N_TRAIN)
    assert w.scaled_weight is not None and w.logit_share is not None


def test_old_format_results_still_load(tmp_path: Path) -> None:
    """A results.csv without threat, seed and intervals (older runs) loads: threat inferred,
    seed 0, Wilson interval; an older weights.csv loads with the new fields left empty."""
    write_csv(tmp_path / "results.csv", HEADER, [
        ["e", "coco", "all", "fg", "", "none", 0, 0.8, 100],
        ["e", "coco", "all", "fg", "", "blur", 5, 0.4, 100],
        ["e", "coco", "all", "fg", "fg", "fgsm", 0.01, 0.3, 100],
        ["e", "coco", "all", "joint", "fg", "fgsm", 0.01, 0.5, 100],
        ["e", "coco", "all", "fg-advtrain", "fg-advtrain", "fgsm", 0.01, 0.6, 100]])
    write_csv(tmp_path / "weights.csv", ["dataset", "subset", "classifier", "alpha", "stream",
                                         "mean_abs_weight"],
              [["coco", "all", "joint", 0, "fg", 0.02], ["coco", "all", "joint", 0, "bg", 0.01]])
    run = load_run(tmp_path)
    assert [r.threat for r in run.results] == ["none", "none", "whitebox", "transfer",
                                               "whitebox"]
    assert {r.seed for r in run.results} == {0} and run.differences is None
    low, high = wilson_interval(80, 100)
    assert (run.results[0].ci_low, run.results[0].ci_high) == pytest.approx((low, high))
    weight = run.weights[0]
    assert (weight.alpha_reduction, weight.seed, weight.logit_share, weight.alpha_sum) == (
        "mean", 0, None, None)
    assert build_report(tmp_path).is_file()  # the whole report works on an old run


def test_repeated_rows_warn_with_threat_and_seed_in_the_key(tmp_path: Path) -> None:
    rows = [result("coco", "all", "joint", "fg", "fgsm", 0.01, 0.5, 100, seed=3),
            result("coco", "all", "joint", "fg", "fgsm", 0.01, 0.6, 200, seed=3),
            result("coco", "all", "joint", "fg", "fgsm", 0.01, 0.7, 100, seed=4),
            result("coco", "all", "joint", "joint", "fgsm", 0.01, 0.1, 50, seed=3)]
    write_csv(tmp_path / "results.csv", RESULT_COLUMNS, rows)
    run = load_run(tmp_path)
    (warning,) = [w for w in run.warnings if "repeat" in w]
    assert "1 row(s)" in warning and "threat" in warning and "seed" in warning
    assert "'transfer'" in warning and ", 3)" in warning


def _has_colour(path: Path, hex_colour: str, tolerance: int = 3) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    return bool((np.abs(pixels - rgb).max(axis=1) <= tolerance).sum() >= 10)


def test_classifier_names_parse_into_their_parts() -> None:
    assert parse_classifier("joint-alpha0.1@context") == ClassifierName("joint", 0.1, "context")
    assert parse_classifier("joint-alpha1e-3") == ClassifierName("joint", 0.001, None)
    assert parse_classifier("bg@context") == ClassifierName("bg", None, "context")
    assert parse_classifier("fg-advtrain") == ClassifierName("fg-advtrain", None, None)
    assert parse_classifier("joint-alpha10").family == "joint-alpha"
    names = ["joint", "joint-alpha0.1", "joint-alpha10", "joint@context",
             "joint-alpha0.1@context", "bg@object"]
    assert len({parse_classifier(n) for n in names}) == len(names)  # all parse differently


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
    for name in ("fig3a_coco.png", "fig4a_coco.png", "fig5a_coco.png", "figS2_whitebox_coco.png",
                 "fig4c_cifar10.png", "fig3a_scenes-cs0.2.png", "figT_tradeoff_coco_all.png"):
        assert _has_colour(run_dir / name, joint), name
    assert not _has_colour(run_dir / "fig4b_coco.png", joint)  # bars use the stream colours
    advtrain = classifier_style("fg-advtrain").color
    for name in ("fig5a_coco.png", "fig5b_coco.png", "figT_tradeoff_coco_dissimilar.png"):
        assert _has_colour(run_dir / name, advtrain), name


def test_tradeoff_figure_names_its_eps_and_both_alpha_conventions(
        built: tuple[Path, str]) -> None:
    _, page = built
    caption = re.search(r"<b>figT_tradeoff_coco_all.png</b>: ([^<]*)</figcaption>", page)
    assert caption is not None
    text = caption.group(1)
    assert "eps = 0.03 in pixel space (the sweep&#x27;s eps closest to 0.02)" in text
    assert "transfer" in text and "white-box" in text and "2 seeds" in text
    assert "paper&#x27;s convention" in text and "mean-CE" in text


def test_fig4a_uses_transfer_rows_and_fg_own_row(tmp_path: Path) -> None:
    """A white-box row of the same eps must not replace the transfer one in fig 4a."""
    from ctxfusion.report.select import curves

    rows = []
    for name, transfer_acc, own_acc in (("fg", 0.1, 0.1), ("bg", 0.6, 0.05),
                                        ("joint", 0.4, 0.02)):
        rows.append(result("coco", "all", name, "", "none", 0, 0.8, 100))
        rows.append(result("coco", "all", name, "fg", "fgsm", 0.02, transfer_acc, 100))
        if name != "fg":
            rows.append(result("coco", "all", name, name, "fgsm", 0.02, own_acc, 50))
    write_csv(tmp_path / "results.csv", RESULT_COLUMNS, rows)
    run = load_run(tmp_path)
    drawn = curves(run, "coco", "all", "fgsm", "transfer")
    assert {n: [p.accuracy for p in pts] for n, pts in drawn.items()} == {
        "fg": [0.8, 0.1], "bg": [0.8, 0.6], "joint": [0.8, 0.4]}
    own = curves(run, "coco", "all", "fgsm", "whitebox")
    assert {n: pts[-1].accuracy for n, pts in own.items()} == {"fg": 0.1, "bg": 0.05,
                                                               "joint": 0.02}


def test_run_without_blur_or_pca_lists_missing_figures(tmp_path: Path) -> None:
    run_dir = tmp_path / "cifar-run"
    run_dir.mkdir()
    rows = [["cifar", "cifar10", "all", name, "fg", "fgsm", eps, acc, 100]
            for name, clean in (("fg", 0.85), ("joint", 0.86))
            for eps, acc in zip(EPS, _decay(clean, 0.1, EPS, 0.02), strict=True)]
    write_csv(run_dir / "results.csv", HEADER, rows + [rows[0]])  # one repeated row
    (run_dir / "run.json").write_text(json.dumps(
        {"experiment": "cifar", "datasets": {"cifar10": _dataset_info(False, "cifar10",
                                                                      {"all": CIFAR}, None)}}))
    assert cli.main(["report", str(run_dir)]) == 0
    assert [p.name for p in run_dir.glob("fig*.png")] == ["fig4c.png"]  # one dataset: no suffix
    page = (run_dir / "report.html").read_text()
    for name in ("fig2", "fig3a", "fig3b", "fig3c", "fig3d", "fig4d", "fig5a", "fig5b",
                 "fig5c", "fig5d", "figS1_context_strength", "figS2_whitebox_cifar10",
                 "figT_tradeoff_cifar10_all"):
        assert f"data-figure='{name}'" in page, name
    assert "box-free dataset" in page and "pca.csv not found" in page
    assert "weights.csv not found" in page and "config.yaml not found" in page
    assert "1 row(s) repeat" in page and "differences.csv not found" in page
    assert (run_dir / "claims.csv").is_file() and (run_dir / "claims.md").is_file()


def test_cli_errors_name_the_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no-such-run"
    assert cli.main(["report", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err
    assert cli.main(["report", str(tmp_path)]) == 2
    assert str(tmp_path / "results.csv") in capsys.readouterr().err


def test_bad_values_raise_data_error(tmp_path: Path) -> None:
    write_csv(tmp_path / "results.csv", HEADER,
              [["e", "coco", "all", "fg", "", "none", 0, 1.7, 10]])
    with pytest.raises(DataError, match=r"results.csv line 2: column 'accuracy' = '1.7'"):
        load_run(tmp_path)
    write_csv(tmp_path / "results.csv", HEADER[:-1], [["e", "coco", "all", "fg", "", "none", 0,
                                                       0.5]])
    with pytest.raises(DataError, match=r"missing column\(s\) \['n'\]"):
        load_run(tmp_path)
    write_csv(tmp_path / "results.csv", HEADER, [["e", "coco", "all", "fg", "", "none", 0, 0.5,
                                                  "ten"]])
    with pytest.raises(DataError, match="column 'n' = 'ten' is not a valid integer"):
        load_run(tmp_path)
    bad_threat = result("coco", "all", "fg", "", "none", 0, 0.5, 10, threat="grey-box")
    write_csv(tmp_path / "results.csv", RESULT_COLUMNS, [bad_threat])
    with pytest.raises(DataError, match="column 'threat' = 'grey-box'; valid: none, transfer"):
        load_run(tmp_path)
    write_csv(tmp_path / "results.csv", RESULT_COLUMNS, [])
    write_csv(tmp_path / "differences.csv", DIFFERENCE_COLUMNS[:-1], [])
    with pytest.raises(DataError, match=r"differences.csv: missing column\(s\) \['mcnemar_p'\]"):
        load_run(tmp_path)
    (tmp_path / "differences.csv").unlink()
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(DataError, match="run.json: not valid JSON"):
        load_run(tmp_path)
