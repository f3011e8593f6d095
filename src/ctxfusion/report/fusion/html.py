"""The "Robust fusion (beyond the paper)" section of report.html.

One table per dataset/subset with robust fusion or held-out rows (:mod:`.select`): per
column (clean, blur at sigma*, FGSM transfer and white-box at eps*) the accuracy and, for each
alpha and method row, the paired difference vs fg and vs the fused classifier, marked better
or worse only where its interval excludes zero; then figure F. Absent when the run has no such
rows (older runs). Every value from the run is escaped (:func:`esc`).
"""

from __future__ import annotations

from ctxfusion.report.figure_base import FigureSet
from ctxfusion.report.fusion.figures import FUSION
from ctxfusion.report.fusion.select import (
    NO_DIFFERENCE,
    DiffCell,
    FusionTable,
    format_diff,
    format_point,
    fusion_info,
    fusion_places,
    fusion_tables,
)
from ctxfusion.report.grouping import by_region, clean_rows, in_place, several_experiments
from ctxfusion.report.markup import esc, figures_with_stem
from ctxfusion.report.rundir import RunData
from ctxfusion.report.select import is_fusion_classifier
from ctxfusion.report.tables import results_table
from ctxfusion.roles import JOINT

ANCHOR, TITLE = "robust-fusion", "Robust fusion (beyond the paper)"
INTRO = ("Robust fusion methods over the fused classifier (joint-dropout, -blurtrain, "
         "-fgsmtrain, -poe, -confidence, -gate) beside fg, bg, joint and the alpha sweep, and "
         "the same classifiers cross-fitted on held-out test images (-heldout: their heads never "
         "saw images the object network was pretrained on). Columns: clean accuracy; accuracy "
         "under blur in the boxes at sigma* (the sigma closest to the paper's 10 px at 224 px); "
         "under FGSM crafted on fg (transfer; fg itself white-box) and through each "
         "classifier's own gradient (white-box) at eps* (the transfer matrix's eps, pixel "
         "space); accuracy in % [95 % interval], and for each alpha and method the paired "
         "difference in points vs fg and vs joint (held-out rows: vs fg-heldout and "
         "joint-heldout), marked better or worse only where its interval excludes zero, else "
         f"{NO_DIFFERENCE}. Several seeds: means, marked only when every seed agrees.")
WHITEBOX_NOTE = ("A method counts as robust to white-box attacks only where its white-box row "
                 "says so: transfer from fg and blur do not attack the method itself, and "
                 "held-out classifiers have no white-box rows.")


def present(run: RunData) -> bool:
    """Whether the run has robust fusion or held-out rows."""
    return bool(fusion_places(run))


def _diff_td(d: DiffCell | None) -> str:
    if d is None:
        return "<td>-</td>"
    mark = "" if d.verdict == NO_DIFFERENCE else f" <b>{esc(d.verdict)}</b>"
    title = f" title='{esc(d.verdict)}; {d.seeds} seed(s)'"
    return (f"<td data-verdict='{esc(d.verdict)}' data-ref='{esc(d.reference)}'{title}>"
            f"{esc(format_diff(d))}{mark}</td>")


def fusion_table_html(table: FusionTable) -> str:
    """One table: classifier x (accuracy, vs fg, vs joint) per column."""
    base = table.base
    top = "".join(f"<th colspan='3'>{esc(c.title)}</th>" for c in table.columns)
    sub = ("<th>accuracy (%)</th><th>vs fg (pts)</th>"
           f"<th>vs {esc(base)} (pts)</th>") * len(table.columns)
    out = [f"<table class='fusion' data-dataset='{esc(table.dataset)}' "
           f"data-subset='{esc(table.subset)}'><tr><th class='k' rowspan='2'>classifier</th>"
           f"{top}</tr><tr>{sub}</tr>"]
    for row in table.rows:
        tds = []
        for c in table.columns:
            p = row.cells.get(c.key)
            attrs = f" data-col='{esc(c.key)}'" + (f" data-n='{p.n}'" if p else "")
            tds.append(f"<td{attrs}>{esc(format_point(p))}</td>")
            for role in ("fg", JOINT):
                tds.append(_diff_td(row.versus.get(role, {}).get(c.key)))
        css = " class='heldout'" if row.heldout else ""
        out.append(f"<tr{css} data-classifier='{esc(row.classifier)}'><th class='k'>"
                   f"{esc(row.classifier)}</th>{''.join(tds)}</tr>")
    out.append("</table>")
    return "".join(out)


def every_row(run: RunData, dataset: str, subset: str) -> str:
    """Every row of the robust fusion and held-out classifiers of one subset (collapsed): one
    table per perturbation and region, clean beside."""
    mine = [r for r in in_place(run.results, dataset, subset) if is_fusion_classifier(r.classifier)
            and r.perturbation != "none"]
    several = several_experiments(run)
    clean = in_place(clean_rows(run), dataset, subset)
    parts = []
    for perturbation, region, group in by_region(
            mine, list(dict.fromkeys(r.perturbation for r in mine))):
        parts.append(f"<h4>{esc(perturbation)}, region {esc(region)}</h4>"
                     + results_table(group, dataset, perturbation, several, clean,
                                     "fusion rows"))
    if not parts:
        return ""
    return ("<details><summary>every row of these classifiers (blur sigmas, attack eps, "
            "sources, regions, corruptions)</summary>" + "".join(parts) + "</details>")


def _settings(run: RunData, dataset: str) -> str:
    info = fusion_info(run, dataset)
    shown = ", ".join(f"{k}: {v}" for k, v in info.items())
    return f"<p><small>run.json fusion settings: {esc(shown)}</small></p>" if shown else ""


def fusion_section(run: RunData, figures: FigureSet) -> str:
    """The section (``run``: every row), or empty when the run has no such rows."""
    tables = fusion_tables(run)
    if not tables:
        return ""
    parts = [f"<h2 id='{ANCHOR}'>{esc(TITLE)}</h2><p>{esc(INTRO)}</p>"
             f"<p class='caution'>{esc(WHITEBOX_NOTE)}</p>"]
    shown: set[str] = set()
    for table in tables:
        settings = "" if table.dataset in shown else _settings(run, table.dataset)
        shown.add(table.dataset)
        parts.append(f"<h3>{esc(table.dataset)} / {esc(table.subset)}</h3>" + settings
                     + fusion_table_html(table) + every_row(run, table.dataset, table.subset))
        stem = f"{FUSION}_{table.dataset}_{table.subset}"
        parts.append(figures_with_stem(figures, stem))
    return "".join(parts)
