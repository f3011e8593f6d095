"""Reading pickles of numpy arrays without running code: the one restricted unpickler.

CIFAR-10's python batches and Lasagne parameter files are pickles of numpy arrays in plain
containers. ``pickle.load`` would execute whatever callables a file names; numpy's own
``np.load(allow_pickle=False)`` cannot read such a pickle, and torch's weights-only unpickler
does not admit numpy's reconstruction, hence this small class.
"""

from __future__ import annotations

import codecs
import pickle
from typing import IO, Any

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray, numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray, numeric

from ctxfusion.errors import UnsafeCheckpointError

# (module, name) -> object: the only globals a pickle of arrays refers to. Pickles written with
# numpy < 2 name `numpy.core.*`; numpy >= 2 moved it to `numpy._core`. Python 3 pickles bytes
# under protocol 2 as _codecs.encode(text, "latin1"); torch's weights-only unpickler admits it too.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refused to unpickle global {module}.{name}: only numpy arrays are allowed "
                "(this file would run code or build arbitrary objects)"
            ) from None


def load_numpy_pickle(handle: IO[bytes], encoding: str = "latin1") -> Any:
    """The object in a pickle of numpy arrays (Python 2 files need ``latin1``)."""
    return NumpyOnlyUnpickler(handle, encoding=encoding).load()
