"""The robust fusion section of the report (issue 13): the table's data (sigma*, eps*,
accuracies, differences marked only where they exclude zero), figure F, the HTML section, the
markdown CLI, and the paper's figures and claims unchanged by the new classifiers; on run
directories built by the test with the schema's writers."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from ctxfusion.cli import main as cli_main
from ctxfusion.report import build_report, load_run, render_figures
from ctxfusion.report.claims import evaluate_run
from ctxfusion.report.fusion.figures import frontier
from ctxfusion.report.fusion.markdown import fusion_markdown
from ctxfusion.report.fusion.select import (
    BETTER,
    NO_DIFFERENCE,
    WORSE,
    blur_level,
    fgsm_level,
    fusion_table,
    fusion_tables,
)
from ctxfusion.report.select import is_fusion_classifier, paper_view, without_fusion
from ctxfusion.schema import DifferenceRow, ResultRow, csv_text, wilson

CLASSES = [f"c{k}" for k in range(8)]
SIGMAS = (1.0, 2.5, 4.0, 8.0)  # at 64 px, sigma* = the closest to 10 x 64 / 224 = 2.86: 2.5
EPS = (0.0, 0.01, 0.02, 0.03, 0.05)  # the middle non-zero is 0.02; the matrix eps is 0.03
PAPER = ("fg", "bg", "joint", "joint-alpha10")
METHODS = ("joint-dropout", "joint-gate")
HELDOUT = ("fg-heldout", "bg-heldout", "joint-heldout", "joint-alpha10-heldout",
           "joint-gate-heldout")
SEEDS = (0, 1)
CLEAN = {"fg": 0.80, "bg": 0.60, "joint": 0.82, "joint-alpha10": 0.70, "joint-dropout": 0.81,
         "joint-gate": 0.83, "fg-heldout": 0.78, "bg-heldout": 0.58, "joint-heldout": 0.80,
         "joint-alpha10-heldout": 0.69, "joint-gate-heldout": 0.79}


def row(classifier: str, perturbation: str, level: float, accuracy: float, *, seed: int,
        source: str = "", threat: str = "none", n: int = 400) -> ResultRow:
    """A results.csv row with its Wilson interval (blur in the boxes, else the image)."""
    low, high = wilson(accuracy, n)
    return ResultRow(experiment="e", dataset="scenes", subset="all", classifier=classifier,
                     source=source, threat=threat, perturbation=perturbation,
                     region="box" if perturbation == "blur" else "image", level=level,
                     seed=seed, accuracy=accuracy, ci_low=low, ci_high=high, n=n)


def diff(a: str, b: str, perturbation: str, level: float, ci: tuple[float, float], *,
         threat: str, source: str, seed: int) -> DifferenceRow:
    """A paired comparison whose interval is ``ci`` (the difference in its middle)."""
    d = (ci[0] + ci[1]) / 2
    return DifferenceRow(experiment="e", dataset="scenes", subset="all", source=source,
                         threat=threat, perturbation=perturbation,
                         region="box" if perturbation == "blur" else "image", level=level,
                         seed=seed, classifier_a=a, classifier_b=b, acc_a=0.5, acc_b=0.5 - d,
                         diff=d, ci_low=ci[0], ci_high=ci[1], n=400, a_only=30, b_only=20,
                         mcnemar_p=0.01 if ci[0] > 0 or ci[1] < 0 else 0.5)


def classifier_rows(name: str, whitebox: bool, seed: int) -> list[ResultRow]:
    """Clean, blur at every sigma, FGSM crafted on fg at every eps, and (``whitebox``) FGSM
    through its own gradient; accuracy falls with the level, a little lower for seed 1."""
    clean = CLEAN[name] - 0.01 * seed
    rows = [row(name, "none", 0, clean, seed=seed)]
    rows += [row(name, "blur", s, round(clean - 0.03 * s, 4), seed=seed) for s in SIGMAS]
    threat = "whitebox" if name == "fg" else "transfer"
    rows += [row(name, "fgsm", e, round(clean - 8 * e, 4), seed=seed, source="fg",
                 threat=threat) for e in EPS]
    if whitebox and name != "fg":
        rows += [row(name, "fgsm", e, round(clean - 12 * e, 4), seed=seed, source=name,
                     threat="whitebox", n=120) for e in EPS]
    return rows


def paper_rows() -> list[ResultRow]:
    """The rows of the paper's classifiers."""
    return [r for seed in SEEDS for name in PAPER
            for r in classifier_rows(name, name in ("fg", "joint"), seed)]


