"""The claim rules of :mod:`ctxfusion.report.claims` (whose docstring states them): a
:class:`Judge` per dataset and seed, one function per claim."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ctxfusion.report.diffs import Diff, find_diff
from ctxfusion.report.rundir import RunData, WeightRow
from ctxfusion.report.select import (
    AlphaPair,
    Point,
    alpha_pair,
    levels,
    nearest,
    point,
    reference_eps,
    sigma_at_224,
)
from ctxfusion.report.style import parse_classifier
from ctxfusion.versioning import computation

#: the version of the claims generator (every rule below and how verdicts combine over seeds)
JUDGING = computation("claims", 2, "the claims' rules and verdicts (report/claims/)")

REPRODUCED, PARTLY, NOT, NA = "reproduced", "partly", "not reproduced", "not applicable"
CLOSE = 0.05
VISIBLE_SIGMA_224 = 1.0
PAPER_ALPHA = 10.0
CLAIMS: dict[str, str] = {
    "C1": "Blur: joint > fg at every sigma (each subset)",
    "C2": "Blur at the paper's sigma 10: joint - fg about +10 points (Dissimilar), +5 (Similar)",
    "C3": "FGSM crafted on fg (All): fg falls to near chance, bg degrades slowly, joint between",
    "C4": "At eps 0 joint = fg (no clean-accuracy cost)",
    "C5": "fg and bg halves of the joint head contribute about equally (COCO)",
    "C6": "CIFAR-10: bg far weaker than fg at eps 0 (about 60 vs 85 %)",
    "C7": "CIFAR-10: joint head dominated by fg; marginal fusion gain",
    "C8": "alpha = 10 (paper's convention) brings joint close to bg under attack (from fg)",
    "C9": "... while keeping high clean accuracy (close to fg)",
    "C10": "alpha = 10 beats FGSM adversarial retraining at every eps (transfer from fg)",
    "C10wb": "alpha = 10 beats FGSM adversarial retraining at every eps (white-box FGSM)",
}


@dataclass(frozen=True)
class Verdict:
    """A verdict, the evidence that decides it and, in ``decisive``, the one number that
    decided it (a difference with its interval, an accuracy, a share: for the verdict table)."""

    verdict: str
    evidence: str
    decisive: str = ""


#: verdicts from the weakest to the strongest: the weakest part of a claim decides it
_RANK = {NOT: 0, PARTLY: 1, REPRODUCED: 2, NA: 3}


def weakest_part(found: list[tuple[str, Verdict]]) -> tuple[str, Verdict]:
    """The (label, verdict) whose verdict is weakest (first on ties): it decided the claim."""
    return min(found, key=lambda item: _RANK.get(item[1].verdict, 3))


def short(d: Diff, where: str = "") -> str:
    """E.g. ``joint - fg +6.3 [+2.1, +10.4] pts at eps 0.02``: a difference for the table."""
    place = "" if not where else " clean" if where == "clean" else f" at {where}"
    return (f"{d.a} - {d.b} {100 * d.diff:+.1f} [{100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}]"
            f" pts{place}" + ("" if d.paired else " (unpaired)"))


def combine(verdicts: list[str]) -> str:
    """All reproduced: reproduced; all not: not reproduced; mixed: partly (n/a ignored)."""
    found = [v for v in verdicts if v != NA]
    if not found:
        return NA
    if all(v == REPRODUCED for v in found):
        return REPRODUCED
    return NOT if all(v == NOT for v in found) else PARTLY


def pct(value: float) -> str:
    """An accuracy as a percentage, one decimal."""
    return f"{100 * value:.1f}"


def _close(d: Diff) -> str:
    if d.ci_low >= -CLOSE:
        return REPRODUCED
    return NOT if d.ci_high < -CLOSE else PARTLY


@dataclass
class Judge:
    """Evaluates the claims on one dataset of one run, for one seed at a time."""

    run: RunData
    dataset: str
    seed: int = 0

    # --- lookups ---------------------------------------------------------------------------
    def diff(self, subset: str, a: str, b: str, perturbation: str, level: float,
             setting: str) -> Diff | None:
        return find_diff(self.run, self.dataset, subset, a, b, perturbation, level, setting,
                         self.seed)

    def acc(self, subset: str, name: str, perturbation: str, level: float,
            setting: str) -> Point | None:
        return point(self.run, self.dataset, subset, name, perturbation, level, setting,
                     seed=self.seed)

    def clean_diff(self, subset: str, a: str, b: str) -> Diff | None:
        """a - b on clean images (else at FGSM eps 0: the same images)."""
        return (self.diff(subset, a, b, "none", 0.0, "none")
                or self.diff(subset, a, b, "fgsm", 0.0, "transfer")
                or self.diff(subset, a, b, "fgsm", 0.0, "whitebox"))

    def subsets(self, *wanted: str) -> list[str]:
        have = {r.subset for r in self.run.results if r.dataset == self.dataset}
        return [s for s in wanted if s in have]

    def weights(self, head: str = "joint") -> list[WeightRow]:
        rows = [w for w in self.run.weights or [] if (w.dataset, w.subset, w.classifier)
                == (self.dataset, "all", head)]
        mine = [w for w in rows if w.seed == self.seed]
        return mine or rows

    def alpha_head(self, subset: str) -> tuple[str, AlphaPair] | None:
        """The joint-alpha head closest to the paper's alpha = 10 (sum convention)."""
        found = {}
        for name in {r.classifier for r in self.run.results if (r.dataset, r.subset)
                     == (self.dataset, subset)}:
            parsed = parse_classifier(name)
            pair = alpha_pair(self.run, self.dataset, subset, name)
            if parsed.base == "joint" and parsed.view is None and pair is not None:
                found[pair.alpha_sum if pair.alpha_sum is not None else pair.alpha] = (name, pair)
        best = nearest(found, PAPER_ALPHA, log=True)
        if best is None or abs(math.log10(best / PAPER_ALPHA)) > 1:
            return None
        return found[best]

    def over_subsets(self, subsets: list[str], rule: Callable[[str], Verdict | None],
                     needs: str = "the rows this claim compares") -> Verdict:
        """Apply ``rule`` per subset; combine the verdicts, join the evidence."""
        found = [(s, v) for s in subsets if (v := rule(s)) is not None]
        if not found:
            return Verdict(NA, f"no {needs} in subset(s) {'/'.join(subsets) or '-'}")
        text = " | ".join(f"{s}: {v.evidence}" if len(found) > 1 else v.evidence
                          for s, v in found)
        subset, decided = weakest_part(found)
        decisive = f"{subset}: {decided.decisive}" if len(found) > 1 else decided.decisive
        return Verdict(combine([v.verdict for _, v in found]), text, decisive)

    def blur_sigmas(self, subset: str) -> list[float]:
        return levels(self.run, self.dataset, subset, "blur", "none")

    def sigma_text(self, sigma: float) -> str:
        at224 = sigma_at_224(self.run, self.dataset, sigma)
        return f"sigma {sigma:g} px" + ("" if math.isclose(at224, sigma) else
                                        f" (= {at224:.3g} at 224 px)")


