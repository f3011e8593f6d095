"""Typed CSV records: each column is a dataclass field that says how its cell is parsed.

A record class (a frozen dataclass whose fields are declared with :func:`text`, :func:`name`,
:func:`choice`, :func:`number`, :func:`integer` or :func:`optional_number`) defines its
columns once: :func:`columns` gives the CSV header, :func:`csv_text` writes records,
:func:`read_records` parses a file back with a :class:`~ctxfusion.errors.DataError` naming
the file, the line, the column and what was found.

Older files may lack a column: a field's ``legacy`` value (a constant, or a function of the
row's other parsed values) fills it, and such a column is not required in the header.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from ctxfusion.errors import DataError

R = TypeVar("R")
_CELL = "ctxfusion.schema.cell"
#: ``legacy`` of a column every file has
NO_LEGACY: Any = object()


@dataclass(frozen=True)
class Cell:
    """How one column is parsed: ``kind`` is text (may be empty), name (non-empty), choice,
    int or float; numbers lie in [low, high]; ``optional`` cells may be empty (None);
    ``legacy`` fills a cell that older files lack (constant or function of the parsed row)."""

    kind: str = "text"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False
    legacy: Any = NO_LEGACY

    @property
    def required(self) -> bool:
        """Whether the column must be in the file's header."""
        return not self.optional and self.legacy is NO_LEGACY


def _declare(cell: Cell, **kwargs: Any) -> Any:
    return field(metadata={_CELL: cell}, **kwargs)


def text(legacy: Any = NO_LEGACY) -> Any:
    """A free text column (may be empty)."""
    return _declare(Cell("text", legacy=legacy))


def name() -> Any:
    """A non-empty name (dataset, classifier, stream, ...): any value but the empty one."""
    return _declare(Cell("name"))


def choice(values: Iterable[str], legacy: Any = NO_LEGACY) -> Any:
    """One of ``values``."""
    return _declare(Cell("choice", choices=tuple(values), legacy=legacy))


def number(low: float | None = None, high: float | None = None, legacy: Any = NO_LEGACY) -> Any:
    """A finite number within [low, high]."""
    return _declare(Cell("float", low, high, legacy=legacy))


def integer(low: float | None = None, legacy: Any = NO_LEGACY) -> Any:
    """An integer >= low."""
    return _declare(Cell("int", low, legacy=legacy))


def optional_number(low: float | None = None, high: float | None = None) -> Any:
    """A number within [low, high], or empty / absent (None: not recorded by older runs)."""
    return _declare(Cell("float", low, high, optional=True), default=None)


def cell_of(column: Field) -> Cell:
    """The :class:`Cell` of a record field (plain fields are free text)."""
    return column.metadata.get(_CELL, Cell())


def columns(record_type: type) -> tuple[str, ...]:
    """The CSV header of a record type: its field names, in order."""
    return tuple(f.name for f in fields(record_type))


def format_cell(value: Any) -> Any:
    """A value as written: floats with 6 significant digits, None empty, the rest as is."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def to_csv_row(record: Any) -> list[Any]:
    """The cells of one record, in column order."""
    return [format_cell(getattr(record, f.name)) for f in fields(record)]


def record_dict(record: Any) -> dict[str, Any]:
    """A record as a JSON object (column order, values unformatted)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def csv_text(record_type: type, records: Iterable[Any]) -> str:
    """CSV text of ``records`` (all of ``record_type``) with its header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns(record_type))
    for record in records:
        if not isinstance(record, record_type):
            raise TypeError(f"expected {record_type.__name__}, got {type(record).__name__}")
        writer.writerow(to_csv_row(record))
    return buffer.getvalue()


def _number(cell: Cell, raw: str, where: str, column: str) -> float | int:
    """Parse a finite number of the cell's kind within its limits, or raise DataError."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (cell.kind == "int" and not value.is_integer()):
        kind = "integer" if cell.kind == "int" else "number"
        raise DataError(f"{where}: column {column!r} = {raw!r} is not a valid {kind}")
    result = int(value) if cell.kind == "int" else value
    if (cell.low is not None and result < cell.low) or (
            cell.high is not None and result > cell.high):
        low = "-inf" if cell.low is None else cell.low
        high = "inf" if cell.high is None else cell.high
        raise DataError(f"{where}: column {column!r} = {raw!r} is outside [{low}, {high}]")
    return result


def parse_cell(cell: Cell, raw: str, where: str, column: str) -> Any:
    """One stripped cell as its column's type (``where``: file and line for errors)."""
    if cell.kind == "text":
        return raw
    if cell.kind == "name":
        if not raw:
            raise DataError(f"{where}: column {column!r} is empty (expected a name)")
        return raw
    if cell.kind == "choice":
        if raw not in cell.choices:
            raise DataError(f"{where}: column {column!r} = {raw!r}; "
                            f"valid: {', '.join(cell.choices)}")
        return raw
    return _number(cell, raw, where, column)


def parse_record(record_type: type[R], row: Mapping[str, str | None], where: str,
                 defaults: Mapping[str, Any] | None = None) -> R:
    """A record from one CSV row (column -> text). Cells older files lack take
    ``defaults[column]`` when given, else the field's legacy value; a record with a
    ``problem()`` method is checked as a whole."""
    values: dict[str, Any] = {}
    absent: list[tuple[str, Cell]] = []
    for column in fields(record_type):
        cell, raw = cell_of(column), (row.get(column.name) or "").strip()
        if not raw and cell.legacy is not NO_LEGACY:
            absent.append((column.name, cell))
        elif not raw and cell.optional:
            values[column.name] = None
        else:
            values[column.name] = parse_cell(cell, raw, where, column.name)
    for column_name, cell in absent:
        if defaults and column_name in defaults:
            values[column_name] = defaults[column_name]
        else:
            values[column_name] = cell.legacy(values) if callable(cell.legacy) else cell.legacy
    record = record_type(**values)
    problem: Callable[[], str | None] | None = getattr(record, "problem", None)
    message = problem() if problem else None
    if message:
        raise DataError(f"{where}: {message}")
    return record


def _read_rows(path: Path, required: tuple[str, ...],
               expected: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Non-empty rows of a CSV file as (line number, dict); checks the required columns."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}; found {header}, "
                                f"expected {list(expected)}")
            return [(reader.line_num, row) for row in reader
                    if any((v or "").strip() for v in row.values() if isinstance(v, str))]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV: {exc}") from exc


def read_records(path: Path, record_type: type[R],
                 defaults: Mapping[str, Any] | None = None) -> list[R]:
    """Every row of the CSV file ``path`` as a ``record_type`` (see :func:`parse_record`)."""
    required = tuple(f.name for f in fields(record_type) if cell_of(f).required)
    return [parse_record(record_type, row, f"{path} line {line}", defaults)
            for line, row in _read_rows(path, required, columns(record_type))]
