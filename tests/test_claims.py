"""Verdicts on the paper's claims (ctxfusion.report.claims) and the `ctxfusion claims` CLI, on
small run directories crafted so that one interval decides each verdict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ctxfusion import cli
from ctxfusion.report.claims import evaluate_run, render_markdown, render_verdicts
from ctxfusion.report.layout import build_report
from ctxfusion.schema import (
    CLAIM_COLUMNS,
    DIFFERENCE_COLUMNS,
    RESULT_COLUMNS,
    VERDICTS,
    WEIGHT_COLUMNS,
    infer_threat,
)
from ctxfusion.stats import wilson_interval

N = 400
N_TRAIN = 1000
ALL = [f"c{k}" for k in range(10)]


def res(classifier: str, perturbation: str, level: float, accuracy: float, source: str = "",
        subset: str = "all", seed: int = 0, dataset: str = "coco", n: int = N) -> dict:
    low, high = wilson_interval(round(accuracy * n), n)
    return {"experiment": "e", "dataset": dataset, "subset": subset, "classifier": classifier,
            "source": source, "threat": infer_threat(perturbation, classifier, source),
            "perturbation": perturbation, "level": level, "seed": seed, "accuracy": accuracy,
            "ci_low": low, "ci_high": high, "n": n}


def dif(a: str, b: str, perturbation: str, level: float, ci: tuple[float, float],
        threat: str = "none", source: str = "", subset: str = "all", seed: int = 0,
        dataset: str = "coco", acc: tuple[float, float] = (0.6, 0.55)) -> dict:
    """A paired comparison whose interval is ``ci`` (diff in its middle)."""
    diff = (ci[0] + ci[1]) / 2
    return {"experiment": "e", "dataset": dataset, "subset": subset, "source": source,
            "threat": threat, "perturbation": perturbation, "level": level, "seed": seed,
            "classifier_a": a, "classifier_b": b, "acc_a": acc[0], "acc_b": acc[0] - diff,
            "diff": diff, "ci_low": ci[0], "ci_high": ci[1], "n": N, "a_only": 30,
            "b_only": 20, "mcnemar_p": 0.004 if ci[0] > 0 or ci[1] < 0 else 0.5}


def write(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def make_run(path: Path, results: list[dict], differences: list[dict] | None = None,
             weights: list[dict] | None = None, boxed: bool = True) -> Path:
    """A run directory of one dataset ``coco`` (or box-free ``cifar10``) at 224 px."""
    path.mkdir(parents=True, exist_ok=True)
    write(path / "results.csv", RESULT_COLUMNS, results)
    if differences is not None:
        write(path / "differences.csv", DIFFERENCE_COLUMNS, differences)
    if weights is not None:
        write(path / "weights.csv", WEIGHT_COLUMNS, weights)
    names = {r["dataset"] for r in results}
    info = {"experiment": "e", "alpha_reduction": "mean", "datasets": {
        name: {"has_boxes": boxed, "kind": "coco" if boxed else "cifar10", "image_size": 224,
               "n_train": N_TRAIN, "subsets": {"all": ALL}} for name in names}}
    (path / "run.json").write_text(json.dumps(info))
    return path


def blur_run(path: Path, ci_by_seed: dict[int, tuple[float, float]]) -> Path:
    """Clean and blur (sigma 10) rows for fg and joint; joint - fg has the given interval."""
    results, differences = [], []
    for seed, ci in ci_by_seed.items():
        results += [res("fg", "none", 0, 0.8, seed=seed), res("joint", "none", 0, 0.8, seed=seed),
                    res("fg", "blur", 10, 0.3, seed=seed), res("joint", "blur", 10, 0.35,
                                                                seed=seed)]
        differences += [dif("joint", "fg", "none", 0, (-0.02, 0.02), seed=seed),
                        dif("joint", "fg", "blur", 10, ci, seed=seed)]
    return make_run(path, results, differences)


def verdicts(run: Path) -> dict[str, tuple[str, str]]:
    """claim -> (verdict, evidence) on dataset coco/cifar10 of ``run``."""
    return {r.claim: (r.verdict, r.evidence) for r in evaluate_run(run)}


def test_c1_verdict_flips_when_the_interval_crosses_zero(tmp_path: Path) -> None:
    gain = verdicts(blur_run(tmp_path / "gain", {0: (0.01, 0.09)}))["C1"]
    assert gain[0] == "reproduced"
    assert "gain at 1/1 sigmas" in gain[1]
    assert "joint - fg = +5.0 [+1.0, +9.0] pts, p = 0.004" in gain[1]
    none = verdicts(blur_run(tmp_path / "none", {0: (-0.01, 0.09)}))["C1"]
    assert none[0] == "not reproduced"
    assert "gain at 0/1 sigmas" in none[1] and "[-1.0, +9.0] pts, p = 0.5" in none[1]


def test_several_seeds_are_reproduced_only_when_every_seed_holds(tmp_path: Path) -> None:
    both = verdicts(blur_run(tmp_path / "both", {0: (0.01, 0.09), 1: (0.02, 0.08)}))["C1"]
    assert both[0] == "reproduced" and "same verdict for all 2 seeds" in both[1]
    mixed_run = blur_run(tmp_path / "mixed", {0: (0.01, 0.09), 1: (-0.02, 0.08)})
    mixed = verdicts(mixed_run)["C1"]
    assert mixed[0] == "partly" and "differs between seeds" in mixed[1]
    assert "seed 0 reproduced" in mixed[1] and "seed 1 not reproduced" in mixed[1]
    c1 = next(r for r in evaluate_run(mixed_run) if r.claim == "C1")
    assert c1.decided_by.startswith("seed 1: joint - fg +3.0 [-2.0, +8.0] pts at sigma")


def test_the_verdict_table_has_one_row_per_claim_with_the_deciding_number(
        tmp_path: Path) -> None:
    rows = evaluate_run(blur_run(tmp_path / "run", {0: (0.01, 0.09)}))
    table = render_verdicts(rows).splitlines()
    assert table[:2] == ["dataset coco:", table[1]]
    assert table[1].split() == ["claim", "verdict", "decided", "by"]
    assert [line.split()[0] for line in table[2:]] == [r.claim for r in rows]
    c1 = next(line for line in table if line.startswith("C1 "))
    assert "reproduced" in c1 and c1.endswith("joint - fg +5.0 [+1.0, +9.0] pts at sigma 10 px")
    c6 = next(line for line in table if line.startswith("C6 "))
    assert c6.split()[-2:] == ["n/a", "-"]
    assert max(map(len, table)) < 130


def test_c2_compares_with_the_papers_value_at_sigma_10(tmp_path: Path) -> None:
    results, differences = [], []
    for subset, ci in (("dissimilar", (0.04, 0.12)), ("similar", (0.10, 0.20))):
        results += [res(n, "blur", s, 0.5, subset=subset) for n in ("fg", "joint")
                    for s in (5, 11)]
        differences += [dif("joint", "fg", "blur", s, ci, subset=subset) for s in (5, 11)]
    run = make_run(tmp_path, results, differences)
    c2 = verdicts(run)["C2"]
    assert c2[0] == "partly"  # dissimilar contains +10, similar's gain misses +5
    decided = next(r.decided_by for r in evaluate_run(run) if r.claim == "C2")
    assert decided == "similar: joint - fg +15.0 [+10.0, +20.0] pts at sigma 11 px (paper +5)"
    assert "dissimilar: sigma 11 px: joint - fg = +8.0 [+4.0, +12.0] pts" in c2[1]
    assert "(paper +10)" in c2[1] and "(paper +5)" in c2[1]


def test_c4_fails_only_when_the_interval_lies_below_zero(tmp_path: Path) -> None:
    rows = [res("fg", "none", 0, 0.8), res("joint", "none", 0, 0.78)]
    below = make_run(tmp_path / "below", rows, [dif("joint", "fg", "none", 0, (-0.05, -0.01))])
    straddles = make_run(tmp_path / "straddles", rows,
                         [dif("joint", "fg", "none", 0, (-0.05, 0.01))])
    assert verdicts(below)["C4"][0] == "not reproduced"
    assert verdicts(straddles)["C4"][0] == "reproduced"


def test_without_differences_the_interval_is_unpaired(tmp_path: Path) -> None:
    run = make_run(tmp_path, [res("fg", "none", 0, 0.8), res("joint", "none", 0, 0.81)])
    verdict, evidence = verdicts(run)["C4"]
    assert verdict == "reproduced" and "(unpaired)" in evidence and "p =" not in evidence


def _alpha_run(path: Path, transfer: tuple[float, float], whitebox: tuple[float, float],
               clean: tuple[float, float] = (-0.03, 0.01)) -> Path:
    """Heads joint-alpha0.01 (paper alpha 10 = 0.01 x 1000 images) and joint-alpha10 (paper
    alpha 10,000); FGSM crafted on fg and white-box; fg-advtrain."""
    heads = ("joint-alpha0.01", "joint-alpha10")
    results = [res(n, "none", 0, 0.7) for n in ("fg", "bg", "fg-advtrain", *heads)]
    differences = [dif(h, "fg", "none", 0, clean) for h in heads]
    for eps in (0.0, 0.01, 0.02):
        for name in ("fg", "bg", "fg-advtrain", *heads):
            results.append(res(name, "fgsm", eps, 0.4, source="fg"))
            results.append(res(name, "fgsm", eps, 0.2, source=name, n=100))
        for h in heads:
            differences += [
                dif(h, "fg-advtrain", "fgsm", eps, transfer, "transfer", "fg"),
                dif(h, "fg-advtrain", "fgsm", eps, whitebox, "whitebox", "own"),
                dif(h, "bg", "fgsm", eps, (-0.02, 0.03), "transfer", "fg")]
    weights = [{"dataset": "coco", "subset": "all", "classifier": h, "alpha": a,
                "alpha_reduction": "mean", "alpha_sum": a * N_TRAIN, "alpha_mean": a,
                "seed": 0, "stream": s, "mean_abs_weight": 0.01, "scaled_weight": 0.02,
                "logit_share": 0.5} for h, a in zip(heads, (0.01, 10), strict=True)
               for s in ("fg", "bg")]
    return make_run(path, results, differences, weights)


def test_alpha_10_is_taken_in_the_papers_convention(tmp_path: Path) -> None:
    claims = verdicts(_alpha_run(tmp_path, (0.01, 0.05), (0.01, 0.05)))
    for claim in ("C8", "C9", "C10", "C10wb"):
        assert "joint-alpha0.01: paper alpha 10, mean-CE alpha 0.01" in claims[claim][1], claim
    assert claims["C8"][0] == "reproduced" and "eps 0.02: joint-alpha0.01 - bg" in claims["C8"][1]
    assert claims["C9"][0] == "reproduced"  # interval above -5 points


def test_c10_reports_transfer_and_whitebox_separately(tmp_path: Path) -> None:
    claims = verdicts(_alpha_run(tmp_path, transfer=(0.01, 0.05), whitebox=(-0.06, -0.01)))
    assert claims["C10"][0] == "reproduced" and "gain at 3/3 eps" in claims["C10"][1]
    assert claims["C10wb"][0] == "not reproduced" and "gain at 0/3 eps" in claims["C10wb"][1]


def test_dataset_kind_decides_applicability(tmp_path: Path) -> None:
    rows = [res(n, "none", 0, a, dataset="cifar10") for n, a in (("fg", 0.85), ("bg", 0.6))]
    weights = [{"dataset": "cifar10", "subset": "all", "classifier": "joint", "alpha": 0,
                "alpha_reduction": "mean", "alpha_sum": 0, "alpha_mean": 0, "seed": 0,
                "stream": s, "mean_abs_weight": w, "scaled_weight": w, "logit_share": share}
               for s, w, share in (("fg", 0.05, 0.6), ("bg", 0.01, 0.4))]
    cifar = verdicts(make_run(tmp_path / "cifar", rows, weights=weights, boxed=False))
    for claim in ("C1", "C2", "C5"):
        assert cifar[claim][0] == "not applicable", claim
    assert cifar["C6"][0] == "reproduced" and "(paper 60 vs 85)" in cifar["C6"][1]
    # mean |w| says fg dominates (0.05 vs 0.01), the scale-aware share does not: not dominant
    assert "fg share 0.60" in cifar["C7"][1] and "mean |w| fg 0.05 / bg 0.01" in cifar["C7"][1]
    boxed = verdicts(blur_run(tmp_path / "boxed", {0: (0.01, 0.09)}))
    assert boxed["C6"][0] == boxed["C7"][0] == "not applicable"
    assert all(v in VERDICTS for v, _ in {**cifar, **boxed}.values())


def test_claims_cli_writes_csv_and_markdown(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    run = blur_run(tmp_path / "run", {0: (0.01, 0.09)})
    assert cli.main(["claims", str(run)]) == 0
    out = capsys.readouterr().out
    assert "| **C1**" in out and str(run / "claims.csv") in out
    with open(run / "claims.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == CLAIM_COLUMNS
    c1 = next(r for r in rows if r["claim"] == "C1")
    assert (c1["run"], c1["dataset"], c1["verdict"]) == ("run", "coco", "reproduced")
    assert c1["decided_by"].startswith("joint - fg +5.0 [+1.0, +9.0] pts at sigma")
    md = (run / "claims.md").read_text()
    assert md.count("| **C") == len({r["claim"] for r in rows}) and "run / coco" in md


def test_claims_cli_across_runs_needs_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = blur_run(tmp_path / "a", {0: (0.01, 0.09)})
    b = blur_run(tmp_path / "b", {0: (-0.01, 0.09)})
    assert cli.main(["claims", str(a), str(b)]) == 2
    assert capsys.readouterr().err.startswith("error: 2 run directories given: pass --out")
    assert cli.main(["claims", str(a), str(b), "--out", str(tmp_path / "both")]) == 0
    md = (tmp_path / "both" / "claims.md").read_text()
    assert "a / coco" in md and "b / coco" in md
    c1 = next(line for line in md.splitlines() if line.startswith("| **C1**"))
    assert "**reproduced**" in c1 and "**not reproduced**" in c1


def test_claims_cli_missing_run_dir_is_an_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere"
    assert cli.main(["claims", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run directory not found") and str(missing) in err
    assert "Traceback" not in err
    assert not missing.exists()


def test_report_shows_the_claims_and_writes_them(tmp_path: Path) -> None:
    run = blur_run(tmp_path / "run", {0: (0.01, 0.09)})
    page = build_report(run).read_text()
    assert "id='claims'" in page and "<tr data-claim='C1'>" in page
    assert "data-verdict='reproduced'" in page
    assert (run / "claims.csv").is_file()
    assert (run / "claims.md").read_text() == render_markdown(evaluate_run(run))


def test_claims_cli_can_judge_chosen_datasets(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    from test_report import make_run_dir

    run = make_run_dir(tmp_path / "run")
    out = tmp_path / "chosen"
    assert cli.main(["claims", str(run), "--dataset", "cifar10", "--out", str(out)]) == 0
    with open(out / "claims.csv", newline="") as handle:
        assert {row["dataset"] for row in csv.DictReader(handle)} == {"cifar10"}
    capsys.readouterr()
    assert cli.main(["claims", str(run), "--dataset", "nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --dataset nope: no such dataset") and "cifar10" in err
