"""The "Sanity checks" section of report.html: checks of a run's robustness figures, from
results.csv and run.json, failing ones in red.

:func:`sanity_checks` returns one :class:`Check` per check and place (dataset/subset, attack,
region, ...), each ``pass``, ``fail`` or ``not run``:

- ``iterative``: an iterative attack (white-box or adaptive) is at least as strong as
  white-box FGSM at the same eps, classifier and region (fails when the iterative row's
  ci_low > FGSM's ci_high);
- ``unbounded``: accuracy under an attack with eps >= 0.5 (the whole pixel range) is <= 5 %;
- ``gradients``: run.json ``sanity``: the input gradient was finite and non-zero on at least
  90 % of the images, for every classifier;
- ``monotone``: accuracy does not rise with eps in any attack series (same classifier, source,
  threat, perturbation, region): fails when a larger eps has ci_low > a smaller eps's ci_high;
- ``diagonal``: white-box accuracy of a classifier is not significantly above any transfer
  onto it at the same eps (fails when whitebox ci_low > transfer ci_high);
- ``clean``: clean accuracy is shown beside every robust figure (by construction).

Accuracies are the means over seeds of the accuracy and of the interval bounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ctxfusion.report.grouping import Key, points
from ctxfusion.report.markup import esc
from ctxfusion.report.rundir import RunData
from ctxfusion.report.select import UNBOUNDED_EPS, Point
from ctxfusion.schema import ResultRow

ANCHOR, TITLE = "sanity", "Sanity checks"
PASS, FAIL, NOT_RUN = "pass", "fail", "not run"
STATUS_CLASS = {PASS: "pass", FAIL: "fail", NOT_RUN: "notrun"}
#: accuracy an unbounded attack must reach at most
UNBOUNDED_MAX_ACCURACY = 0.05
#: share of images whose input gradient must be non-zero
MIN_NONZERO_FRACTION = 0.9
#: examples of failures named in a check's result
SHOWN = 3

#: check -> (what it checks, what a failure means, what a pass means)
CHECKS: dict[str, tuple[str, str, str]] = {
    "iterative": (
        "iterative attack at least as strong as FGSM",
        "the attack is weaker than one FGSM step: gradient masking or a broken attack; robust "
        "figures above are not trustworthy",
        "the iterative attack finds at least what one FGSM step finds"),
    "unbounded": (
        f"accuracy near zero under an unbounded attack (eps >= {UNBOUNDED_EPS:g})",
        "an attack allowed to change every pixel freely must reach about 0 %: the attack or "
        "the model's gradient is broken (gradient masking); robust figures are not "
        "trustworthy",
        "the attack can drive the model to zero when it is not bounded"),
    "gradients": (
        "input gradients finite and non-zero",
        "non-finite or vanishing input gradients make gradient attacks fail silently: robust "
        "accuracy is overstated",
        "gradient attacks have a usable gradient to follow"),
    "monotone": (
        "accuracy falls (within noise) as eps grows",
        "a larger eps leaves significantly more images correct: the attack does not find the "
        "stronger perturbation (masking, randomness or a bug); the curves are not trustworthy",
        "every attack series is monotone within its intervals"),
    "diagonal": (
        "white-box at most transfer (diagonal of the transfer matrix at most its column)",
        "a classifier resists its own gradient better than images crafted on another model: a "
        "sign of gradient masking; its white-box figures overstate robustness",
        "attacking a classifier through its own gradient is at least as strong as transfer"),
    "clean": (
        "clean accuracy beside every robust figure",
        "a robust accuracy without its clean accuracy hides the trade-off",
        "every table of these sections has a clean column, row or severity 0"),
}


@dataclass(frozen=True)
class Check:
    """One sanity check at one place: its id (:data:`CHECKS`), where, the status (pass,
    fail, not run), the numbers behind it and what the status means."""

    check: str
    where: str
    status: str
    result: str

    @property
    def title(self) -> str:
        """What the check checks."""
        return CHECKS[self.check][0]

    @property
    def meaning(self) -> str:
        """What the status means (a failure: why the figures may not be trusted)."""
        if self.status == FAIL:
            return CHECKS[self.check][1]
        if self.status == PASS:
            return CHECKS[self.check][2]
        return "not checked: the run has no data for it"


def _pct(p: Point) -> str:
    return f"{100 * p.accuracy:.1f} [{100 * p.ci_low:.1f}, {100 * p.ci_high:.1f}]"


def _verdict(check: str, where: str, failures: list[str], total: int, what: str) -> Check:
    """Pass/fail of ``total`` comparisons of which ``failures`` failed (described)."""
    if total == 0:
        return Check(check, where, NOT_RUN, f"no {what}")
    if not failures:
        return Check(check, where, PASS, f"holds at all {total} {what}")
    shown = "; ".join(failures[:SHOWN]) + ("; ..." if len(failures) > SHOWN else "")
    return Check(check, where, FAIL, f"fails at {len(failures)} of {total} {what}: {shown}")


def _place(k: Key) -> str:
    dataset, subset, _, _, threat, perturbation, region, _ = k
    return f"{dataset}/{subset}: {perturbation} ({threat}, region {region})"


def iterative_checks(pts: dict[Key, Point]) -> list[Check]:
    """Each iterative attack (white-box or adaptive) against white-box FGSM at the same eps,
    classifier and region."""
    groups: dict[str, tuple[list[str], int]] = {}
    for k, p in pts.items():
        dataset, subset, clf, source, threat, pert, region, level = k
        if threat not in ("whitebox", "adaptive") or pert == "fgsm" or level <= 0:
            continue
        if level >= UNBOUNDED_EPS:
            continue
        failures, total = groups.get(_place(k), ([], 0))
        # an adaptive attack is compared with FGSM through the same classifier's own gradient
        fgsm = pts.get((dataset, subset, clf, source, "whitebox", "fgsm", region, level))
        if fgsm is not None:
            total += 1
            if p.ci_low > fgsm.ci_high:
                failures.append(f"{clf} eps {level:g}: {pert} {_pct(p)} vs FGSM {_pct(fgsm)}")
        groups[_place(k)] = (failures, total)
    return [_verdict("iterative", where, failures, total,
                     "(classifier, eps) pairs with an FGSM row at the same eps")
            for where, (failures, total) in groups.items()]


def unbounded_checks(pts: dict[Key, Point]) -> list[Check]:
    """Accuracy <= 5 % under every attack with eps >= 0.5."""
    out = []
    for k, p in pts.items():
        dataset, subset, clf, _, threat, pert, region, level = k
        if threat == "none" or level < UNBOUNDED_EPS:
            continue
        status = PASS if p.accuracy <= UNBOUNDED_MAX_ACCURACY else FAIL
        out.append(Check("unbounded", f"{dataset}/{subset}: {clf}, {pert} eps {level:g} "
                         f"({threat}, region {region})", status,
                         f"accuracy {_pct(p)} % (must be <= "
                         f"{100 * UNBOUNDED_MAX_ACCURACY:g} %)"))
    return out or [Check("unbounded", "every dataset", NOT_RUN,
                         f"no attack with eps >= {UNBOUNDED_EPS:g} in results.csv")]


def _gradient_problem(name: str, entry: Any) -> str | None:
    """Why one classifier's gradient entry fails, or None."""
    if not isinstance(entry, dict):
        return f"{name}: not recorded as an object"
    finite, fraction = entry.get("finite"), entry.get("nonzero_fraction")
    if finite is not True:
        return f"{name}: gradient not finite"
    if not isinstance(fraction, int | float) or fraction < MIN_NONZERO_FRACTION:
        return f"{name}: non-zero on {fraction!r} of the images (needs >= " \
               f"{MIN_NONZERO_FRACTION:g})"
    return None


