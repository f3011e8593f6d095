"""The "Claims" section of report.html: the verdicts of :mod:`ctxfusion.report.claims`."""

from __future__ import annotations

from ctxfusion.report.claims.rules import CLAIMS
from ctxfusion.report.markup import esc
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
