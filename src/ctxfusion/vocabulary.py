"""Names shared across layers, at the bottom of the import graph (imports nothing of ctxfusion).

The experiment steps a config (or a dataset) may run, and the dataset preparation policies
the data modules check and the config and CLI offer. Vocabularies owned by a registry live
with it instead (``DATASET_KINDS`` in :mod:`ctxfusion.data.kinds`, ``VIEWS`` in
:mod:`ctxfusion.perturb.views`, ...); the subsets are :data:`ctxfusion.data.manifest.SUBSETS`.
"""

#: the experiment steps, in run order (``steps`` of a config or of a dataset)
STEPS = ("blur", "fgsm", "advtrain", "whitebox", "corruptions", "fusion", "pca")
#: how a COCO-format image gets its label (``instance_rule``)
INSTANCE_RULES = ("image", "category")
#: what happens to crowd annotations (``crowd``)
CROWD_POLICIES = ("drop", "ignore")
#: what happens to an unreadable image file (``bad_images``)
BAD_IMAGE_POLICIES = ("skip", "error")
