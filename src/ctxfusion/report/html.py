"""The self-contained ``report.html`` of a run directory.

One file a reader can open offline or mail: figures inlined as base64 PNG, CSS inline, every
value from the run escaped with :func:`html.escape` (class names and notes are user data).
Table cells show the accuracy (mean over seeds) and its 95 % interval (mean of the per-seed
Wilson bounds). :func:`build_report` also judges the paper's claims and writes claims.csv and
claims.md beside the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ctxfusion.io import atomic_write_text
from ctxfusion.report.claims import ClaimRow, evaluate_run, write_claims
from ctxfusion.report.figures import FigureSet, render_figures
from ctxfusion.report.figures_fusion import FUSION
from ctxfusion.report.html_fusion import fusion_nav, fusion_section
from ctxfusion.report.html_robustness import (
    ROBUSTNESS_FIGURES,
    robustness_nav,
    robustness_sections,
)
from ctxfusion.report.html_sections import (
    claims_section,
    conventions_section,
    differences_section,
    esc,
    figure_tag,
    incomplete_banner,
    known,
)
from ctxfusion.report.rundir import RunData, load_run
from ctxfusion.report.select import paper_view
from ctxfusion.report.style import classifier_sort_key
from ctxfusion.report.tables import format_accuracy, format_level, results_table
from ctxfusion.schema import ThreatModel

__all__ = ["build_report", "format_accuracy", "format_level", "render_html", "results_table"]

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
"""
NAV = ("<nav>" + " | ".join(
    f"<a href='#{anchor}'>{text}</a>" for anchor, text in (
        ("summary", "summary"), ("claims", "claims"), ("threat-model", "threat model"),
        ("conventions", "conventions"), ("figures", "figures"),
        ("missing", "figures not produced"), ("results", "results tables"),
        ("differences", "differences"), ("notes", "notes"), ("config", "config"))) + "</nav>")
CAUTION = (
    "Robust accuracy measured with transfer FGSM alone (images crafted on the fg classifier and "
    "fed to bg and joint) is not a defence claim: a single-step attack through another model's "
    "gradients can overstate robustness (gradient masking, weak transfer). A robustness claim for "
    "the fused model needs white-box attacks through the joint model itself, iterative attacks "
    "(PGD with restarts) and a standard suite such as AutoAttack, reported beside clean accuracy."
)


def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


def _kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th class='k'>{esc(k)}</th><td class='k'>{esc(v)}</td></tr>"
                   for k, v in pairs)
    return f"<table>{rows}</table>" if rows else "<p>(none recorded)</p>"


def _summary(run: RunData) -> str:
    info = run.info
    duration = info.duration_s
    repeats = info.repeats if info.repeats is not None else len(run.seeds())
    parts = [_kv_table([
        ("experiment", info.experiment or ", ".join(sorted({r.experiment
                                                            for r in run.results}))),
        ("run directory", run.run_dir.resolve()), ("started", known(info.started)),
        ("finished", known(info.finished)),
        ("duration", f"{duration:.1f} s" if duration is not None else "?"),
        ("device", known(info.device)), ("seed", known(info.seed)),
        ("repeats (seeds)", f"{repeats} ({', '.join(map(str, info.seeds or run.seeds()))})"),
    ])]
    parts.append("<h3>Datasets</h3><table><tr><th class='k'>dataset</th><th>kind</th>"
                 "<th>boxes</th><th>context strength</th><th>n train</th><th>n test</th>"
                 "<th class='k'>classes per subset</th></tr>")
    for name in run.datasets():
        d = run.dataset_info(name)
        subsets: dict[str, list[str] | None] = dict(d.subsets)
        if not subsets:
            subsets = {s: None for s in dict.fromkeys(r.subset for r in run.results
                                                      if r.dataset == name)}
        listing = "<br>".join(
            f"<b>{esc(s)}</b> ({len(c)}): {esc(', '.join(map(str, c)))}" if isinstance(c, list)
            else f"<b>{esc(s)}</b>: classes not listed (run.json)" for s, c in subsets.items())
        parts.append(f"<tr><td class='k'>{esc(name)}</td><td>{esc(known(d.kind))}</td>"
                     f"<td>{esc(known(d.has_boxes))}</td>"
                     f"<td>{esc(_or_dash(d.context_strength))}</td>"
                     f"<td>{esc(known(d.n_train))}</td><td>{esc(known(d.n_test))}</td>"
                     f"<td class='k'>{listing}</td></tr>")
    parts.append("</table>")
    parts.append("<h3>Timings</h3>" + _kv_table(
        (k, f"{v:.1f} s") for k, v in info.timings.items()))
    parts.append("<h3>Versions</h3>" + _kv_table(info.versions.items()))
    parts.append("<h3>Streams</h3>" + _kv_table(
        (k, json.dumps(v, sort_keys=True)) for k, v in info.streams.items()))
    return "<h2 id='summary'>Run summary</h2>" + "".join(parts)


