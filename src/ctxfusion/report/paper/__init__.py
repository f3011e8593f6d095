"""The paper's sections: threat model, conventions, figures (2-5, and T, S1, S2 beyond the
paper), results tables and paired differences (:mod:`.html`). Importing the package registers
its figures (:mod:`.figures`, :mod:`.weights`, :mod:`.alpha`, :mod:`.tradeoff`, :mod:`.extra`).
"""

from ctxfusion.report.paper import alpha, extra, figures, tradeoff, weights  # noqa: F401
