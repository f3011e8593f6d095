"""The run's metadata in report.html: the incomplete-run banner (top of the page), the run
summary (datasets and their class lists, timings, versions, streams), the notes and the
resolved config (the end of the page)."""

from __future__ import annotations

import json
from typing import Any

from ctxfusion.report.markup import esc, known, kv_table
from ctxfusion.report.rundir import RunData


def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


def summary_section(run: RunData) -> str:
    """Where, when and how the run ran; its datasets and their classes (each subset's list
    collapsed in a ``<details>``), timings, versions and streams: the end of the page."""
    info = run.info
    duration = info.duration_s
    repeats = info.repeats if info.repeats is not None else len(run.seeds())
    parts = [kv_table([
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
        listing = "".join(
            f"<details><summary><b>{esc(s)}</b> ({len(c)} classes)</summary>"
            f"{esc(', '.join(map(str, c)))}</details>" if isinstance(c, list)
            else f"<div><b>{esc(s)}</b>: classes not listed (run.json)</div>"
            for s, c in subsets.items())
        parts.append(f"<tr><td class='k'>{esc(name)}</td><td>{esc(known(d.kind))}</td>"
                     f"<td>{esc(known(d.has_boxes))}</td>"
                     f"<td>{esc(_or_dash(d.context_strength))}</td>"
                     f"<td>{esc(known(d.n_train))}</td><td>{esc(known(d.n_test))}</td>"
                     f"<td class='k'>{listing}</td></tr>")
    parts.append("</table>")
    parts.append("<h3>Timings</h3>" + kv_table(
        (k, f"{v:.1f} s") for k, v in info.timings.items()))
    parts.append("<h3>Versions</h3>" + kv_table(info.versions.items()))
    parts.append("<h3>Streams</h3>" + kv_table(
        (k, json.dumps(v, sort_keys=True)) for k, v in info.streams.items()))
    return "<h2 id='summary'>Run metadata</h2>" + "".join(parts)


def notes_section(run: RunData) -> str:
    """The notes of run.json, of each dataset and of the report's reader."""
    notes = list(run.info.notes)
    for name in run.datasets():
        notes += [f"{name}: {n}" for n in run.dataset_info(name).notes]
    notes += [f"report: {w}" for w in run.warnings]
    items = "".join(f"<li>{esc(n)}</li>" for n in notes) or "<li>(none)</li>"
    return f"<h2 id='notes'>Notes</h2><ul>{items}</ul>"


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
            f"<b>This run is incomplete: a partial report.</b> {esc(message)}{listing}</div>")


def config_section(run: RunData) -> str:
    """config.yaml as the run resolved it."""
    config = (f"<pre>{esc(run.config_text)}</pre>" if run.config_text is not None
              else "<p>config.yaml not found in the run directory.</p>")
    return "<h2 id='config'>Resolved config (config.yaml)</h2>" + config
