"""Verdicts on the paper's claims (SPEC §5) from a run directory's results and differences.

Every verdict is one of :data:`ctxfusion.schema.VERDICTS`; the evidence gives the numbers and
95 % intervals that decide it (accuracies and differences in percentage points).

General rules
- A difference of two classifiers is a *gain* only when its 95 % interval lies entirely above
  zero, a *loss* only when it lies entirely below; otherwise "no difference detected". The
  interval is the paired one of differences.csv (exact McNemar p beside it); without that file
  (older runs) or pair, Newcombe's unpaired interval from results.csv, marked "(unpaired)".
- "Close to" (C8, C9) means the interval of a - b lies entirely above -5 points
  (:data:`CLOSE`): reproduced; entirely below -5 points: not reproduced; otherwise partly.
- Seeds: each claim is decided per seed (per repeat of head training); reproduced only when
  it holds for every seed, not reproduced when it fails for every seed, partly otherwise; the
  evidence says how many seeds agree. Subsets likewise: a claim over several subsets is
  reproduced when it is in every subset, not reproduced when in none, else partly.
- Not applicable when the run lacks the data (no blur rows, no such head, the other kind of
  dataset: C1, C2, C5 need a boxed dataset, C6, C7 a box-free one, as the paper's COCO and
  CIFAR-10 claims). C3, C4, C8-C10 (stated for COCO) are evaluated on every dataset.
- Reference eps (C3 "in between", C8): the FGSM eps of the sweep closest to 0.02 in pixel
  space. The paper's sigma 10 (C2): the sigma whose 224-px equivalent (sigma x 224 /
  image_size) is closest to 10. alpha = 10 (C8-C10): the paper sums the CE over the N training
  images, so the head whose ``alpha_sum`` is closest to 10 in log scale (none within a factor
  10: not applicable).

Output: ``claims.csv`` (:data:`ctxfusion.schema.CLAIM_COLUMNS`, one row per claim, run and
dataset; ``decided_by`` is the one number that decided the verdict: the difference, accuracy
or share of the weakest part, subset or seed) and ``claims.md`` (claims as rows, one column
per run/dataset). ``ctxfusion report`` writes both into the run directory; ``ctxfusion claims
RUN_DIR`` too, and for several run directories it requires ``--out DIR`` (one table across
runs; no run's own folder is chosen silently). :func:`render_verdicts` is the compact table
that ``ctxfusion run`` prints at its end and report.html opens with.

Per claim
- C1: joint - fg is a gain at every sigma whose 224-px equivalent is >= 1 (smaller sigmas leave
  the image unchanged; that is C4), in each subset. No gain at any sigma: not reproduced.
- C2: at the paper's sigma 10, Dissimilar joint - fg is a gain whose interval contains +10,
  Similar one containing +5: reproduced; a gain whose interval misses the paper's value:
  partly; no gain: not reproduced.
- C3 (subset all, crafted on fg), three parts: fg at the largest eps <= 2 x chance; bg - fg a
  gain at every eps > 0; joint - fg a gain and joint - bg a loss at the reference eps. All
  three: reproduced; none: not reproduced; else partly.
- C4 (clean, subset all): not reproduced only when joint - fg is a loss; else reproduced.
- C5 (subset all): the fg share of the joint head's contribution lies in [1/3, 2/3] (neither
  stream more than twice the other). Decided with the scale-aware ``logit_share``; mean |w|
  is stated beside it (and decides only when logit_share is not recorded).
- C6 (clean, subset all): bg - fg lies entirely below -10 points: reproduced; a loss of less:
  partly; else not reproduced.
- C7 (subset all), two parts: fg's logit_share >= 2/3; joint - fg never shown to exceed +5
  points (interval's lower end < +5 at every eps, crafted on fg). Both: reproduced; one: partly.
- C8: at the reference eps (crafted on fg), joint-alpha - bg close to 0 (rule above).
- C9: clean joint-alpha - fg close to 0 (rule above).
- C10: joint-alpha - fg-advtrain is a gain at every eps: transfer (crafted on fg, the paper's
  setting) in C10, white-box (each attacked through its own gradient) in C10wb. Gains at every
  eps: reproduced; at some: partly (the evidence names where not); none: not reproduced.
"""

from __future__ import annotations

from pathlib import Path

from ctxfusion.io import atomic_write_text
from ctxfusion.report.claims.rules import (
    CLAIMS,
    NA,
    RULES,
    Judge,
    Verdict,
    combine,
    weakest_part,
)
from ctxfusion.report.rundir import RunData, load_run
from ctxfusion.report.select import paper_view
from ctxfusion.schema import ClaimRow, RunPaths, csv_text

__all__ = ["CLAIMS", "ClaimRow", "evaluate_run", "render_markdown", "render_verdicts",
           "write_claims"]