# --- blur (boxed datasets) ----------------------------------------------------------------
def c1_blur_every_sigma(j: Judge) -> Verdict:
    """C1: joint - fg is a gain at every visible sigma, in each subset."""
    if not j.run.has_boxes(j.dataset):
        return Verdict(NA, "box-free dataset: no blur inside boxes")

    def rule(subset: str) -> Verdict | None:
        sigmas = [s for s in j.blur_sigmas(subset)
                  if sigma_at_224(j.run, j.dataset, s) >= VISIBLE_SIGMA_224]
        found = [(s, d) for s in sigmas
                 if (d := j.diff(subset, "joint", "fg", "blur", s, "none")) is not None]
        if not found:
            return None
        gains = sum(d.gain for _, d in found)
        losses = sum(d.loss for _, d in found)
        sigma, weakest = min(found, key=lambda sd: sd[1].ci_low)
        verdict = REPRODUCED if gains == len(found) else (NOT if not gains else PARTLY)
        return Verdict(verdict, f"gain at {gains}/{len(found)} sigmas"
                       + (f", loss at {losses}" if losses else "")
                       + f"; weakest {j.sigma_text(sigma)}: {weakest.text()}",
                       short(weakest, f"sigma {sigma:g} px"))

    return j.over_subsets(j.subsets("all", "dissimilar", "similar"), rule,
                          "blur rows for joint and fg")


