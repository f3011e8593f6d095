"""Reading Lasagne parameter pickles without running code.

A Lasagne network's weights are saved as ``pickle.dump(get_all_param_values(net))``: a list of
numpy arrays. ``pickle.load`` would execute whatever callables the file names, so this module
uses a :class:`pickle.Unpickler` whose ``find_class`` admits only what numpy needs to rebuild an
array. numpy's own ``np.load(allow_pickle=False)`` cannot read such a pickle, and torch's
weights-only unpickler does not admit numpy's reconstruction, hence this small class.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray

from ctxfusion.errors import UnsafeCheckpointError, WeightsError

# (module, name) -> object: the only globals a list-of-arrays pickle refers to. Pickles written
# with numpy < 2 name `numpy.core.multiarray`; numpy >= 2 moved it to `numpy._core`.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers, and refuses anything else."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle's hook
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refused to unpickle global {module}.{name}: only numpy arrays are allowed in a "
                "parameter file (this file would run code or build arbitrary objects)"
            ) from None


def load_lasagne_params(path: str | os.PathLike) -> list[np.ndarray]:
    """The list of numpy arrays in a Lasagne ``.params`` pickle (Python 2 files: latin1)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            params = RestrictedUnpickler(handle, encoding="latin1").load()
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