def over_seeds(run: RunData, dataset: str, claim: str) -> Verdict:
    """Decide ``claim`` per seed; reproduced only when it holds for every seed."""
    seeds = sorted({r.seed for r in run.results if r.dataset == dataset}) or [0]
    per_seed = [(seed, RULES[claim](Judge(run, dataset, seed))) for seed in seeds]
    if len(per_seed) == 1:
        return per_seed[0][1]
    found = [(s, v) for s, v in per_seed if v.verdict != NA]
    if not found:
        return per_seed[0][1]
    verdict = combine([v.verdict for _, v in found])
    if len(found) == 1:
        seed, only = found[0]
        return Verdict(verdict, f"only seed {seed} has the data: {only.evidence}",
                       only.decisive)
    seed, decided = weakest_part(found)
    decisive = f"seed {seed}: {decided.decisive}" if decided.decisive else ""
    if len({v.verdict for _, v in found}) == 1:
        seed, first = found[0]
        return Verdict(verdict, f"same verdict for all {len(found)} seeds; seed {seed}: "
                       f"{first.evidence}", decisive)
    return Verdict(verdict, "differs between seeds: " + " // ".join(
        f"seed {s} {v.verdict}: {v.evidence}" for s, v in found), decisive)


def evaluate_run(run: RunData | str | Path, name: str | None = None) -> list[ClaimRow]:
    """Every claim on every dataset of a run (``name``: the run's label, default its folder);
    judged on the paper's kind of rows only (:func:`~ctxfusion.report.select.paper_view`)."""
    if not isinstance(run, RunData):
        run = load_run(run)
    run = paper_view(run)
    label = name or run.run_dir.resolve().name
    rows = []
    for dataset in run.datasets():
        for claim, text in CLAIMS.items():
            verdict = over_seeds(run, dataset, claim)
            rows.append(ClaimRow(claim, text, label, dataset, verdict.verdict,
                                 verdict.decisive, verdict.evidence))
    return rows


def render_csv(rows: list[ClaimRow]) -> str:
    """claims.csv text (columns :data:`ctxfusion.schema.CLAIM_COLUMNS`)."""
    return csv_text(ClaimRow, rows)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: list[ClaimRow]) -> str:
    """A markdown table: one row per claim, one column per run/dataset."""
    columns = list(dict.fromkeys((r.run, r.dataset) for r in rows))
    cells = {(r.claim, r.run, r.dataset): r for r in rows}
    head = "| claim | " + " | ".join(_md(f"{run} / {ds}") for run, ds in columns) + " |"
    lines = ["# Does it reproduce the paper?", "",
             "Verdicts per claim of the paper (SPEC §5); rules: `ctxfusion.report.claims`. "
             "Differences in percentage points with 95 % intervals (paired, McNemar p; "
             "'unpaired' where the run has no paired comparison).", "",
             head, "|" + " --- |" * (len(columns) + 1)]
    for claim, text in CLAIMS.items():
        row = [f"**{claim}** {_md(text)}"]
        for run, ds in columns:
            found = cells.get((claim, run, ds))
            if found is None or found.verdict == NA:
                row.append("n/a" + (f": {_md(found.evidence)}" if found else ""))
            else:
                row.append(f"**{found.verdict}**: {_md(found.evidence)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_claims(rows: list[ClaimRow], out: str | Path) -> tuple[Path, Path]:
    """Write claims.csv and claims.md into ``out`` (created if needed); return their paths."""
    paths = RunPaths(Path(out))
    paths.root.mkdir(parents=True, exist_ok=True)
    return (atomic_write_text(paths.claims_csv, render_csv(rows)),
            atomic_write_text(paths.claims_md, render_markdown(rows)))


SHORT_VERDICT = {NA: "n/a"}


def render_verdicts(rows: list[ClaimRow], width: int = 50) -> str:
    """The compact verdict table for a terminal: one row per claim (a block per dataset; with
    several, those where no claim applies are left out), columns claim, verdict and the
    number that decided it."""
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    text_width = max(width - 7, 10)
    lines = []
    for dataset in datasets:
        mine = [r for r in rows if r.dataset == dataset]
        if len(datasets) > 1 and all(r.verdict == NA for r in mine):
            continue
        lines.append(f"dataset {dataset}:" if not lines else f"\ndataset {dataset}:")
        lines.append(f"{'claim':<{width}}  {'verdict':<14}  decided by")
        for row in mine:
            text = row.text if len(row.text) <= text_width else row.text[:text_width - 3] + "..."
            verdict = SHORT_VERDICT.get(row.verdict, row.verdict)
            number = row.decided_by if row.verdict != NA else "-"
            lines.append(f"{row.claim + ' ' * max(6 - len(row.claim), 1) + text:<{width}}  "
                         f"{verdict:<14}  {number}")
    return "\n".join(lines)
