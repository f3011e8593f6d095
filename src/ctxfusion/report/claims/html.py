"""The "Findings" section that opens report.html (the compact verdict table, the headline
figures) and the "Claims" section (every verdict with its evidence), from
:mod:`ctxfusion.report.claims`."""

from __future__ import annotations

from ctxfusion.report.claims.rules import CLAIMS, NA
from ctxfusion.report.figure_base import FigureRecord
from ctxfusion.report.markup import esc, figure_tag
from ctxfusion.schema import ClaimRow


def claims_section(rows: list[ClaimRow]) -> str:
    """The claims table of the run: one row per claim, one column per dataset."""
    parts = ["<h2 id='claims'>Claims</h2><p>Each claim of the paper (SPEC §5) judged on this "
             "run; the rules are in <code>ctxfusion.report.claims</code>; the same table is in "
             "claims.md and claims.csv beside this page.</p>"]
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    if not datasets:
        return "".join(parts) + "<p>No dataset to judge.</p>"
    cells = {(r.claim, r.dataset): r for r in rows}
    parts.append("<table class='claims'><tr><th class='k'>claim</th>" + "".join(
        f"<th class='k'>{esc(d)}</th>" for d in datasets) + "</tr>")
    for claim, text in CLAIMS.items():
        tds = []
        for dataset in datasets:
            row = cells.get((claim, dataset))
            verdict = row.verdict if row else "not applicable"
            evidence = row.evidence if row else ""
            tds.append(f"<td class='k verdict' data-verdict='{esc(verdict)}'><b>{esc(verdict)}"
                       f"</b><br><small>{esc(evidence)}</small></td>")
        parts.append(f"<tr data-claim='{esc(claim)}'><td class='k'><b>{esc(claim)}</b> "
                     f"{esc(text)}</td>{''.join(tds)}</tr>")
    parts.append("</table>")
    return "".join(parts)


def verdict_table(rows: list[ClaimRow]) -> str:
    """The compact verdict table: one row per claim (claim, verdict, the number that decided
    it), one table per dataset; with several, datasets where no claim applies are left out."""
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    parts = []
    for dataset in datasets:
        mine = [r for r in rows if r.dataset == dataset]
        if len(datasets) > 1 and all(r.verdict == NA for r in mine):
            continue
        body = "".join(
            f"<tr data-claim='{esc(r.claim)}'><td class='k'><b>{esc(r.claim)}</b> "
            f"{esc(r.text)}</td><td class='k verdict' data-verdict='{esc(r.verdict)}'>"
            f"<b>{esc('n/a' if r.verdict == NA else r.verdict)}</b></td>"
            f"<td class='k'>{esc('-' if r.verdict == NA else r.decided_by)}</td></tr>"
            for r in mine)
        parts.append(f"<table class='verdicts' data-dataset='{esc(dataset)}'>"
                     f"<caption>{esc(dataset)}</caption><tr><th class='k'>claim</th>"
                     f"<th class='k'>verdict</th><th class='k'>decided by</th></tr>{body}"
                     "</table>")
    return "".join(parts) or "<p>No dataset to judge.</p>"


def findings_section(rows: list[ClaimRow] | None, headline: list[FigureRecord]) -> str:
    """The top of the page: the verdict table, then the headline figures (``headline``)."""
    parts = ["<h2 id='findings'>Findings</h2>"]
    if rows is not None:
        parts.append("<p>The verdict on each claim of the paper and the one number that "
                     "decided it (differences in percentage points with 95 % intervals); the "
                     "full evidence is in <a href='#claims'>Claims</a>.</p>"
                     + verdict_table(rows))
    if headline:
        parts.append("<div class='headline'>" + "".join(figure_tag(r) for r in headline)
                     + "</div>")
    return "".join(parts)
