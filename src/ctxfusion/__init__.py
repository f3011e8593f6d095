"""ctxfusion: contextual fusion for adversarial robustness.

Object-centric and scene-centric streams, late fusion by concatenated features, a linear head,
and the experiments of the paper (blur inside boxes, FGSM, alpha regularisation) as configs.
"""

__version__ = "0.1.0"

from ctxfusion.models import FusionClassifier, LinearHead, Normalize, alpha_regularised_loss
from ctxfusion.streams import create_stream, list_streams

__all__ = [
    "FusionClassifier",
    "LinearHead",
    "Normalize",
    "__version__",
    "alpha_regularised_loss",
    "create_stream",
    "list_streams",
]
