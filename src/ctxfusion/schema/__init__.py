"""The run directory: one definition of its files, rows and run.json, used by the writer
(:mod:`ctxfusion.experiments.recorder`), the reader (:mod:`ctxfusion.report.rundir`) and the
tests.

- :mod:`.paths`: file names (``RESULTS_CSV``, ...) and :class:`RunPaths`;
- :mod:`.rows`: one frozen dataclass per CSV row kind (:class:`ResultRow`,
  :class:`DifferenceRow`, :class:`WeightRow`, :class:`PcaRow`, :class:`ClaimRow`); their
  fields are the columns, in file order (``RESULT_COLUMNS = columns(ResultRow)``);
- :mod:`.cells`: the generic writer (:func:`csv_text`, :func:`to_csv_row`) and parser
  (:func:`read_records`, :func:`parse_record`) of such records;
- :mod:`.run_info`: run.json as typed sections (:class:`RunInfo`, :class:`DatasetInfo`, ...).

results.csv
    One accuracy per (dataset, subset, classifier, attack source, threat, perturbation,
    level, seed). ``threat`` is ``none`` for clean and blurred images (no attacker),
    ``transfer`` when the attack was crafted on another classifier (``source``) and
    ``whitebox`` when it was crafted through the evaluated classifier's own gradient.
    ``seed`` is the repeat's seed (head initialisation and training subsample).
    ``ci_low``/``ci_high``: the 95 % Wilson score interval of the accuracy (n test images).
differences.csv
    Paired comparisons of two classifiers on the same test images and perturbation:
    ``diff = acc_a - acc_b``, its 95 % interval (Newcombe's hybrid score interval for
    paired proportions), the discordant counts (``a_only``: a right and b wrong) and the
    exact McNemar p-value.
weights.csv
    Per joint head and stream (any stream name): the paper's mean |w| and two scale-aware
    contributions: ``scaled_weight`` = mean over the stream's columns of mean|w_j| * std(f_j)
    (std over the training features), ``logit_share`` = the stream's share of the variance of
    the logits on test features (the variances of each stream's partial logits, normalised
    to sum to 1). ``alpha`` is in the config's convention (``alpha_reduction``);
    ``alpha_sum`` and ``alpha_mean`` give it in both.
pca.csv
    Fig. 2: features of each stream projected on their first two principal components,
    clean and blurred.
"""

from __future__ import annotations

from ctxfusion.schema.cells import (
    Cell,
    cell_of,
    columns,
    csv_text,
    format_cell,
    parse_record,
    read_records,
    record_dict,
    to_csv_row,
)
from ctxfusion.schema.paths import (
    CLAIMS_CSV,
    CLAIMS_MD,
    CONFIG_YAML,
    DIFFERENCES_CSV,
    EXAMPLES_DIR,
    PCA_CSV,
    REPORT_HTML,
    RESULTS_CSV,
    RESULTS_JSON,
    RUN_JSON,
    WEIGHTS_CSV,
    RunPaths,
)
from ctxfusion.schema.rows import (
    ALPHA_REDUCTIONS,
    CLAIM_COLUMNS,
    DIFFERENCE_COLUMNS,
    NEW_RESULT_COLUMNS,
    PCA_COLUMNS,
    PCA_CONDITIONS,
    REGIONS,
    RESULT_COLUMNS,
    THREATS,
    VERDICTS,
    WEIGHT_COLUMNS,
    ClaimRow,
    DifferenceRow,
    PcaRow,
    ResultRow,
    WeightRow,
    infer_threat,
    wilson,
)
from ctxfusion.schema.run_info import (
    AdvtrainInfo,
    CacheInfo,
    DatasetInfo,
    ExampleInfo,
    PcaInfo,
    RunInfo,
    ThreatModel,
)

__all__ = [
    "ALPHA_REDUCTIONS", "CLAIMS_CSV", "CLAIMS_MD", "CLAIM_COLUMNS", "CONFIG_YAML",
    "DIFFERENCES_CSV", "DIFFERENCE_COLUMNS", "EXAMPLES_DIR", "NEW_RESULT_COLUMNS",
    "PCA_COLUMNS", "PCA_CONDITIONS", "PCA_CSV", "REPORT_HTML", "RESULTS_CSV", "RESULTS_JSON",
    "REGIONS", "RESULT_COLUMNS", "RUN_JSON", "THREATS", "VERDICTS", "WEIGHTS_CSV", "WEIGHT_COLUMNS",
    "AdvtrainInfo", "CacheInfo", "Cell", "ClaimRow", "DatasetInfo", "DifferenceRow",
    "ExampleInfo", "PcaInfo", "PcaRow", "ResultRow", "RunInfo", "RunPaths", "ThreatModel",
    "WeightRow", "cell_of", "columns", "csv_text", "format_cell", "infer_threat",
    "parse_record", "read_records", "record_dict", "to_csv_row", "wilson",
]