def _fmt_eps(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_fmt_eps(v) for v in value) + ")"
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def _scale(value: Any, factor: float) -> Any:
    if isinstance(value, list):
        return [_scale(v, factor) for v in value]
    return value * factor if isinstance(value, int | float) else "?"


def _listing(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value or "?")


def _attack_details(attack: dict[str, Any]) -> str:
    shown = ("name", "source", "evaluated_on", "setting")
    return "; ".join(f"{k}: {_fmt_eps(v)}" for k, v in attack.items() if k not in shown) or "-"


def _threat_model(run: RunData) -> str:
    tm = run.info.threat_model or ThreatModel()
    parts = ["<h2 id='threat-model'>Threat model</h2>"]
    if run.info.threat_model is None:
        parts.append("<p>run.json records no threat model; what follows is read from "
                     "results.csv.</p>")
    parts.append(_kv_table([("norm", tm.norm or "Linf (assumed)"),
                            ("eps defined in", tm.eps_space or "pixel (assumed)"),
                            ("pixel range", "[0, 1]; normalisation is inside each model")]))
    pixel, normalised = tm.epsilons_pixel or [], tm.epsilons_normalized or []
    if pixel:
        parts.append("<table><tr><th>eps (pixel space, [0,1])</th><th>eps / 255</th>"
                     "<th>normalised-input equivalent (per channel)</th></tr>")
        for k, eps in enumerate(pixel):
            norm = normalised[k] if k < len(normalised) else "?"
            scaled = _fmt_eps(_scale(eps, 255.0))
            parts.append(f"<tr><td>{esc(_fmt_eps(eps))}</td><td>{esc(scaled)}</td>"
                         f"<td>{esc(_fmt_eps(norm))}</td></tr>")
        parts.append("</table>")
    attacks = tm.attacks
    if attacks:
        parts.append("<h3>Attacks (run.json)</h3><table><tr><th class='k'>attack</th>"
                     "<th class='k'>crafted on</th><th class='k'>evaluated on</th>"
                     "<th class='k'>setting</th><th class='k'>details</th></tr>")
        for a in attacks:
            parts.append(f"<tr><td class='k'>{esc(a.get('name', '?'))}</td>"
                         f"<td class='k'>{esc(a.get('source', '?'))}</td>"
                         f"<td class='k'>{esc(_listing(a.get('evaluated_on')))}</td>"
                         f"<td class='k'>{esc(a.get('setting', '?'))}</td>"
                         f"<td class='k'>{esc(_attack_details(a))}</td></tr>")
        parts.append("</table>")
    crafted: dict[tuple[str, str], set[str]] = {}
    for r in run.results:
        if r.source:
            crafted.setdefault((r.perturbation, r.source), set()).add(r.classifier)
    if crafted:
        parts.append("<h3>Transfer vs white-box (results.csv)</h3><table><tr>"
                     "<th class='k'>attack</th><th class='k'>crafted on</th>"
                     "<th class='k'>white-box (attacked through its own gradients)</th>"
                     "<th class='k'>transfer (sees images crafted on another model)</th></tr>")
        for (attack, source), names in sorted(crafted.items()):
            ordered = sorted(names, key=classifier_sort_key)
            white = [n for n in ordered if n == source]
            transfer = [n for n in ordered if n != source]
            parts.append(f"<tr><td class='k'>{esc(attack)}</td><td class='k'>{esc(source)}</td>"
                         f"<td class='k'>{esc(', '.join(white) or '-')}</td>"
                         f"<td class='k'>{esc(', '.join(transfer) or '-')}</td></tr>")
        parts.append("</table>")
    parts.append(f"<p class='caution'><b>Caution.</b> {esc(CAUTION)}</p>")
    return "".join(parts)


