"""The robust fusion section beyond the paper: its table (:mod:`.select`), figure F
(:mod:`.figures`, registered on import), HTML (:mod:`.html`) and the markdown table of
``ctxfusion fusion-table`` (:mod:`.markdown`)."""

from ctxfusion.report.fusion import figures  # noqa: F401  (registers the figure)
