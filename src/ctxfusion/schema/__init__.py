"""The run directory's files and columns: one definition used by the writer, the reader and
the tests.

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
    Per joint head and stream: the paper's mean |w| and two scale-aware contributions:
    ``scaled_weight`` = mean over the stream's columns of mean|w_j| * std(f_j) (std over
    the training features), ``logit_share`` = the stream's share of the variance of the
    logits on test features (the variances of each stream's partial logits, normalised to
    sum to 1). ``alpha`` is in the config's convention (``alpha_reduction``);
    ``alpha_sum`` and ``alpha_mean`` give it in both.
"""

from __future__ import annotations

RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
DIFFERENCES_CSV = "differences.csv"
WEIGHTS_CSV = "weights.csv"
PCA_CSV = "pca.csv"
RUN_JSON = "run.json"
CONFIG_YAML = "config.yaml"
CLAIMS_CSV = "claims.csv"
CLAIMS_MD = "claims.md"

RESULT_COLUMNS = (
    "experiment", "dataset", "subset", "classifier", "source", "threat", "perturbation",
    "level", "seed", "accuracy", "ci_low", "ci_high", "n",
)
DIFFERENCE_COLUMNS = (
    "experiment", "dataset", "subset", "source", "threat", "perturbation", "level", "seed",
    "classifier_a", "classifier_b", "acc_a", "acc_b", "diff", "ci_low", "ci_high", "n",
    "a_only", "b_only", "mcnemar_p",
)
WEIGHT_COLUMNS = (
    "dataset", "subset", "classifier", "alpha", "alpha_reduction", "alpha_sum", "alpha_mean",
    "seed", "stream", "mean_abs_weight", "scaled_weight", "logit_share",
)
PCA_COLUMNS = ("dataset", "stream", "condition", "label", "pc1", "pc2")
CLAIM_COLUMNS = ("claim", "text", "run", "dataset", "verdict", "evidence")

#: values of the ``threat`` column
THREATS = ("none", "transfer", "whitebox")
#: values of the ``verdict`` column of claims.csv
VERDICTS = ("reproduced", "partly", "not reproduced", "not applicable")
