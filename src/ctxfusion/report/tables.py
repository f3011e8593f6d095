"""The HTML tables of accuracies in report.html: one formatter for every cell.

A cell shows the accuracy (mean over seeds) and its 95 % interval (mean of the per-seed
Wilson bounds); with several seeds the spread (standard deviation across seeds) first and the
per-seed values on hover. :func:`results_table` lays rows out by classifier and columns by
level; :func:`grid_table` by any two keys (a transfer matrix, classifier x region).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence

from ctxfusion.report.grouping import SUBSET_ORDER, BySeed
from ctxfusion.report.markup import esc
from ctxfusion.report.select import aggregate, pick
from ctxfusion.report.style import classifier_sort_key
from ctxfusion.schema import ResultRow


def format_accuracy(accuracy: float) -> str:
    """Accuracy in [0,1] as a percentage with one decimal, as printed in the tables."""
    return f"{100.0 * accuracy:.1f}"


def format_level(level: float) -> str:
    """A sigma or eps value as printed in table headers."""
    return f"{level:g}"


def accuracy_cell(seeds: BySeed, attrs: str = "") -> str:
    """``<td>80.6 <small>[76.8, 84.0]</small></td>``: mean over seeds and mean interval
    bounds; with several seeds ``80.6 <small>&plusmn;0.4 [76.8, 84.0]</small>``, the spread
    (standard deviation across seeds) first. ``attrs``: more attributes of the cell."""
    p = aggregate(seeds)
    title = spread = ""
    if p.seeds > 1:
        title = " title='" + esc(", ".join(
            f"seed {s}: {format_accuracy(r.accuracy)}" for s, r in sorted(seeds.items()))) + "'"
        sd = statistics.stdev(r.accuracy for r in seeds.values())
        spread = f"&plusmn;{format_accuracy(sd)} "
    return (f"<td{attrs} data-n='{p.n}' data-seeds='{p.seeds}'{title}>"
            f"{format_accuracy(p.accuracy)} <small>{spread}[{format_accuracy(p.ci_low)}, "
            f"{format_accuracy(p.ci_high)}]</small></td>")


def _table_key(row: ResultRow, with_experiment: bool) -> tuple[str, ...]:
    return ((row.experiment,) if with_experiment else ()) + (
        row.subset, row.classifier, row.source, row.threat)


def _level_label(perturbation: str) -> str:
    return {"blur": "blur sigma (px)", "none": "level (0 = clean)"}.get(
        perturbation, "eps (pixel space, L-inf)")


def results_table(rows: list[ResultRow], dataset: str, perturbation: str,
                  with_experiment: bool = False, clean: list[ResultRow] | None = None,
                  table_class: str = "results", label: str | None = None) -> str:
    """One HTML table: rows = subset + classifier + source + threat, columns = levels,
    cells = accuracy % (mean over seeds) and its 95 % interval. ``clean``: clean rows whose
    accuracy is shown in a first column beside each row (same subset and classifier);
    ``label``: what the levels are (default: from the perturbation)."""
    levels = sorted({r.level for r in rows})
    cells: dict[tuple[str, ...], dict[float, BySeed]] = {}
    for r in rows:  # a repeated key keeps the row with the largest n (the last on ties)
        seeds = cells.setdefault(_table_key(r, with_experiment), {}).setdefault(r.level, {})
        seeds[r.seed] = pick(seeds.get(r.seed), r)
    clean_cells: dict[tuple[str, ...], BySeed] = {}
    for r in clean or []:
        key = ((r.experiment,) if with_experiment else ()) + (r.subset, r.classifier)
        seeds = clean_cells.setdefault(key, {})
        seeds[r.seed] = pick(seeds.get(r.seed), r)
    keys = sorted(cells, key=lambda k: (k[:-4], SUBSET_ORDER.get(k[-4], 3), k[-4],
                                        classifier_sort_key(k[-3]), k[-2], k[-1]))
    head = "".join(f"<th data-level='{format_level(lv)}'>{format_level(lv)}</th>"
                   for lv in levels)
    clean_head = "<th class='clean'>clean</th>" if clean is not None else ""
    exp_head = "<th class='k'>experiment</th>" if with_experiment else ""
    out = [f"<table class='{esc(table_class)}' data-dataset='{esc(dataset)}' "
           f"data-perturbation='{esc(perturbation)}'><caption>accuracy (%) [95 % interval] by "
           f"{esc(label or _level_label(perturbation))}</caption><tr>{exp_head}<th class='k'>"
           f"subset</th><th class='k'>classifier</th><th class='k'>crafted on</th>"
           f"<th class='k'>threat</th>{clean_head}{head}<th>n</th></tr>"]
    for key in keys:
        row_cells = cells[key]
        tds = "".join(accuracy_cell(row_cells[lv]) if lv in row_cells else "<td>-</td>"
                      for lv in levels)
        ns = sorted({r.n for seeds in row_cells.values() for r in seeds.values()})
        n_text = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
        exp_td = f"<td class='k'>{esc(key[0])}</td>" if with_experiment else ""
        subset, classifier, source, threat = key[-4:]
        clean_td = ""
        if clean is not None:
            found = clean_cells.get(key[:-4] + (subset, classifier))
            clean_td = accuracy_cell(found, " class='clean'") if found else "<td>-</td>"
        out.append(f"<tr data-subset='{esc(subset)}' data-classifier='{esc(classifier)}' "
                   f"data-source='{esc(source)}' data-threat='{esc(threat)}'>{exp_td}"
                   f"<td class='k'>{esc(subset)}</td><td class='k'>{esc(classifier)}</td>"
                   f"<td class='k'>{esc(source or '-')}</td><td class='k'>{esc(threat)}</td>"
                   f"{clean_td}{tds}<td>{esc(n_text)}</td></tr>")
    out.append("</table>")
    return "".join(out)


def grid_table(cells: Mapping[tuple[str, str], BySeed], row_keys: Sequence[str],
               col_keys: Sequence[str], corner: str, caption: str, table_class: str,
               extra_rows: Sequence[tuple[str, Mapping[str, BySeed]]] = (),
               extra_cols: Sequence[tuple[str, Mapping[str, BySeed]]] = (),
               mark: Callable[[str, str], bool] = lambda row, col: False) -> str:
    """A table of accuracy cells keyed (row key, column key). ``extra_rows`` (label, column
    key -> cell) come first under the header, ``extra_cols`` (label, row key -> cell) first
    after the row label (e.g. clean accuracy); cells where ``mark(row, col)`` get the class
    ``diag``. Every cell carries ``data-row`` and ``data-col``."""
    def cell(found: BySeed | None, row: str, col: str, css: str = "") -> str:
        attrs = (f" class='{css}'" if css else "") + (f" data-row='{esc(row)}' "
                                                      f"data-col='{esc(col)}'")
        return accuracy_cell(found, attrs) if found else f"<td{attrs}>-</td>"

    extra_heads = "".join(f"<th class='clean'>{esc(label)}</th>" for label, _ in extra_cols)
    out = [f"<table class='{esc(table_class)}'><caption>{esc(caption)}</caption><tr>"
           f"<th class='k'>{esc(corner)}</th>{extra_heads}"
           + "".join(f"<th>{esc(c)}</th>" for c in col_keys) + "</tr>"]
    for label, values in extra_rows:
        out.append(f"<tr class='clean'><th class='k'>{esc(label)}</th>"
                   + "<td></td>" * len(extra_cols)
                   + "".join(cell(values.get(c), label, c, "clean") for c in col_keys)
                   + "</tr>")
    for row in row_keys:
        extras = "".join(cell(values.get(row), row, label, "clean")
                         for label, values in extra_cols)
        tds = "".join(cell(cells.get((row, c)), row, c, "diag" if mark(row, c) else "")
                      for c in col_keys)
        out.append(f"<tr data-row='{esc(row)}'><th class='k'>{esc(row)}</th>{extras}{tds}"
                   "</tr>")
    out.append("</table>")
    return "".join(out)
