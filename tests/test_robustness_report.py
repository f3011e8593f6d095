"""The robustness sections of report.html (transfer, white-box and adaptive, threat regions,
corruptions, sanity checks) and the paper's figures and claims staying as they were when a run
has the new kinds of rows; on run directories built by the test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from ctxfusion.report import build_report, load_run, render_figures
from ctxfusion.report.claims import evaluate_run
from ctxfusion.report.layout import render_html
from ctxfusion.report.paper.extra import whitebox_panels
from ctxfusion.report.robustness.html import TITLES, lead_sentence
from ctxfusion.report.sanity import (
    ANCHOR as SANITY,
)
from ctxfusion.report.sanity import (
    FAIL,
    NOT_RUN,
    PASS,
    Check,
    sanity_checks,
    summary,
)
from ctxfusion.report.select import by_seed, curves, paper_view
from ctxfusion.report.tables import format_accuracy
from ctxfusion.schema import DifferenceRow, ResultRow, csv_text, infer_threat, wilson

CLASSES = [f"c{k}" for k in range(10)]
CORRUPTIONS = ("fog", "contrast")
ROBUST_IDS = [*TITLES, SANITY]


def row(classifier: str, perturbation: str, level: float, accuracy: float, *, source: str = "",
        threat: str | None = None, region: str | None = None, subset: str = "all",
        seed: int = 0, n: int = 400, dataset: str = "coco") -> ResultRow:
    """A results.csv row (threat inferred, region: boxes for blur, else image; Wilson)."""
    low, high = wilson(accuracy, n)
    return ResultRow(experiment="e", dataset=dataset, subset=subset, classifier=classifier,
                     source=source, threat=threat or infer_threat(perturbation, classifier,
                                                                   source),
                     perturbation=perturbation,
                     region=region or ("box" if perturbation == "blur" else "image"),
                     level=level, seed=seed, accuracy=accuracy, ci_low=low, ci_high=high, n=n)


def diff_row(a: str, b: str, perturbation: str, level: float, ci: tuple[float, float], *,
             region: str = "image", threat: str = "whitebox", source: str = "own",
             seed: int = 0, subset: str = "all", dataset: str = "coco") -> DifferenceRow:
    """A paired comparison whose interval is ``ci`` (the difference in its middle)."""
    diff = (ci[0] + ci[1]) / 2
    return DifferenceRow(experiment="e", dataset=dataset, subset=subset, source=source,
                         threat=threat, perturbation=perturbation, region=region, level=level,
                         seed=seed, classifier_a=a, classifier_b=b, acc_a=0.5,
                         acc_b=0.5 - diff, diff=diff, ci_low=ci[0], ci_high=ci[1], n=400,
                         a_only=30, b_only=20, mcnemar_p=0.01 if ci[0] > 0 else 0.5)


def write_run(path: Path, rows: list[ResultRow], differences: list[DifferenceRow] | None = None,
              extra: dict | None = None) -> Path:
    """results.csv (and differences.csv) with the schema's writer, and a run.json."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.csv").write_text(csv_text(ResultRow, rows))
    if differences is not None:
        (path / "differences.csv").write_text(csv_text(DifferenceRow, differences))
    info = {"experiment": "e", "datasets": {"coco": {
        "has_boxes": True, "image_size": 224, "subsets": {"all": CLASSES}}}, **(extra or {})}
    (path / "run.json").write_text(json.dumps(info))
    return path


def clean_and_blur() -> list[ResultRow]:
    """The paper's clean and blur rows for fg, bg and joint."""
    rows = [row(n, "none", 0, a) for n, a in (("fg", 0.8), ("bg", 0.6), ("joint", 0.82))]
    return rows + [row(n, "blur", s, a - 0.03 * s) for n, a in (("fg", 0.8), ("bg", 0.6),
                                                                ("joint", 0.82))
                   for s in (2, 5)]


