"""Golden test of the report: a real committed run directory (``docs/examples/``) rebuilt into
report.html; its section order, every table's cells, its figures and captions and the figure
files written (names, PNG pixel sizes) must stay as stored (``ctxfusion.report.layout``)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from tests.golden.golden import check

from ctxfusion.report import build_report
from ctxfusion.report.layout import REPORT_VERSION

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
#: offline-cifar10: figures 4c, 4d; offline-tinyimagenet: every section (robustness, fusion)
CASES = ("offline-cifar10", "offline-tinyimagenet")
FIRST_ROWS = 3
IMAGE = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def _sha(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Page(HTMLParser):
    """Headings, tables (cell texts per row) and figures (id, caption) of a report page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headings: list[list[str]] = []
        self.tables: list[dict[str, Any]] = []
        self.figures: list[list[str]] = []
        self._section = ""
        self._heading: list[str] | None = None
        self._open: list[dict[str, Any]] = []  # tables being read (nested ones too)
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self._figure = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag in ("h1", "h2", "h3", "h4"):
            self._heading = [tag, attr.get("id") or "", ""]
            if tag == "h2":
                self._section = attr.get("id") or ""
        elif tag == "table":
            last = next((h[2] for h in reversed(self.headings)), "")
            self._open.append({"section": self._section, "after": last, "rows": []})
        elif tag == "tr" and self._open:
            self._open[-1]["rows"].append([])
        elif tag in ("td", "th") and self._open:
            self._cell = []
        elif tag == "figure":
            self._figure = attr.get("id") or ""
        elif tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3", "h4") and self._heading is not None:
            self._heading[2] = self._heading[2].strip()
            self.headings.append(self._heading)
            self._heading = None
        elif tag == "table" and self._open:
            self.tables.append(self._open.pop())
        elif tag in ("td", "th") and self._open and self._cell is not None:
            if self._open[-1]["rows"]:
                self._open[-1]["rows"][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "figcaption" and self._caption is not None:
            self.figures.append([self._figure, " ".join("".join(self._caption).split())])
            self._caption = None

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading[2] += data
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)


def _png_size(path: Path) -> list[int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return list(struct.unpack(">II", head[16:24]))


def report_summary(run_dir: Path) -> dict[str, Any]:
    """What the golden reference keeps of a report built from ``run_dir``."""
    for png in run_dir.glob("*.png"):
        png.unlink()  # the committed figures: the build must write them again
    before = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")}
    page_path = build_report(run_dir)
    assert page_path == run_dir / "report.html"
    written = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                     if p.relative_to(run_dir).as_posix() not in before)
    markup = IMAGE.sub("IMG", page_path.read_text(encoding="utf-8"))
    markup = markup.replace(str(run_dir.resolve()), "RUN_DIR")
    page = _Page()
    page.feed(markup)
    page.close()
    tables = [{"section": t["section"], "after": t["after"], "n_rows": len(t["rows"]),
               "sha256": _sha(t["rows"]), "first_rows": t["rows"][:FIRST_ROWS]}
              for t in page.tables]
    # each h2 section's markup (images out), so that any change names its section
    chunks = markup.split("<h2 ")
    sections = [[(re.match(r"id='([^']*)'", c) or re.match("", c)).group(1) if i else "top",
                 _sha(c)] for i, c in enumerate(chunks)]
    return {
        "headings": page.headings,
        "tables": tables,
        "figures_shown": [[fid, _sha(caption)] for fid, caption in page.figures],
        "files_written": written,
        "png_sizes": {name: _png_size(run_dir / name) for name in written
                      if name.endswith(".png")},
        "sections_sha256": sections,
        "claims_sha256": {name: _sha((run_dir / name).read_text(encoding="utf-8"))
                          for name in ("claims.csv", "claims.md")},
    }


@pytest.mark.parametrize("example", CASES)
def test_report_golden(example: str, tmp_path: Path) -> None:
    run_dir = tmp_path / example  # same name: claims.md names the run directory
    shutil.copytree(EXAMPLES / example, run_dir)
    check(f"report_{example}", "ctxfusion.report.layout.REPORT_VERSION", REPORT_VERSION,
          report_summary(run_dir))