def c2_blur_sigma10(j: Judge) -> Verdict:
    """C2: at the paper's sigma 10, about +10 (Dissimilar) and +5 (Similar) points."""
    if not j.run.has_boxes(j.dataset):
        return Verdict(NA, "box-free dataset: no blur inside boxes")
    size = j.run.image_size(j.dataset)
    note = "" if size else " (image size not recorded: sigmas taken as 224-px values)"

    def rule(subset: str) -> Verdict | None:
        target = {"dissimilar": 0.10, "similar": 0.05}[subset]
        sigma = nearest(j.blur_sigmas(subset), 10.0 * (size or 224) / 224)
        d = None if sigma is None else j.diff(subset, "joint", "fg", "blur", sigma, "none")
        if d is None:
            return None
        if not d.gain:
            verdict = NOT
        else:
            verdict = REPRODUCED if d.ci_low <= target <= d.ci_high else PARTLY
        return Verdict(verdict, f"{j.sigma_text(sigma)}: {d.text()} (paper +{100 * target:.0f})"
                       + note, short(d, f"sigma {sigma:g} px") + f" (paper +{100 * target:.0f})")

    return j.over_subsets(j.subsets("dissimilar", "similar"), rule,
                          "blur rows for joint and fg")


# --- FGSM ----------------------------------------------------------------------------------
def _c3_parts(j: Judge, eps: list[float], ref: float,
              ) -> tuple[list[bool], list[str], list[str]]:
    chance = j.run.chance(j.dataset, "all")
    fg_last = j.acc("all", "fg", "fgsm", eps[-1], "transfer")
    near = fg_last is not None and chance is not None and fg_last.accuracy <= 2 * chance
    bg_fg = [d for e in eps if (d := j.diff("all", "bg", "fg", "fgsm", e, "transfer"))]
    slow = bool(bg_fg) and len(bg_fg) == len(eps) and all(d.gain for d in bg_fg)
    jf = j.diff("all", "joint", "fg", "fgsm", ref, "transfer")
    jb = j.diff("all", "joint", "bg", "fgsm", ref, "transfer")
    between = bool(jf and jb and jf.gain and jb.loss)
    accs = {n: j.acc("all", n, "fgsm", ref, "transfer") for n in ("fg", "joint", "bg")}
    notes = [f"eps {ref:g}: " + ", ".join(f"{n} {pct(p.accuracy)}" for n, p in accs.items()
                                          if p is not None) + " %",
             (f"fg at eps {eps[-1]:g}: {pct(fg_last.accuracy)} % (chance "
              f"{'?' if chance is None else pct(chance)})") if fg_last else "fg: no rows",
             f"bg - fg gain at {sum(d.gain for d in bg_fg)}/{len(eps)} eps",
             f"{jf.text()}; {jb.text()}" if jf and jb else "joint: no rows"]
    numbers = [f"fg {pct(fg_last.accuracy)} % at eps {eps[-1]:g} (chance "
               f"{'?' if chance is None else pct(chance)} %)" if fg_last else "fg: no rows",
               f"bg - fg gain at {sum(d.gain for d in bg_fg)}/{len(eps)} eps",
               (short(jb if jf.gain and not jb.loss else jf, f"eps {ref:g}") if jf and jb
                else "joint: no rows")]
    return [near, slow, between], notes, numbers


def c3_fgsm_order(j: Judge) -> Verdict:
    """C3: fg near chance, bg slow, joint in between (crafted on fg, subset all)."""
    eps = [e for e in levels(j.run, j.dataset, "all", "fgsm") if e > 0]
    ref = reference_eps(j.run, j.dataset, "all")
    if not eps or ref is None or j.acc("all", "fg", "fgsm", eps[-1], "transfer") is None:
        return Verdict(NA, "no FGSM rows crafted on fg for subset all")
    parts, notes, numbers = _c3_parts(j, eps, ref)
    names = ("fg near chance", "bg slow", "joint between")
    held = [n for n, ok in zip(names, parts, strict=True) if ok]
    verdict = REPRODUCED if all(parts) else (NOT if not any(parts) else PARTLY)
    # the first part that fails decides (all hold: "joint between", the claim's crux)
    decisive = next((n for n, ok in zip(numbers, parts, strict=True) if not ok), numbers[2])
    return Verdict(verdict, f"{len(held)}/3 parts hold ({', '.join(held) or 'none'}); "
                   + "; ".join(notes), decisive)