def transfer_rows(seeds: tuple[int, ...] = (0,)) -> list[ResultRow]:
    """FGSM on the image: sources fg (every image), bg and joint (a sample), every classifier,
    eps 0, 0.01, 0.02, 0.03; the diagonal (white-box) lowest."""
    rows = []
    for seed in seeds:
        for source in ("fg", "bg", "joint"):
            for name in ("fg", "bg", "joint"):
                for eps in (0.0, 0.01, 0.02, 0.03):
                    drop = (20 if source == name else 8) * eps + 0.01 * seed
                    rows.append(row(name, "fgsm", eps, round(0.8 - drop, 4), source=source,
                                    seed=seed, n=400 if source == "fg" else 100))
    return rows


def new_kind_rows(dataset: str = "coco", subset: str = "all") -> list[ResultRow]:
    """Every new kind of row: corruptions, FGSM and PGD in the boxes / background, adaptive
    attacks on the defences, the unbounded PGD."""
    def r(*args, **kwargs) -> ResultRow:
        return row(*args, dataset=dataset, subset=subset, **kwargs)

    names = ("fg", "bg", "joint")
    rows = [r(n, c, sev, round(0.8 - 0.1 * sev, 3), region=reg) for n in names
            for c in CORRUPTIONS for reg in ("image", "box", "background")
            for sev in range(1, 6)]
    for region in ("box", "background"):
        for eps in (0.01, 0.03):
            rows += [r(n, "fgsm", eps, 0.5, source=s, region=region) for n in names for s in names]
            rows += [r(n, "pgd", eps, 0.3, source=n, threat="whitebox", region=region)
                     for n in names]
    for name in ("joint-alpha10", "joint@context", "fg-advtrain"):
        for attack in ("fgsm", "pgd"):
            rows += [r(name, attack, eps, 0.4, source=name, threat="adaptive")
                     for eps in (0.01, 0.03)]
    rows += [r(n, "pgd", 1.0, 0.0, source=n, threat="whitebox") for n in ("fg", "joint")]
    return rows


def rich_run(path: Path, seeds: tuple[int, ...] = (0,), extra: dict | None = None) -> Path:
    """A run with every kind of row, paired differences in the regions and run.json sanity."""
    rows = clean_and_blur() + transfer_rows(seeds) + new_kind_rows()
    rows += [row(n, "pgd", eps, 0.1, source=n, threat="whitebox") for n in ("fg", "bg", "joint")
             for eps in (0.01, 0.03)]
    diffs = [diff_row("joint", "fg", "pgd", 0.01, (-0.05, 0.05), region="box")]
    sanity = {"coco/all/seed0": {"fg": {"finite": True, "nonzero_fraction": 0.98},
                                 "joint": {"finite": True, "nonzero_fraction": 0.95}}}
    return write_run(path, rows, diffs, {"sanity": sanity, **(extra or {})})


def _section(page: str, anchor: str) -> str:
    """The HTML of one section: from its heading to the next h2."""
    start = page.index(f"<h2 id='{anchor}'>")
    end = page.find("<h2 ", start + 1)
    return page[start:end if end >= 0 else len(page)]


# --- sections ----------------------------------------------------------------------------------
def test_sections_appear_only_with_their_rows(tmp_path: Path) -> None:
    page = build_report(write_run(tmp_path / "paper", clean_and_blur())).read_text()
    for anchor in ROBUST_IDS:
        assert f"id='{anchor}'" not in page, anchor
    page = build_report(rich_run(tmp_path / "rich")).read_text()
    found = [page.index(f"<h2 id='{anchor}'>") for anchor in ROBUST_IDS]
    assert found == sorted(found)  # in the page's order
    assert page.index("<h2 id='results'>") < found[0] < page.index("<h2 id='differences'>")
    for anchor in ROBUST_IDS:
        assert f"href='#{anchor}'" in page, anchor
    # each section alone: only corruptions, only adaptive rows
    only = write_run(tmp_path / "corr", clean_and_blur() + [
        row("fg", "fog", 2, 0.5, region="box")])
    page = build_report(only).read_text()
    assert "id='corruptions'" in page and "id='transfer'" not in page
    assert "id='sanity'" not in page  # no attack, no run.json sanity