def _figures(figures: FigureSet) -> str:
    parts = ["<h2 id='figures'>Figures</h2>"]
    for record in figures.produced:
        if record.figure in (*ROBUSTNESS_FIGURES, FUSION):
            continue  # shown in its robustness or robust fusion section
        parts.append(figure_tag(record))
    if not figures.produced:
        parts.append("<p>No figure could be drawn from this run's data.</p>")
    parts.append("<h3 id='missing'>Figures not produced</h3>")
    if figures.missing:
        parts.append("<ul class='missing'>" + "".join(
            f"<li data-figure='{esc(m.name)}'><b>{esc(m.name)}</b>: {esc(m.reason)}</li>"
            for m in figures.missing) + "</ul>")
    else:
        parts.append("<p>None: every figure was drawn.</p>")
    return "".join(parts)


def _tables(run: RunData) -> str:
    parts = ["<h2 id='results'>Results</h2><p>Test accuracy in percent (one decimal; the mean "
             "over seeds when there are several, per-seed values on hover) with its 95 % "
             "interval (Wilson; with several seeds the mean of the per-seed bounds); n = number "
             "of test images; threat: none (clean, blur), transfer (crafted on another "
             "classifier) or whitebox (crafted on the classifier itself); columns are the blur "
             "sigma in pixels or the attack eps in pixel space (L-inf); 0 is the clean image."
             "</p>"]
    with_experiment = len({r.experiment for r in run.results}) > 1
    for dataset in run.datasets():
        mine = [r for r in run.results if r.dataset == dataset]
        for perturbation in dict.fromkeys(r.perturbation for r in mine):
            rows = [r for r in mine if r.perturbation == perturbation]
            parts.append(f"<h3>{esc(dataset)}: {esc(perturbation)}</h3>")
            parts.append(results_table(rows, dataset, perturbation, with_experiment))
    if not run.results:
        parts.append("<p>results.csv has no rows.</p>")
    return "".join(parts)


def _notes(run: RunData) -> str:
    notes = list(run.info.notes)
    for name in run.datasets():
        notes += [f"{name}: {n}" for n in run.dataset_info(name).notes]
    notes += [f"report: {w}" for w in run.warnings]
    items = "".join(f"<li>{esc(n)}</li>" for n in notes) or "<li>(none)</li>"
    return f"<h2 id='notes'>Notes</h2><ul>{items}</ul>"


def render_html(run: RunData, figures: FigureSet, claims: list[ClaimRow] | None = None,
                status: str | None = None) -> str:
    """The report page as a string (``claims``: the run's claim verdicts, if judged;
    ``status``: the run's status instead of run.json's; not complete: a banner on top).
    The paper's sections read :func:`~ctxfusion.report.select.paper_view`; the robustness
    sections (:mod:`.html_robustness`) every row but the robust fusion methods', which the
    robust fusion section (:mod:`.html_fusion`) shows."""
    title = f"ctxfusion report: {run.info.experiment or run.run_dir.name}"
    config = (f"<pre>{esc(run.config_text)}</pre>" if run.config_text is not None
              else "<p>config.yaml not found in the run directory.</p>")
    paper = paper_view(run)  # the paper's kind of rows: the sections below keep their meaning
    nav = NAV[:-len("</nav>")] + robustness_nav(run) + fusion_nav(run) + "</nav>"
    body = (f"<h1>{esc(title)}</h1>" + incomplete_banner(run, status) + nav + _summary(run)
            + (claims_section(claims) if claims is not None else "") + _threat_model(paper)
            + conventions_section(paper) + _figures(figures) + _tables(paper)
            + robustness_sections(run, figures) + fusion_section(run, figures)
            + differences_section(paper) + _notes(run)
            + "<h2 id='config'>Resolved config (config.yaml)</h2>" + config)
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
