"""Sections of report.html beyond the results tables: conventions, paired differences, claims.

Every value from the run is escaped (:func:`esc`)."""

from __future__ import annotations

import base64
import html
from typing import Any

import yaml

from ctxfusion.report.claims import CLAIMS
from ctxfusion.report.diffs import format_p
from ctxfusion.report.figure_base import FigureRecord
from ctxfusion.report.rundir import RunData
from ctxfusion.report.select import PAPER_IMAGE_SIZE, alpha_pair, format_alpha
from ctxfusion.report.style import classifier_sort_key, parse_classifier
from ctxfusion.schema import ClaimRow, DifferenceRow, ThreatModel


def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def figure_tag(record: FigureRecord) -> str:
    """A figure inlined as base64 PNG with its caption; its id is the file's stem."""
    data = base64.b64encode(record.path.read_bytes()).decode("ascii")
    return (f"<figure id='{esc(record.path.stem)}'><img alt='{esc(record.path.name)}' "
            f"src='data:image/png;base64,{data}'><figcaption><b>{esc(record.path.name)}</b>: "
            f"{esc(record.caption)}</figcaption></figure>")


def _row(cells: list[Any], header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag} class='k'>{esc(c)}</{tag}>" for c in cells) + "</tr>"


def _config_value(run: RunData, key: str) -> Any:
    try:
        config = yaml.safe_load(run.config_text or "") or {}
    except yaml.YAMLError:
        return None
    return config.get(key) if isinstance(config, dict) else None


def known(value: Any) -> Any:
    """``value``, or ``?`` when run.json does not record it (None)."""
    return "?" if value is None else value


def _num(value: float | None) -> str:
    return "?" if value is None else format_alpha(value)


def _alpha_rows(run: RunData) -> list[list[Any]]:
    rows = []
    for dataset in run.datasets():
        pairs = {(r.subset, r.classifier) for r in run.results if r.dataset == dataset
                 and parse_classifier(r.classifier).alpha is not None}
        for subset, name in sorted(pairs, key=lambda p: (p[0], classifier_sort_key(p[1]))):
            pair = alpha_pair(run, dataset, subset, name)
            if pair is None:
                continue
            rows.append([dataset, subset, name, f"{pair.alpha:g}", _num(pair.alpha_sum),
                         _num(pair.alpha_mean), "weights.csv" if pair.exact else
                         "estimated from run.json n_train"])
    return rows


def conventions_section(run: RunData) -> str:
    """alpha in both conventions, eps space, normalisation, blur sigma scale, seeds."""
    info, tm = run.info, run.info.threat_model or ThreatModel()
    recorded = run.alpha_reduction_recorded
    reduction = run.alpha_reduction
    parts = ["<h2 id='conventions'>Conventions</h2>", "<table>",
             _row(["alpha_reduction", f"{reduction}" + ("" if recorded else
                                                         " (not in run.json: assumed)")]),
             _row(["alpha conventions", "the paper's loss sums the cross-entropy over the N "
                   "training images: paper alpha (alpha_sum) = N x alpha_mean"]),
             _row(["eps space", (tm.eps_space or "pixel (assumed)")
                   + "; results.csv levels are pixel-space eps in [0, 1]"]),
             _row(["eps as configured", known(tm.epsilons_config)]),
             _row(["normalisation std (threat model)", known(tm.normalization_std)]),
             _row(["normalisation (config)", _config_value(run, "normalization") or "?"]),
             _row(["repeats / seeds", f"{known(info.repeats)} / "
                   f"{info.seeds if info.seeds is not None else run.seeds()}"])]
    for dataset in run.datasets():
        size = run.image_size(dataset)
        scale = (f"sigmas in px at {size} px; paper's sigma (224 px) = sigma x "
                 f"{PAPER_IMAGE_SIZE / size:.3g}" if size else "image size not recorded")
        parts.append(_row([f"blur sigma ({dataset})", scale]))
    parts.append("</table>")
    alpha_rows = _alpha_rows(run)
    if alpha_rows:
        parts.append("<h3>alpha in both conventions</h3><table>" + _row(
            ["dataset", "subset", "classifier", f"alpha (run: {reduction})",
             "alpha_sum (paper)", "alpha_mean", "from"], header=True)
            + "".join(_row(r) for r in alpha_rows) + "</table>")
    return "".join(parts)