def test_tables_show_clean_beside_and_intervals(tmp_path: Path) -> None:
    page = build_report(rich_run(tmp_path)).read_text()
    whitebox = _section(page, "whitebox-adaptive")
    assert "data-threat='adaptive'" in whitebox and "data-threat='whitebox'" in whitebox
    assert "<th class='clean'>clean</th>" in whitebox
    low, high = wilson(0.8, 400)
    fg_clean = f"80.0 <small>[{format_accuracy(low)}, {format_accuracy(high)}]</small>"
    assert fg_clean in whitebox
    assert "data-level='1'" not in whitebox  # the unbounded attack is a sanity check
    corruptions = _section(page, "corruptions")
    assert corruptions.count("<table class='robust corruption'") == len(CORRUPTIONS) * 3
    assert "severity (0 = clean)" in corruptions and "data-level='0'" in corruptions
    regions = _section(page, "threat-regions")
    assert "data-col='background'" in regions and "data-col='clean'" in regions


def test_transfer_matrix_diagonal_is_the_whitebox_rows(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, clean_and_blur() + transfer_rows(seeds=(0, 1)))
    page = build_report(run_dir).read_text()
    transfer = _section(page, "transfer")
    assert "eps = 0.02" in transfer  # the middle of 0.01, 0.02, 0.03
    assert "rows = crafted on, columns = classified by, diagonal = white-box" in transfer
    diagonal = re.findall(r"<td class='diag' data-row='([^']+)' data-col='([^']+)'[^>]*>"
                          r"([0-9.]+) <small>", transfer)
    assert {(r, c) for r, c, _ in diagonal} == {("fg", "fg"), ("bg", "bg"), ("joint", "joint")}
    run = load_run(run_dir)
    for name, _, text in diagonal:
        own = [r for r in run.results if (r.classifier, r.source, r.threat, r.level)
               == (name, name, "whitebox", 0.02)]
        assert len(own) == 2  # two seeds, averaged
        assert text == format_accuracy(sum(r.accuracy for r in own) / 2)
    assert "<tr class='clean'><th class='k'>clean (no attack)</th>" in transfer
    assert "<figure id='figR_transfer_coco_all'>" in transfer


def test_configured_sources_come_from_run_json(tmp_path: Path) -> None:
    attacks = [{"name": "fgsm", "source": "fg", "evaluated_on": "every classifier",
                "images": "every test image of the subset"}]
    run_dir = write_run(tmp_path, clean_and_blur() + transfer_rows(),
                        extra={"threat_model": {"attacks": attacks}})
    _, sources, panels = whitebox_panels(paper_view(load_run(run_dir)), "coco")
    assert sources == ["fg"] and [p.title for p in panels] == [
        "crafted on fg", "white-box: each crafted on itself"]
    page = build_report(run_dir).read_text()
    transfer = _section(page, "transfer")
    assert "configured source(s): fg." in transfer and "every source at every eps" in transfer
    paper = transfer[:transfer.index("<h4>")]
    assert "data-source='bg' data-threat='transfer'" not in paper
    assert "data-source='bg' data-threat='transfer'" in _section(page, "results")


def test_region_lead_is_a_finding_only_when_the_interval_excludes_zero(tmp_path: Path) -> None:
    run = load_run(rich_run(tmp_path))
    cells = {"joint": by_seed([row("joint", "pgd", 0.01, 0.5, region="box")]),
             "fg": by_seed([row("fg", "pgd", 0.01, 0.3, region="box")])}
    key = ("coco", "all", "pgd", "box", 0.01)
    text = lead_sentence(run, key, cells)
    assert "joint holds up best (50.0 %), ahead of fg (30.0 %)" in text
    assert "no difference detected (the interval includes zero)" in text
    run.differences = [diff_row("fg", "joint", "pgd", 0.01, (-0.3, -0.1), region="box")]
    text = lead_sentence(run, key, cells)
    assert "+20.0 [+10.0, +30.0] points: a finding" in text
    run.differences = []
    assert "no paired comparison" in lead_sentence(run, key, cells)