def gradient_checks(sanity: Any) -> list[Check]:
    """run.json ``sanity``: {place: {classifier: {finite, nonzero_fraction}}}."""
    if not isinstance(sanity, dict) or not sanity:
        return [Check("gradients", "run.json", NOT_RUN, "run.json records no gradient sanity "
                      "check ('sanity')")]
    out = []
    for place, classifiers in sanity.items():
        if not isinstance(classifiers, dict) or not classifiers:
            out.append(Check("gradients", str(place), NOT_RUN, "no classifier recorded"))
            continue
        problems = [p for name, e in classifiers.items() if (p := _gradient_problem(name, e))]
        fractions = [e.get("nonzero_fraction") for e in classifiers.values()
                     if isinstance(e, dict) and isinstance(e.get("nonzero_fraction"),
                                                           int | float)]
        low = f" (lowest non-zero fraction {min(fractions):.2f})" if fractions else ""
        out.append(Check("gradients", str(place), FAIL if problems else PASS,
                         "; ".join(problems) if problems else
                         f"finite and non-zero for all {len(classifiers)} classifiers{low}"))
    return out


def monotone_checks(pts: dict[Key, Point]) -> list[Check]:
    """Per attack series: no larger eps significantly above a smaller one."""
    series: dict[tuple, list[tuple[float, Point]]] = {}
    for k, p in pts.items():
        if k[4] != "none":
            series.setdefault(k[:7], []).append((k[7], p))
    groups: dict[str, tuple[list[str], int]] = {}
    for k, found in series.items():
        found.sort(key=lambda lp: lp[0])
        where = _place((*k, 0.0))
        failures, total = groups.get(where, ([], 0))
        if len(found) > 1:
            total += 1
            bad = [(a, b) for i, (a, pa) in enumerate(found) for b, pb in found[i + 1:]
                   if pb.ci_low > pa.ci_high]
            if bad:
                a, b = bad[0]
                failures.append(f"{k[2]} (crafted on {k[3]}): eps {b:g} above eps {a:g}")
        groups[where] = (failures, total)
    return [_verdict("monotone", where, failures, total, "series with two or more eps")
            for where, (failures, total) in groups.items() if total]


