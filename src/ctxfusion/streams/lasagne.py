"""Reading Lasagne parameter pickles without running code.

A Lasagne network's weights are saved as ``pickle.dump(get_all_param_values(net))``: a list of
numpy arrays. ``pickle.load`` would execute whatever callables the file names, so this module
reads it with :mod:`ctxfusion.numpy_pickle`, which admits only what numpy needs to rebuild an
array.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from ctxfusion.errors import UnsafeCheckpointError, WeightsError
from ctxfusion.numpy_pickle import load_numpy_pickle


def load_lasagne_params(path: str | os.PathLike) -> list[np.ndarray]:
    """The list of numpy arrays in a Lasagne ``.params`` pickle (Python 2 files: latin1)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            params = load_numpy_pickle(handle)
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise WeightsError(f"cannot read Lasagne parameter file {path}: {exc}") from exc
    if not isinstance(params, list | tuple) or not all(
        isinstance(p, np.ndarray) for p in params
    ):
        raise WeightsError(
            f"Lasagne parameter file {path} holds {type(params).__name__}, expected a list of "
            "numpy arrays (lasagne.layers.get_all_param_values)"
        )
    return list(params)
