"""The report's layout: its sections in page order (:data:`SECTIONS`), its figures, and
:func:`build_report`, which writes report.html, the figures and the claims of a run directory.

Adding a section: write a module (or package) beside the others, e.g. ``report/mysection.py``,
with a function that returns the section's HTML (``<h2 id='anchor'>`` first; empty when the run
has no rows for it) and, if it draws figures, functions registered with
:func:`~ctxfusion.report.figure_base.dataset_figure` (imported by the package or module the
section entry imports); then add one :class:`Section` to :data:`SECTIONS`, at its place in the
page. That entry is the only place to touch: it names the anchor and navigation text, what the
section reads of the run (:class:`Page`), when it is present (``present``: else it is linked
in the navigation always) and the figures it shows itself (left out of the figures list).
Shared helpers live below the sections (rundir, style, select, grouping, diffs, figure_base,
markup, tables) and import no section; sections import no other section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ctxfusion.report.figure_base as figure_base
import ctxfusion.report.metadata as metadata
import ctxfusion.report.sanity as sanity
from ctxfusion.io import atomic_write_text
from ctxfusion.report.claims import ClaimRow, evaluate_run, write_claims
from ctxfusion.report.claims.html import claims_section, findings_section
from ctxfusion.report.figure_base import FigureBuilder, FigureRecord, FigureSet
from ctxfusion.report.fusion import figures as fusion_figures
from ctxfusion.report.fusion import html as fusion
from ctxfusion.report.markup import esc
from ctxfusion.report.paper import html as paper
from ctxfusion.report.robustness import figures as robustness_figures
from ctxfusion.report.robustness import html as robustness
from ctxfusion.report.robustness import select as robustness_rows
from ctxfusion.report.rundir import RunData, load_run
from ctxfusion.report.select import paper_view, without_fusion

__all__ = ["REPORT_VERSION", "SECTIONS", "Page", "Section", "build_report", "make_figures",
           "render_figures", "render_html"]

#: The version of the report's layout. Bump it when the report's sections, tables or figure
#: files change (tests/golden/test_report_golden.py then asks for ``make golden``).
REPORT_VERSION = 2

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#f2f2f2}td.k,th.k{text-align:left}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#444}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:.85em}
.caution{background:#fff4e5;border-left:4px solid #e66101;padding:.6em 1em}
.incomplete{background:#fbeaea;border:2px solid #b2182b;padding:.6em 1em;margin:1em 0}
td small{color:#666}td.verdict{min-width:14em}
td[data-verdict='reproduced']{background:#eaf6ea}td[data-verdict='partly']{background:#fdf6e3}
td[data-verdict='not reproduced']{background:#fbeaea}
td.diag{outline:2px solid #333;outline-offset:-2px;font-weight:bold}
td.clean,th.clean{background:#f7f7f7}
.fail{color:#b00020}.pass{color:#1b7f3b}.notrun{color:#666}
table.verdicts caption{text-align:left;font-weight:bold;padding:.2em 0}
.headline{display:flex;flex-wrap:wrap;gap:1em}.headline figure{flex:1 1 300px;margin:.5em 0}
details summary{cursor:pointer}
"""


@dataclass(frozen=True)
class Page:
    """What a section may read: the run (``run``: every row; ``paper``: the paper's view,
    :func:`~ctxfusion.report.select.paper_view`; ``robust``: every row but the robust fusion
    methods', :func:`~ctxfusion.report.select.without_fusion`), its figures (those of the
    detailed sections: the headline figures are shown once, at the top), its claims (None: not
    judged), the figure ids other sections show themselves and the headline figures."""

    run: RunData
    paper: RunData
    robust: RunData
    figures: FigureSet
    claims: list[ClaimRow] | None
    shown_elsewhere: frozenset[str]
    headline: tuple[FigureRecord, ...] = ()


#: The headline figures, shown under the verdicts at the top of the page (the first dataset
#: that has each): blur and FGSM curves of fg, bg and joint (subset all), the fusion frontier.
HEADLINE = (("fig3a",), ("fig4a", "fig4c"), (fusion_figures.FUSION,))


def headline_figures(figures: FigureSet) -> tuple[FigureRecord, ...]:
    """The records of :data:`HEADLINE` (robust fusion: its subset ``all``) that were drawn."""
    found = []
    for ids in HEADLINE:
        candidates = [r for r in figures.produced if r.figure in ids
                      and (r.figure != fusion_figures.FUSION or r.path.stem.endswith("_all"))]
        found += candidates[:1]
    return tuple(found)


@dataclass(frozen=True)
class Section:
    """One section of report.html: ``links``: (anchor, navigation text), the section's own
    anchor first; ``render``: its HTML; ``present``: whether the run has it (None: every
    report has it); ``figures``: figure ids it shows itself."""

    links: tuple[tuple[str, str], ...]
    render: Callable[[Page], str]
    present: Callable[[Page], bool] | None = None
    figures: tuple[str, ...] = ()


