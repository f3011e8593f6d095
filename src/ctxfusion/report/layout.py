"""The report's layout: the version of its sections, tables and figure files."""

from __future__ import annotations

#: The version of the report's layout. Bump it when the report's sections, tables or figure
#: files change (tests/golden/test_report_golden.py then asks for ``make golden``).
REPORT_VERSION = 1
