"""The paper's experiments as functions of a config (see ``runner.run_experiment``)."""

from typing import TYPE_CHECKING

from ctxfusion.lazy import lazy_exports

if TYPE_CHECKING:
    from ctxfusion.experiments.runner import run_experiment

# on first use: importing a light module of this package (``rundir``) does not import the
# whole experiment layer
__getattr__ = lazy_exports(__name__, {"run_experiment": "ctxfusion.experiments.runner"})

__all__ = ["run_experiment"]