#: The sections in page order. The navigation links those every report has, then those the
#: run has (``present``), each group in page order.
SECTIONS: tuple[Section, ...] = (
    Section((("findings", "findings"),), lambda p: findings_section(p.claims, list(p.headline))),
    Section((("claims", "claims"),),
            lambda p: claims_section(p.claims) if p.claims is not None else ""),
    Section((("threat-model", "threat model"),), lambda p: paper.threat_model_section(p.paper)),
    Section((("conventions", "conventions"),), lambda p: paper.conventions_section(p.paper)),
    Section((("figures", "figures"), ("missing", "figures not produced")),
            lambda p: paper.figures_section(p.figures, p.shown_elsewhere)),
    Section((("results", "results tables"),), lambda p: paper.results_section(p.paper)),
    Section((("transfer", "transfer"),),
            lambda p: robustness.transfer_section(p.robust, p.figures),
            lambda p: bool(robustness_rows.transfer_places(p.robust)),
            (robustness_figures.TRANSFER,)),
    Section((("whitebox-adaptive", "white-box and adaptive"),),
            lambda p: robustness.whitebox_section(p.robust),
            lambda p: bool(robustness_rows.whitebox_rows(p.robust))),
    Section((("threat-regions", "threat regions"),),
            lambda p: robustness.regions_section(p.robust),
            lambda p: bool(robustness_rows.region_rows(p.robust))),
    Section((("corruptions", "corruptions"),),
            lambda p: robustness.corruptions_section(p.robust, p.figures),
            lambda p: bool(robustness_rows.corruption_rows(p.robust)),
            (robustness_figures.CORRUPTIONS,)),
    Section((("sanity", "sanity checks"),), lambda p: sanity.sanity_section(p.run),
            lambda p: sanity.present(p.run)),
    Section((("robust-fusion", "robust fusion"),),
            lambda p: fusion.fusion_section(p.run, p.figures), lambda p: fusion.present(p.run),
            (fusion_figures.FUSION,)),
    Section((("differences", "differences"),), lambda p: paper.differences_section(p.paper)),
    Section((("notes", "notes"),), lambda p: metadata.notes_section(p.run)),
    Section((("summary", "run metadata"),), lambda p: metadata.summary_section(p.run)),
    Section((("config", "config"),), lambda p: metadata.config_section(p.run)),
)


def render_figures(run: RunData | str | Path) -> FigureSet:
    """Draw every figure the run's data supports into the run directory; list the others.
    The figures are those the sections register (:mod:`ctxfusion.report.figure_base`)."""
    if not isinstance(run, RunData):
        run = load_run(run)
    builder = FigureBuilder(run)
    for dataset in builder.datasets:
        for _, draw in sorted(figure_base.DATASET_FIGURES, key=lambda entry: entry[0]):
            draw(builder, dataset)
    for _, draw in sorted(figure_base.RUN_FIGURES, key=lambda entry: entry[0]):
        draw(builder)
    return builder.out


def make_figures(run_dir: str | Path) -> list[Path]:
    """Write the figures of ``run_dir`` as ``fig*.png`` beside its results; return their paths."""
    return [record.path for record in render_figures(run_dir).produced]


def _nav(page: Page) -> str:
    always = [link for s in SECTIONS if s.present is None for link in s.links]
    present = [link for s in SECTIONS if s.present is not None and s.present(page)
               for link in s.links]
    return "<nav>" + " | ".join(f"<a href='#{anchor}'>{text}</a>"
                                for anchor, text in always + present) + "</nav>"


def render_html(run: RunData, figures: FigureSet, claims: list[ClaimRow] | None = None,
                status: str | None = None) -> str:
    """The report page as a string (``claims``: the run's claim verdicts, if judged;
    ``status``: the run's status instead of run.json's; not complete: a banner on top):
    the title, the navigation, then every section of :data:`SECTIONS` in order: the findings
    (verdicts, headline figures) first, the run's metadata last."""
    title = f"ctxfusion report: {run.info.experiment or run.run_dir.name}"
    headline = headline_figures(figures)
    detail = FigureSet([r for r in figures.produced if r not in headline], figures.missing)
    page = Page(run, paper_view(run), without_fusion(run), detail, claims,
                frozenset(f for s in SECTIONS for f in s.figures), headline)
    body = (f"<h1>{esc(title)}</h1>" + metadata.incomplete_banner(run, status) + _nav(page)
            + "".join(s.render(page) for s in SECTIONS))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")


def build_report(run_dir: str | Path, status: str | None = None) -> Path:
    """Redraw the figures of ``run_dir``, judge its claims (claims.csv, claims.md) and write
    its ``report.html``; return the page's path. ``status``: the run's status when the
    caller knows better than run.json (``ctxfusion run`` building its report at the end)."""
    run = load_run(run_dir)
    figures = render_figures(run)
    claims = evaluate_run(run)
    write_claims(claims, run.run_dir)
    return atomic_write_text(run.paths.report_html, render_html(run, figures, claims, status))