def c4_no_clean_cost(j: Judge) -> Verdict:
    """C4: clean joint - fg is not a loss."""
    subset = (j.subsets("all") or j.subsets("dissimilar", "similar") or [""])[0]
    d = j.clean_diff(subset, "joint", "fg")
    if d is None:
        return Verdict(NA, "no clean (or eps 0) rows for joint and fg")
    prefix = "" if subset == "all" else f"{subset}: "
    return Verdict(NOT if d.loss else REPRODUCED,
                   f"{prefix}joint {pct(d.acc_a)} vs fg {pct(d.acc_b)} %; {d.text()}",
                   prefix + short(d, "clean"))


# --- head contributions ---------------------------------------------------------------------
def _fg_share(j: Judge) -> tuple[float, str] | None:
    """The fg stream's share of the joint head (logit_share; else mean |w|), and a text."""
    rows = j.weights()
    by = {w.stream: w for w in rows}
    if "fg" not in by or "bg" not in by:
        return None
    fg, bg = by["fg"], by["bg"]
    mean_w = f"mean |w| fg {fg.mean_abs_weight:.3g} / bg {bg.mean_abs_weight:.3g}"
    total_w = fg.mean_abs_weight + bg.mean_abs_weight
    if fg.logit_share is not None and bg.logit_share is not None:
        total = fg.logit_share + bg.logit_share
        share = fg.logit_share / total if total > 0 else 0.5
        return share, (f"logit_share fg {fg.logit_share:.2f} / bg {bg.logit_share:.2f}; "
                       f"{mean_w}")
    share = fg.mean_abs_weight / total_w if total_w > 0 else 0.5
    return share, f"{mean_w} (logit_share not recorded: decided on mean |w|)"


def c5_equal_halves(j: Judge) -> Verdict:
    """C5: fg share of the joint head in [1/3, 2/3] (boxed datasets)."""
    if not j.run.has_boxes(j.dataset):
        return Verdict(NA, "box-free dataset (the paper's claim is for COCO)")
    found = _fg_share(j)
    if found is None:
        return Verdict(NA, "weights.csv has no joint head for subset all")
    share, text = found
    return Verdict(REPRODUCED if 1 / 3 <= share <= 2 / 3 else NOT,
                   f"fg share {share:.2f} (about equal: 0.33-0.67); {text}",
                   f"fg share of the joint head {share:.2f} (equal: 0.33-0.67)")


def c6_cifar_bg_weaker(j: Judge) -> Verdict:
    """C6: clean bg - fg entirely below -10 points (box-free datasets)."""
    if j.run.has_boxes(j.dataset):
        return Verdict(NA, "boxed dataset (the paper's claim is for CIFAR-10)")
    d = j.clean_diff("all", "bg", "fg")
    if d is None:
        return Verdict(NA, "no clean (or eps 0) rows for bg and fg")
    verdict = REPRODUCED if d.ci_high < -0.10 else (PARTLY if d.loss else NOT)
    return Verdict(verdict, f"bg {pct(d.acc_a)} vs fg {pct(d.acc_b)} % (paper 60 vs 85); "
                   f"{d.text()}", short(d, "clean"))


def c7_cifar_fg_dominates(j: Judge) -> Verdict:
    """C7: fg logit_share >= 2/3 and no fusion gain above 5 points (box-free datasets)."""
    if j.run.has_boxes(j.dataset):
        return Verdict(NA, "boxed dataset (the paper's claim is for CIFAR-10)")
    found = _fg_share(j)
    eps = levels(j.run, j.dataset, "all", "fgsm")
    gains = [d for e in eps if (d := j.diff("all", "joint", "fg", "fgsm", e, "transfer"))]
    if found is None and not gains:
        return Verdict(NA, "no joint head weights and no FGSM rows for subset all")
    parts, notes, numbers = [], [], []
    if found is not None:
        parts.append(found[0] >= 2 / 3)
        notes.append(f"fg share {found[0]:.2f} (dominant: >= 0.67); {found[1]}")
        numbers.append(f"fg share of the joint head {found[0]:.2f} (dominant: >= 0.67)")
    if gains:
        top = max(gains, key=lambda d: d.ci_low)
        parts.append(all(d.ci_low < CLOSE for d in gains))
        notes.append(f"largest joint - fg over {len(gains)} eps: {top.text()}")
        numbers.append(short(top, "the eps where it is largest"))
    verdict = REPRODUCED if all(parts) else (NOT if not any(parts) else PARTLY)
    decisive = next((n for n, ok in zip(numbers, parts, strict=True) if not ok), numbers[0])
    return Verdict(verdict, "; ".join(notes), decisive)


