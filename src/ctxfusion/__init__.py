"""ctxfusion: contextual fusion for adversarial robustness.

Object-centric and scene-centric streams, late fusion by concatenated features, a linear head,
and the experiments of the paper (blur inside boxes, FGSM, alpha regularisation) as configs.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from ctxfusion.lazy import lazy_exports

if TYPE_CHECKING:
    from ctxfusion.models import FusionClassifier, LinearHead, Normalize, alpha_regularised_loss
    from ctxfusion.streams import create_stream, list_streams

# imported on first use: ``import ctxfusion.X`` and the ``ctxfusion`` command pay for
# torchvision only where they need it
__getattr__ = lazy_exports(__name__, {
    **dict.fromkeys(["FusionClassifier", "LinearHead", "Normalize", "alpha_regularised_loss"],
                    "ctxfusion.models"),
    **dict.fromkeys(["create_stream", "list_streams"], "ctxfusion.streams"),
})

__all__ = [
    "FusionClassifier",
    "LinearHead",
    "Normalize",
    "__version__",
    "alpha_regularised_loss",
    "create_stream",
    "list_streams",
]
