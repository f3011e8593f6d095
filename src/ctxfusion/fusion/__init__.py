"""Robust fusion beyond the paper: heads that keep deciding when one stream is degraded.

The paper fuses the streams with one linear layer trained on clean features; on real photos
it learns to trust the object stream, which is near perfect on its training images. The
methods here (each a classifier ``<fused classifier>-<method>``, see
:data:`ctxfusion.roles.FUSION_METHODS`) change how the head is trained or how it combines the
streams, all on cached features:

* ``dropout``: the linear head, trained with each stream's features replaced by their
  training mean with probability p (:func:`~ctxfusion.fusion.heads.drop_streams`);
* ``blurtrain`` / ``fgsmtrain``: the linear head, trained on clean features plus the features
  of blurred (inside the boxes) or FGSM (crafted on the object classifier) training images;
* ``poe``: the product of the streams' own experts (the sum of their log-probabilities);
* ``confidence``: the same sum weighted per image by each expert's confidence (1 - its
  normalised entropy);
* ``gate``: a small network that weighs the experts per image from their confidences,
  trained on clean and blurred features.
"""

from ctxfusion.fusion.heads import ExpertFusion, GatedFusion, drop_streams
from ctxfusion.fusion.methods import TrainingSet, fit_methods

__all__ = ["ExpertFusion", "GatedFusion", "TrainingSet", "drop_streams", "fit_methods"]