def fusion_rows() -> list[ResultRow]:
    """The robust fusion methods (white-box too) and the held-out family (no white-box)."""
    return ([r for seed in SEEDS for name in METHODS for r in classifier_rows(name, True, seed)]
            + [r for seed in SEEDS for name in HELDOUT
               for r in classifier_rows(name, False, seed)])


def fusion_differences() -> list[DifferenceRow]:
    """joint-gate: better than fg under transfer at 0.03 (every seed), no difference vs joint
    there, mixed vs joint under blur at 2.5 (no difference), worse than joint white-box."""
    out = []
    for seed in SEEDS:
        out += [diff("joint-gate", "fg", "fgsm", 0.03, (0.05, 0.15), threat="transfer",
                     source="fg", seed=seed),
                diff("joint-gate", "joint", "fgsm", 0.03, (-0.02, 0.06), threat="transfer",
                     source="fg", seed=seed),
                diff("joint-gate", "joint", "blur", 2.5,
                     (0.01, 0.05) if seed == 0 else (-0.01, 0.03), threat="none", source="",
                     seed=seed),
                diff("joint-gate", "joint", "fgsm", 0.03, (-0.2, -0.1), threat="whitebox",
                     source="own", seed=seed),
                diff("fg-heldout", "joint-gate-heldout", "fgsm", 0.03, (-0.12, -0.04),
                     threat="transfer", source="fg", seed=seed)]
    return out


def write_run(path: Path, rows: list[ResultRow], differences: list[DifferenceRow],
              fusion: bool = True, matrix: bool = True) -> Path:
    """results.csv and differences.csv with the schema's writer, and a run.json."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.csv").write_text(csv_text(ResultRow, rows))
    (path / "differences.csv").write_text(csv_text(DifferenceRow, differences))
    attacks = [{"name": "fgsm", "source": "fg", "setting": "transfer matrix", "eps": 0.03}]
    info: dict = {"experiment": "e", "datasets": {"scenes": {
        "has_boxes": True, "image_size": 64, "subsets": {"all": CLASSES}}},
        "threat_model": {"attacks": attacks if matrix else []}}
    if fusion:
        info["fusion"] = {"scenes": {"classifier": "joint", "methods": ["dropout", "gate"],
                                     "dropout": 0.3, "blur_sigmas": list(SIGMAS),
                                     "fgsm_epsilons": list(EPS), "heldout_folds": 5}}
    (path / "run.json").write_text(json.dumps(info))
    return path


@pytest.fixture
def fusion_run(tmp_path: Path) -> Path:
    """A run with the paper's classifiers, two fusion methods and the held-out family."""
    return write_run(tmp_path / "fusion", paper_rows() + fusion_rows(), fusion_differences())


def test_names_beyond_the_paper() -> None:
    assert all(is_fusion_classifier(n) for n in (*METHODS, *HELDOUT, "joint-alpha10-heldout",
                                         "joint-gate@context"))
    assert not any(is_fusion_classifier(n) for n in (*PAPER, "fg-advtrain", "bg@context", "joint3"))


