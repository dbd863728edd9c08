"""Runtime helpers used by generated code: NumPy only (importing this never imports SymPy)."""

from __future__ import annotations

import numpy as np

__all__ = ["assemble", "result_dtype"]


def assemble(shape, entries):
    """Stack scalar-or-array ``entries`` (row-major) into an array of shape batch + ``shape``.

    Entries broadcast together (leading batch axes); Python numbers stay weak, so float32
    inputs give a float32 matrix."""
    dtype = np.result_type(*entries, 0.0)
    batch = np.broadcast_shapes(*(np.shape(e) for e in entries))
    out = np.empty(batch + tuple(shape), dtype=dtype)
    for index, entry in zip(np.ndindex(*shape), entries):
        out[(Ellipsis,) + index] = entry
    return out


def result_dtype(values):
    """The floating dtype of the inputs (float64 for ints and Python numbers)."""
    if values and all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in values):
        return np.dtype(np.float64)  # the common case, without result_type's cost
    dtype = np.result_type(*values, 0.0) if values else np.dtype(np.float64)
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)