def _pct(value: float, signed: bool = False) -> str:
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def _difference_table(rows: list[DifferenceRow]) -> str:
    head = _row(["subset", "perturbation", "threat (source)", "level", "seed", "a", "b",
                 "acc a", "acc b", "a - b (pts)", "95 % interval", "McNemar p", "significant"],
                header=True)
    body = []
    for r in rows:
        significant = "yes" if r.ci_low > 0 or r.ci_high < 0 else "no"
        body.append(
            f"<tr data-a='{esc(r.classifier_a)}' data-b='{esc(r.classifier_b)}' "
            f"data-subset='{esc(r.subset)}' data-threat='{esc(r.threat)}'>"
            f"<td class='k'>{esc(r.subset)}</td><td class='k'>{esc(r.perturbation)}</td>"
            f"<td class='k'>{esc(r.threat)}{f' ({esc(r.source)})' if r.source else ''}</td>"
            f"<td>{r.level:g}</td><td>{r.seed}</td><td class='k'>{esc(r.classifier_a)}</td>"
            f"<td class='k'>{esc(r.classifier_b)}</td><td>{_pct(r.acc_a)}</td>"
            f"<td>{_pct(r.acc_b)}</td><td>{_pct(r.diff, True)}</td>"
            f"<td>[{_pct(r.ci_low, True)}, {_pct(r.ci_high, True)}]</td>"
            f"<td>{esc(format_p(r.mcnemar_p))}</td><td>{significant}</td></tr>")
    return f"<table class='differences'>{head}{''.join(body)}</table>"


def differences_section(run: RunData) -> str:
    """Per dataset: joint vs fg, and every joint-alpha vs fg-advtrain (differences.csv)."""
    parts = ["<h2 id='differences'>Differences</h2>"]
    if run.differences is None:
        return "".join(parts) + ("<p>differences.csv not found (older run): the claims use "
                                 "unpaired intervals from results.csv.</p>")
    parts.append("<p>Paired comparisons on the same test images: a - b in percentage points, "
                 "its 95 % interval (Newcombe, paired) and the exact McNemar p; significant "
                 "when the interval excludes 0.</p>")
    for dataset in run.datasets():
        mine = [r for r in run.differences if r.dataset == dataset]
        joint = [r for r in mine if (r.classifier_a, r.classifier_b) == ("joint", "fg")]
        alpha = [r for r in mine if r.classifier_b == "fg-advtrain"
                 and parse_classifier(r.classifier_a).alpha is not None]
        for title, rows in (("joint vs fg", joint), ("joint-alpha vs fg-advtrain", alpha)):
            if rows:
                parts.append(f"<details open><summary><b>{esc(dataset)}: {title}</b> "
                             f"({len(rows)} comparisons)</summary>{_difference_table(rows)}"
                             "</details>")
    return "".join(parts)


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


def incomplete_banner(run: RunData, status: str | None = None) -> str:
    """A banner for the top of the page when the run is not complete (``status``: instead
    of run.json's), naming the datasets that did not finish; empty for a complete run."""
    message = run.incomplete(status)
    if message is None:
        return ""
    missing = run.missing_datasets()
    items = "".join(f"<li>{esc(name)}</li>" for name in missing)
    listing = (f"<p>Datasets of config.yaml missing from this report:</p><ul>{items}</ul>"
               if missing else "")
    return (f"<div class='incomplete' role='alert' data-status='{esc(status or run.status)}'>"
            f"<b>This run is incomplete.</b> {esc(message)}{listing}</div>")