# --- regularisation -------------------------------------------------------------------------
def _alpha_rule(j: Judge, body: Callable[[str, str], Verdict | None], needs: str) -> Verdict:
    """Apply ``body(subset, head)`` over All and Dissimilar with the alpha = 10 head."""
    def rule(subset: str) -> Verdict | None:
        found = j.alpha_head(subset)
        if found is None:
            return None
        name, pair = found
        result = body(subset, name)
        if result is None:
            return None
        which = (f"{name}: paper alpha {pair.alpha_sum:.3g}, mean-CE alpha {pair.alpha_mean:.2g}"
                 if pair.alpha_sum is not None and pair.alpha_mean is not None
                 else f"{name}: alpha convention unknown")
        return Verdict(result.verdict, f"{which}{'' if pair.exact else ' (estimated)'}; "
                       f"{result.evidence}", result.decisive)

    return j.over_subsets(j.subsets("all", "dissimilar"), rule,
                          f"joint-alpha head within 10x of alpha = 10 with {needs}")


def c8_alpha_close_to_bg(j: Judge) -> Verdict:
    """C8: joint-alpha10 - bg close to 0 at the reference eps (crafted on fg)."""
    def body(subset: str, name: str) -> Verdict | None:
        ref = reference_eps(j.run, j.dataset, subset)
        d = None if ref is None else j.diff(subset, name, "bg", "fgsm", ref, "transfer")
        return None if d is None else Verdict(_close(d), f"eps {ref:g}: {d.text()}",
                                              short(d, f"eps {ref:g}"))

    return _alpha_rule(j, body, "FGSM rows crafted on fg beside bg's")


def c9_alpha_clean(j: Judge) -> Verdict:
    """C9: clean joint-alpha10 - fg close to 0."""
    def body(subset: str, name: str) -> Verdict | None:
        d = j.clean_diff(subset, name, "fg")
        return None if d is None else Verdict(_close(d), f"clean: {d.text()}",
                                              short(d, "clean"))

    return _alpha_rule(j, body, "clean rows beside fg's")


def _c10(j: Judge, setting: str) -> Verdict:
    def body(subset: str, name: str) -> Verdict | None:
        eps = levels(j.run, j.dataset, subset, "fgsm", setting)
        found = [(e, d) for e in eps
                 if (d := j.diff(subset, name, "fg-advtrain", "fgsm", e, setting))]
        if not any(e > 0 for e, _ in found):
            return None
        misses = [f"{e:g}" for e, d in found if not d.gain]
        weakest_eps, weakest = min(found, key=lambda ed: ed[1].ci_low)
        verdict = (REPRODUCED if not misses else NOT if len(misses) == len(found) else PARTLY)
        return Verdict(verdict, f"gain at {len(found) - len(misses)}/{len(found)} eps"
                       + (f" (not at {', '.join(misses)})" if misses else "")
                       + f"; weakest eps {weakest_eps:g}: {weakest.text()}",
                       short(weakest, f"eps {weakest_eps:g}"))

    threat = "crafted on fg" if setting == "transfer" else "white-box"
    return _alpha_rule(j, body, f"{threat} FGSM rows (eps > 0) for it and fg-advtrain")


def c10_beats_advtrain(j: Judge) -> Verdict:
    """C10: joint-alpha10 beats fg-advtrain at every eps, images crafted on fg."""
    return _c10(j, "transfer")


def c10wb_beats_advtrain(j: Judge) -> Verdict:
    """C10wb: the same with each classifier attacked through its own gradient."""
    return _c10(j, "whitebox")


RULES: dict[str, Callable[[Judge], Verdict]] = {
    "C1": c1_blur_every_sigma, "C2": c2_blur_sigma10, "C3": c3_fgsm_order,
    "C4": c4_no_clean_cost, "C5": c5_equal_halves, "C6": c6_cifar_bg_weaker,
    "C7": c7_cifar_fg_dominates, "C8": c8_alpha_close_to_bg, "C9": c9_alpha_clean,
    "C10": c10_beats_advtrain, "C10wb": c10wb_beats_advtrain,
}
