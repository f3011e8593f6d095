"""The paper's sections of report.html: threat model, conventions, figures (and those not
produced), results tables and paired differences.

They read the paper's view of the run (:func:`~ctxfusion.report.select.paper_view`); the
figures shown in their own sections are left out of the figures list. Table cells show the
accuracy (mean over seeds) and its 95 % interval (mean of the per-seed Wilson bounds). Every
value from the run is escaped (:func:`esc`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import yaml

from ctxfusion.report.diffs import format_p
from ctxfusion.report.figure_base import FigureSet
from ctxfusion.report.grouping import several_experiments
from ctxfusion.report.markup import esc, figure_tag, key_row, known, kv_table
from ctxfusion.report.rundir import RunData
from ctxfusion.report.select import PAPER_IMAGE_SIZE, alpha_pair, format_alpha
from ctxfusion.report.style import classifier_sort_key, parse_classifier
from ctxfusion.report.tables import results_table
from ctxfusion.schema import DifferenceRow, ThreatModel

CAUTION = (
    "Robust accuracy measured with transfer FGSM alone (images crafted on the fg classifier and "
    "fed to bg and joint) is not a defence claim: a single-step attack through another model's "
    "gradients can overstate robustness (gradient masking, weak transfer). A robustness claim for "
    "the fused model needs white-box attacks through the joint model itself, iterative attacks "
    "(PGD with restarts) and a standard suite such as AutoAttack, reported beside clean accuracy."
)


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


def threat_model_section(run: RunData) -> str:
    """The norm, eps (pixel and normalised), the attacks and which rows are transfer."""
    tm = run.info.threat_model or ThreatModel()
    parts = ["<h2 id='threat-model'>Threat model</h2>"]
    if run.info.threat_model is None:
        parts.append("<p>run.json records no threat model; what follows is read from "
                     "results.csv.</p>")
    parts.append(kv_table([("norm", tm.norm or "Linf (assumed)"),
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


def _config_value(run: RunData, key: str) -> Any:
    try:
        config = yaml.safe_load(run.config_text or "") or {}
    except yaml.YAMLError:
        return None
    return config.get(key) if isinstance(config, dict) else None


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
             key_row(["alpha_reduction", f"{reduction}" + ("" if recorded else
                                                         " (not in run.json: assumed)")]),
             key_row(["alpha conventions", "the paper's loss sums the cross-entropy over the N "
                   "training images: paper alpha (alpha_sum) = N x alpha_mean"]),
             key_row(["eps space", (tm.eps_space or "pixel (assumed)")
                   + "; results.csv levels are pixel-space eps in [0, 1]"]),
             key_row(["eps as configured", known(tm.epsilons_config)]),
             key_row(["normalisation std (threat model)", known(tm.normalization_std)]),
             key_row(["normalisation (config)", _config_value(run, "normalization") or "?"]),
             key_row(["repeats / seeds", f"{known(info.repeats)} / "
                   f"{info.seeds if info.seeds is not None else run.seeds()}"])]
    for dataset in run.datasets():
        size = run.image_size(dataset)
        scale = (f"sigmas in px at {size} px; paper's sigma (224 px) = sigma x "
                 f"{PAPER_IMAGE_SIZE / size:.3g}" if size else "image size not recorded")
        parts.append(key_row([f"blur sigma ({dataset})", scale]))
    parts.append("</table>")
    alpha_rows = _alpha_rows(run)
    if alpha_rows:
        parts.append("<h3>alpha in both conventions</h3><table>" + key_row(
            ["dataset", "subset", "classifier", f"alpha (run: {reduction})",
             "alpha_sum (paper)", "alpha_mean", "from"], header=True)
            + "".join(key_row(r) for r in alpha_rows) + "</table>")
    return "".join(parts)


def figures_section(figures: FigureSet, shown_elsewhere: Collection[str] = ()) -> str:
    """Every figure drawn but those of ``shown_elsewhere`` (figure ids shown in their own
    sections), then the figures not produced and why."""
    parts = ["<h2 id='figures'>Figures</h2>"]
    for record in figures.produced:
        if record.figure in shown_elsewhere:
            continue  # shown in its own section
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


def results_section(run: RunData) -> str:
    """One results table per dataset and perturbation."""
    parts = ["<h2 id='results'>Results</h2><p>Test accuracy in percent (one decimal; the mean "
             "over seeds when there are several, per-seed values on hover) with its 95 % "
             "interval (Wilson; with several seeds the mean of the per-seed bounds); n = number "
             "of test images; threat: none (clean, blur), transfer (crafted on another "
             "classifier) or whitebox (crafted on the classifier itself); columns are the blur "
             "sigma in pixels or the attack eps in pixel space (L-inf); 0 is the clean image."
             "</p>"]
    with_experiment = several_experiments(run)
    for dataset in run.datasets():
        mine = [r for r in run.results if r.dataset == dataset]
        for perturbation in dict.fromkeys(r.perturbation for r in mine):
            rows = [r for r in mine if r.perturbation == perturbation]
            parts.append(f"<h3>{esc(dataset)}: {esc(perturbation)}</h3>")
            parts.append(results_table(rows, dataset, perturbation, with_experiment))
    if not run.results:
        parts.append("<p>results.csv has no rows.</p>")
    return "".join(parts)


def _pct(value: float, signed: bool = False) -> str:
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def _difference_table(rows: list[DifferenceRow]) -> str:
    head = key_row(["subset", "perturbation", "threat (source)", "level", "seed", "a", "b",
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