def test_levels_sigma_star_and_eps_star(fusion_run: Path, tmp_path: Path) -> None:
    run = load_run(fusion_run)
    assert blur_level(run, "scenes", "all") == 2.5  # closest to 2.86 = 10 x 64 / 224
    assert fgsm_level(run, "scenes", "all") == 0.03  # the transfer matrix's eps
    plain = load_run(write_run(tmp_path / "plain", paper_rows() + fusion_rows(), [],
                               matrix=False))
    assert fgsm_level(plain, "scenes", "all") == 0.02  # else the middle non-zero eps


def test_table_rows_values_and_marks(fusion_run: Path) -> None:
    table = fusion_table(load_run(fusion_run), "scenes", "all")
    assert [r.classifier for r in table.rows] == [*PAPER, *METHODS, *HELDOUT]
    assert [(c.key, c.level) for c in table.columns] == [
        ("clean", 0.0), ("blur", 2.5), ("transfer", 0.03), ("whitebox", 0.03)]
    rows = {r.classifier: r for r in table.rows}
    gate = rows["joint-gate"]
    # accuracy: mean over the two seeds (seed 1 is 1 point lower), mean of the Wilson bounds
    assert gate.cells["clean"].accuracy == pytest.approx(0.825)
    assert gate.cells["blur"].accuracy == pytest.approx(0.825 - 0.075)
    assert gate.cells["transfer"].accuracy == pytest.approx(0.825 - 0.24)
    assert gate.cells["whitebox"].accuracy == pytest.approx(0.825 - 0.36)
    bounds = [wilson(0.83 - 0.24, 400), wilson(0.82 - 0.24, 400)]
    assert gate.cells["transfer"].ci_low == pytest.approx((bounds[0][0] + bounds[1][0]) / 2)
    assert gate.cells["transfer"].seeds == 2
    # differences: paired, marked only where every seed's interval excludes zero
    vs_fg, vs_joint = gate.versus["fg"], gate.versus["joint"]
    assert vs_fg["transfer"].verdict == BETTER and vs_fg["transfer"].paired
    assert vs_fg["transfer"].diff == pytest.approx(0.10)
    assert vs_joint["transfer"].verdict == NO_DIFFERENCE
    assert vs_joint["blur"].verdict == NO_DIFFERENCE  # seed 0 excludes zero, seed 1 does not
    assert vs_joint["blur"].ci_low == pytest.approx(0.0)
    assert vs_joint["whitebox"].verdict == WORSE
    # no paired comparison: Newcombe's unpaired interval from results.csv
    assert not vs_fg["clean"].paired and vs_fg["clean"].diff == pytest.approx(0.03)
    # held-out rows: compared with the held-out references, no white-box rows
    held = rows["joint-gate-heldout"]
    assert held.heldout and set(held.versus) == {"fg", "joint"}
    assert held.versus["fg"]["transfer"].reference == "fg-heldout"
    assert held.versus["fg"]["transfer"].verdict == BETTER  # swapped pair of differences.csv
    assert held.versus["fg"]["transfer"].diff == pytest.approx(0.08)
    assert held.cells["whitebox"] is None and held.versus["joint"]["whitebox"] is None
    assert not rows["fg"].versus and not rows["joint-heldout"].versus
    assert rows["joint-alpha10"].versus["fg"]["clean"].verdict == WORSE  # 10 points lower
    assert rows["joint-alpha10-heldout"].versus["joint"]["clean"].reference == "joint-heldout"


def test_figure_and_section(fusion_run: Path) -> None:
    figures = render_figures(fusion_run)
    assert (fusion_run / "figF_fusion_scenes_all.png").is_file()
    assert "figF_fusion_scenes_all.png" in {r.path.name for r in figures.produced}
    page = build_report(fusion_run).read_text()
    assert "<h2 id='robust-fusion'>Robust fusion (beyond the paper)</h2>" in page
    section = page[page.index("id='robust-fusion'"):]
    assert "only where its white-box row says so" in section
    assert "run.json fusion settings" in section and "heldout_folds: 5" in section
    # the frontier of subset all is a headline figure: shown once, under the verdicts on top
    findings = page[page.index("id='findings'"):page.index("id='claims'")]
    assert "id='figF_fusion_scenes_all'" in findings and page.count("figF_fusion_scenes_all'") == 1
    assert "data-classifier='joint-gate-heldout'" in section
    assert "data-verdict='better'" in section and "data-verdict='worse'" in section
    # the paper's and the robustness sections do not list the new classifiers
    before = page[:page.index("id='robust-fusion'")]
    assert not re.search(r"joint-(gate|dropout)|-heldout", before)


