"""Field-by-field type checks of input files, before any work is done on them.

Every problem is one :class:`DataError` naming the file, the record's key
(``images[12].file_name``), the value found (as JSON: ``null``, ``"12"``, ``true``) and what
would be valid::

    <file>: images[12].file_name = null: expected a string (the image's file name ...)

Python's JSON reader accepts ``NaN`` and ``Infinity`` and Python counts ``True`` as the integer
1; :func:`is_int` and :func:`is_real` refuse both, so a value is a number only when the file
meant a number.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any, NoReturn

from ctxfusion.errors import DataError

#: a check: (test of the value, what a valid value is)
Check = tuple[Callable[[Any], bool], str]
_MISSING = object()


def show(value: Any, limit: int = 60) -> str:
    """``value`` as the JSON text a user wrote (``null``, ``"12"``, ``NaN``), cut at ``limit``."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_int(value: Any) -> bool:
    """An integer, not a bool (JSON ``true`` is not an id or a size)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite int or float, not a bool (so not NaN, Infinity, ``true`` or ``"3"``)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_name(value: Any) -> bool:
    """A non-empty string."""
    return isinstance(value, str) and value != ""


def is_box(value: Any) -> bool:
    """``[x, y, w, h]``: four finite numbers."""
    return isinstance(value, list) and len(value) == 4 and all(is_real(v) for v in value)


def is_string_list(value: Any) -> bool:
    """A list of non-empty strings."""
    return isinstance(value, list) and all(is_name(v) for v in value)


INT: Check = (is_int, "an integer")
POSITIVE_INT: Check = (lambda v: is_int(v) and v > 0, "a positive integer")
NAME: Check = (is_name, "a non-empty string")
OPTIONAL_NAME: Check = (lambda v: v is None or isinstance(v, str), "a string or null")
OBJECT: Check = (lambda v: isinstance(v, dict), "an object")
LIST: Check = (lambda v: isinstance(v, list), "a list")
STRINGS: Check = (is_string_list, "a list of non-empty strings")
TEXTS: Check = (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
                "a list of strings")
BOOL: Check = (lambda v: isinstance(v, bool), "true or false")
OBJECTS: Check = (lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v),
                  "a list of objects")


class FileFields:
    """Reads the fields of one file's records; each failure is a :class:`DataError` naming the
    file, the key and the value."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path

    def fail(self, key: str, value: Any, expected: str) -> NoReturn:
        """Raise ``<file>: <key> = <value>: expected <expected>``."""
        raise DataError(f"{self.path}: {key} = {show(value)}: expected {expected}")

    def get(self, record: dict[str, Any], where: str, name: str, check: Check,
            detail: str = "", *, default: Any = _MISSING) -> Any:
        """``record[name]`` when it passes ``check``; a missing field is an error unless a
        ``default`` is given. ``detail`` says what the field is, e.g. ``(the image's width)``."""
        test, expected = check
        expected = f"{expected} {detail}".rstrip()
        key = f"{where}.{name}" if where else name
        if name not in record:
            if default is not _MISSING:
                return default
            raise DataError(f"{self.path}: {key} is missing: expected {expected}")
        value = record[name]
        if not test(value):
            self.fail(key, value, expected)
        return value

    def records(self, data: dict[str, Any], key: str, what: str) -> list[dict[str, Any]]:
        """The list under ``data[key]``, every item an object (``what`` names one item)."""
        items = data[key]
        if not isinstance(items, list):
            self.fail(key, items, f"a list of {what} objects")
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{key}[{index}]", item, f"an object (one {what})")
        return items

    def unique(self, records: list[dict[str, Any]], key: str, name: str) -> None:
        """Refuse two records of ``key`` with the same ``name`` value, naming both entries."""
        seen: dict[Any, int] = {}
        for index, record in enumerate(records):
            value = record[name]
            if value in seen:
                raise DataError(
                    f"{self.path}: {key}[{seen[value]}] and {key}[{index}] both have "
                    f"{name} {show(value)}: each {name} must be unique (ambiguous input; remove "
                    "or renumber one of them)")
            seen[value] = index