# --- sanity checks -----------------------------------------------------------------------------
def _status(checks: list[Check], check: str) -> set[str]:
    return {c.status for c in checks if c.check == check}


def _sanity_rows(page: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for css, check in re.findall(r"<tr class='(\w+)' data-check='(\w+)'", page):
        found.setdefault(check, set()).add(css)
    return found


@pytest.mark.parametrize("pgd, fails", [(0.6, True), (0.25, False), (0.1, False)])
def test_iterative_weaker_than_fgsm_fails(tmp_path: Path, pgd: float, fails: bool) -> None:
    rows = clean_and_blur() + [row("joint", "fgsm", 0.01, 0.2, source="joint", n=400),
                               row("joint", "pgd", 0.01, pgd, source="joint", n=400,
                                   threat="whitebox")]
    run_dir = write_run(tmp_path, rows)
    checks = sanity_checks(load_run(run_dir))
    assert _status(checks, "iterative") == {FAIL if fails else PASS}
    page = build_report(run_dir).read_text()
    rendered = _sanity_rows(_section(page, "sanity"))
    assert rendered["iterative"] == {"fail" if fails else "pass"}
    if fails:
        assert "weaker than one FGSM step: gradient masking or a broken attack" in page
    assert f"{int(fails)} of {len(checks)} checks failed" in page


def test_monotone_check(tmp_path: Path) -> None:
    def checks(accs: tuple[float, float]) -> list[Check]:
        rows = [row("fg", "fgsm", eps, a, source="fg")
                for eps, a in zip((0.01, 0.03), accs, strict=True)]
        return sanity_checks(load_run(write_run(tmp_path / str(accs), rows)))

    rising = checks((0.2, 0.6))
    assert _status(rising, "monotone") == {FAIL}
    (check,) = [c for c in rising if c.check == "monotone"]
    assert "eps 0.03 above eps 0.01" in check.result and "not trustworthy" in check.meaning
    assert _status(checks((0.6, 0.2)), "monotone") == {PASS}
    assert _status(checks((0.3, 0.33)), "monotone") == {PASS}  # within noise


def test_unbounded_and_gradient_checks(tmp_path: Path) -> None:
    base = clean_and_blur() + [row("fg", "fgsm", 0.01, 0.2, source="fg")]
    none = sanity_checks(load_run(write_run(tmp_path / "none", base)))
    assert _status(none, "unbounded") == _status(none, "gradients") == {NOT_RUN}
    high = [row("joint", "pgd", 1.0, 0.3, source="joint", threat="whitebox")]
    broken = {"coco/all/seed0": {"fg": {"finite": False, "nonzero_fraction": 1.0},
                                 "joint": {"finite": True, "nonzero_fraction": 0.5}}}
    run_dir = write_run(tmp_path / "bad", base + high, extra={"sanity": broken})
    bad = sanity_checks(load_run(run_dir))
    assert _status(bad, "unbounded") == _status(bad, "gradients") == {FAIL}
    (gradients,) = [c for c in bad if c.check == "gradients"]
    assert "fg: gradient not finite" in gradients.result and "joint: non-zero" in gradients.result
    page = build_report(run_dir).read_text()
    assert _sanity_rows(page)["unbounded"] == {"fail"} and "#b00020" in page
    fine = {"coco/all/seed0": {"fg": {"finite": True, "nonzero_fraction": 0.95}}}
    low = [row("joint", "pgd", 1.0, 0.02, source="joint", threat="whitebox")]
    good = sanity_checks(load_run(write_run(tmp_path / "good", base + low,
                                            extra={"sanity": fine})))
    assert _status(good, "unbounded") == _status(good, "gradients") == {PASS}
    assert summary(good).startswith("0 of ")


def test_diagonal_check(tmp_path: Path) -> None:
    def checks(whitebox: float) -> list[Check]:
        rows = [row("bg", "fgsm", 0.01, 0.2, source="fg"),
                row("bg", "fgsm", 0.01, whitebox, source="bg")]
        return sanity_checks(load_run(write_run(tmp_path / str(whitebox), rows)))

    assert _status(checks(0.6), "diagonal") == {FAIL}
    assert _status(checks(0.1), "diagonal") == {PASS}
    assert _status(checks(0.1), "clean") == {PASS}


# --- figures -----------------------------------------------------------------------------------
def test_robustness_figures_are_written_and_shown_in_their_sections(tmp_path: Path) -> None:
    run_dir = rich_run(tmp_path, seeds=(0, 1))
    page = build_report(run_dir).read_text()
    for stem, anchor in (("figR_transfer_coco_all", "transfer"),
                         ("figR_corruptions_coco_all", "corruptions")):
        path = run_dir / f"{stem}.png"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300
        assert f"<figure id='{stem}'>" in _section(page, anchor)
        assert page.count(f"<figure id='{stem}'>") == 1


# --- the paper's figures, tables and claims ----------------------------------------------------
def _paper_parts(page: str) -> str:
    """Every part of the page that existed before the robustness sections, figures and
    nav aside (the figures are compared as files)."""
    parts = [_section(page, a) for a in ("claims", "threat-model", "conventions", "results",
                                         "differences")]
    return "".join(parts)


def test_new_kinds_of_rows_change_no_paper_figure_table_or_claim(tmp_path: Path) -> None:
    from test_report import make_run_dir

    base = make_run_dir(tmp_path / "base", seeds=(0,))
    more = make_run_dir(tmp_path / "more", seeds=(0,))
    run = load_run(more)
    for run_dir in (base, more):  # both through the schema's writer (6 significant digits)
        (run_dir / "results.csv").write_text(csv_text(ResultRow, run.results))
        (run_dir / "differences.csv").write_text(csv_text(DifferenceRow, run.differences or []))
    run = load_run(more)
    added = [r for subset in ("all", "dissimilar") for r in new_kind_rows("coco", subset)]
    (more / "results.csv").write_text(csv_text(ResultRow, run.results + added))
    new_diffs = [diff_row("joint", "fg", "pgd", 0.01, (0.01, 0.2), region="box"),
                 diff_row("joint", "fg", "fgsm", 0.01, (0.1, 0.3), threat="adaptive"),
                 diff_row("joint", "fg", "fog", 3, (0.1, 0.3), threat="none", source="",
                          region="background")]
    (more / "differences.csv").write_text(csv_text(DifferenceRow,
                                                   (run.differences or []) + new_diffs))
    old, new = load_run(base), load_run(more)
    assert len(new.results) > len(old.results)
    assert paper_view(new).results == paper_view(old).results == old.results
    for subset in ("all", "dissimilar"):
        for perturbation, setting in (("fgsm", "transfer"), ("fgsm", "whitebox"),
                                      ("pgd", "whitebox"), ("blur", "none"), ("none", "none")):
            assert (curves(new, "coco", subset, perturbation, setting)
                    == curves(old, "coco", subset, perturbation, setting)), (subset, setting)
    assert whitebox_panels(paper_view(new), "coco") == whitebox_panels(old, "coco")

    def verdicts(run_dir: Path) -> list[tuple[str, str, str, str]]:
        return [(c.claim, c.dataset, c.verdict, c.evidence) for c in evaluate_run(run_dir)]

    assert verdicts(more) == verdicts(base)
    old_figures, new_figures = render_figures(old), render_figures(new)
    def paper_figures(produced: list) -> dict[str, bytes]:
        return {r.path.name: r.path.read_bytes() for r in produced
                if not r.path.name.startswith("figR_")}

    assert paper_figures(new_figures.produced) == paper_figures(old_figures.produced)
    old_page = render_html(old, old_figures, evaluate_run(old))
    new_page = render_html(new, new_figures, evaluate_run(new))
    assert _paper_parts(new_page) == _paper_parts(old_page)
    assert "id='corruptions'" in new_page and "id='corruptions'" not in old_page