def diagonal_checks(pts: dict[Key, Point]) -> list[Check]:
    """White-box accuracy of each classifier against every transfer onto it, same eps."""
    onto: dict[tuple, list[tuple[str, Point]]] = {}  # transfers onto a classifier
    for t, tp in pts.items():
        if t[4] == "transfer":
            onto.setdefault(t[:3] + t[5:], []).append((t[3], tp))
    groups: dict[str, tuple[list[str], int]] = {}
    for k, wb in pts.items():
        dataset, subset, clf, source, threat, pert, region, level = k
        if threat != "whitebox" or source != clf or level <= 0:
            continue
        where = f"{dataset}/{subset}: {pert} (region {region})"
        failures, total = groups.get(where, ([], 0))
        for crafted_on, tp in onto.get(k[:3] + k[5:], []):
            total += 1
            if wb.ci_low > tp.ci_high:
                failures.append(f"{clf} eps {level:g}: white-box {_pct(wb)} vs crafted on "
                                f"{crafted_on} {_pct(tp)}")
        groups[where] = (failures, total)
    return [_verdict("diagonal", where, failures, total, "(classifier, source, eps) cells")
            for where, (failures, total) in groups.items() if total]


def sanity_checks(run: RunData, rows: Iterable[ResultRow] | None = None) -> list[Check]:
    """Every sanity check of ``run`` (``rows``: instead of run.results)."""
    pts = points(list(run.results if rows is None else rows))
    return (iterative_checks(pts) + unbounded_checks(pts)
            + gradient_checks(run.info.extra.get("sanity")) + monotone_checks(pts)
            + diagonal_checks(pts)
            + [Check("clean", "every robustness section", PASS, "shown by construction: a clean "
                     "column beside each attack table, a clean row in each transfer matrix, "
                     "severity 0 in each corruption table")])


def summary(checks: list[Check]) -> str:
    """``k of n checks failed`` (and how many were not run)."""
    failed = sum(c.status == FAIL for c in checks)
    not_run = sum(c.status == NOT_RUN for c in checks)
    return (f"{failed} of {len(checks)} checks failed"
            + (f" ({not_run} not run)" if not_run else ""))


def present(run: RunData) -> bool:
    """Whether the run has attack rows or run.json ``sanity`` (the section is shown)."""
    return any(r.threat != "none" for r in run.results) or bool(run.info.extra.get("sanity"))


def sanity_section(run: RunData) -> str:
    """The section (``run``: every row), or empty when :func:`present` is false."""
    if not present(run):
        return ""
    checks = sanity_checks(run)
    failed = any(c.status == FAIL for c in checks)
    rows = "".join(
        f"<tr class='{STATUS_CLASS[c.status]}' data-check='{esc(c.check)}' "
        f"data-status='{esc(c.status)}'><td class='k'>{esc(c.title)}</td>"
        f"<td class='k'>{esc(c.where)}</td><td class='k'><b>{esc(c.status)}</b>: "
        f"{esc(c.result)}</td><td class='k'>{esc(c.meaning)}</td></tr>" for c in checks)
    return (f"<h2 id='{ANCHOR}'>{esc(TITLE)}</h2>"
            f"<p class='{'fail' if failed else 'pass'}' id='sanity-summary'><b>"
            f"{esc(summary(checks))}</b>.</p><table class='sanity'><tr><th class='k'>check</th>"
            "<th class='k'>where</th><th class='k'>result</th><th class='k'>what it means</th>"
            f"</tr>{rows}</table>")
