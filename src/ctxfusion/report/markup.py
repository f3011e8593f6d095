"""HTML pieces every section uses: escaping, an inlined figure, a key/value table.

Every value from the run is escaped (:func:`esc`): class names and notes are user data."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctxfusion.report.figure_base import FigureRecord, FigureSet


def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def known(value: Any) -> Any:
    """``value``, or ``?`` when run.json does not record it (None)."""
    return "?" if value is None else value


def figure_tag(record: FigureRecord) -> str:
    """A figure inlined as base64 PNG with its caption; its id is the file's stem."""
    data = base64.b64encode(record.path.read_bytes()).decode("ascii")
    return (f"<figure id='{esc(record.path.stem)}'><img alt='{esc(record.path.name)}' "
            f"src='data:image/png;base64,{data}'><figcaption><b>{esc(record.path.name)}</b>: "
            f"{esc(record.caption)}</figcaption></figure>")


def figures_with_stem(figures: FigureSet, stem: str) -> str:
    """The figure tags of the produced figures whose file stem is ``stem`` (none: empty)."""
    return "".join(figure_tag(r) for r in figures.produced if r.path.stem == stem)


def kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of (key, value) rows; ``(none recorded)`` without rows."""
    rows = "".join(f"<tr><th class='k'>{esc(k)}</th><td class='k'>{esc(v)}</td></tr>"
                   for k, v in pairs)
    return f"<table>{rows}</table>" if rows else "<p>(none recorded)</p>"


def key_row(cells: list[Any], header: bool = False) -> str:
    """One table row of left-aligned cells (``header``: th cells)."""
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag} class='k'>{esc(c)}</{tag}>" for c in cells) + "</tr>"
