"""The robustness sections beyond the paper: transfer, white-box and adaptive, threat regions,
corruptions: their rows (:mod:`.select`), figures R (:mod:`.figures`, registered on import)
and HTML (:mod:`.html`)."""

from ctxfusion.report.robustness import figures  # noqa: F401  (registers the figures)
