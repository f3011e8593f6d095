"""The paper's experiments as functions of a config (see ``runner.run_experiment``)."""

from ctxfusion.experiments.runner import run_experiment

__all__ = ["run_experiment"]