def test_frontier_is_the_upper_right_edge() -> None:
    points = [(0.8, 0.2), (0.7, 0.5), (0.6, 0.4), (0.5, 0.6), (0.8, 0.1)]
    assert frontier(points) == [(0.5, 0.6), (0.7, 0.5), (0.8, 0.2)]


def test_paper_figures_and_claims_unchanged(fusion_run: Path, tmp_path: Path) -> None:
    paper = write_run(tmp_path / "paper", paper_rows(), [], fusion=False)
    with_fusion, alone = load_run(fusion_run), load_run(paper)
    assert paper_view(with_fusion).results == paper_view(alone).results
    assert without_fusion(with_fusion).results == alone.results
    strip = [(c.claim, c.dataset, c.verdict, c.evidence) for c in evaluate_run(alone, "r")]
    assert [(c.claim, c.dataset, c.verdict, c.evidence)
            for c in evaluate_run(with_fusion, "r")] == strip
    drawn = {r.path.name for r in render_figures(alone).produced}
    assert "figT_tradeoff_scenes_all.png" in drawn
    render_figures(with_fusion)
    for name in sorted(drawn):
        assert (fusion_run / name).read_bytes() == (paper / name).read_bytes(), name
    assert not fusion_tables(alone)


def test_markdown_and_cli(fusion_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = fusion_markdown(fusion_run)
    assert text == fusion_markdown(fusion_run, "scenes")
    assert "### scenes / all" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| `joint-gate` |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[8] == "+10.0 [+5.0, +15.0] **better**"  # transfer, vs fg
    assert cells[9] == "+2.0 [-2.0, +6.0]"  # transfer, vs joint: no difference detected
    assert cells[12].endswith("**worse**")  # white-box, vs joint
    assert cli_main(["fusion-table", str(fusion_run)]) == 0
    assert capsys.readouterr().out == text


def test_cli_bad_input(fusion_run: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["fusion-table", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: run directory not found")
    plain = write_run(tmp_path / "plain", paper_rows(), [], fusion=False)
    assert cli_main(["fusion-table", str(plain)]) == 2
    assert "no rows of robust fusion" in capsys.readouterr().err
    assert cli_main(["fusion-table", str(fusion_run), "--dataset", "coco"]) == 2
    assert "--dataset coco" in capsys.readouterr().err


def test_run_without_fusion_skips_section(tmp_path: Path) -> None:
    plain = write_run(tmp_path / "plain", paper_rows(), [], fusion=False)
    page = build_report(plain).read_text()
    assert "robust-fusion" not in page
    assert not list(plain.glob("figF_*.png"))
    assert math.isclose(blur_level(load_run(plain), "scenes", "all"), 2.5)


def test_images_crafted_on_a_method_leave_the_robustness_view(fusion_run: Path) -> None:
    """The transfer matrix crafts FGSM on every classifier, the methods included: a paper
    classifier's row on images crafted on joint-gate belongs to the fusion section only."""
    run = load_run(fusion_run)
    crafted = row("fg", "fgsm", 0.03, 0.4, seed=0, source="joint-gate", threat="transfer")
    paired = diff("fg", "bg", "fgsm", 0.03, (-0.1, 0.1), threat="transfer",
                  source="joint-gate", seed=0)
    run = replace(run, results=[*run.results, crafted],
                  differences=[*(run.differences or []), paired])
    view = without_fusion(run)
    assert crafted not in view.results and paired not in (view.differences or [])
    assert not any(is_fusion_classifier(r.source) for r in view.results)
