"""Runtime helpers used by generated code: NumPy only (importing this never imports SymPy)."""

from __future__ import annotations

import numpy as np

__all__ = ["assemble", "result_dtype", "namespace", "labels"]


def namespace(*arrays):
    """The array namespace of the inputs: NumPy itself for NumPy arrays, Python numbers and
    lists (no wrapper on the fast path); otherwise array-api-compat's namespace of the arrays
    (PyTorch, CuPy, JAX, Dask, array-api-strict)."""
    others = [a for a in arrays if not isinstance(a, (np.ndarray, np.generic, int, float, list, tuple))]
    if not others:
        return np
    try:
        import array_api_compat
    except ImportError:
        raise TypeError(f"{type(others[0]).__module__}.{type(others[0]).__name__} inputs need array-api-compat: "
                        "pip install 'symgrad[array]' (or pass NumPy arrays)") from None
    return array_api_compat.array_namespace(*others)


def labels(y, classes: int, dtype, xp=np):
    """Targets as an (N, C) matrix: 0-based class indices (...,) become one-hot rows; target rows
    (..., C) (one-hot or probabilities) are flattened to (N, C)."""
    y = xp.asarray(y)
    if xp.isdtype(y.dtype, "integral") if hasattr(xp, "isdtype") else np.issubdtype(y.dtype, np.integer):
        flat = xp.reshape(y, (-1, 1))
        if flat.shape[0] and (int(xp.min(flat)) < 0 or int(xp.max(flat)) >= classes):
            raise ValueError(f"class indices must lie in 0 … {classes - 1} (0-based), got "
                             f"{int(xp.min(flat))} … {int(xp.max(flat))}")
        if xp is np:  # zeros, then a one per row: one pass less than comparing with arange
            onehot = np.zeros((flat.shape[0], classes), dtype=dtype)
            onehot[np.arange(flat.shape[0]), flat[:, 0]] = 1
            return onehot
        onehot = flat == xp.reshape(xp.arange(classes, device=y.device), (1, -1))
        return xp.astype(onehot, dtype)
    if y.ndim == 0 or y.shape[-1] != classes:
        raise ValueError(f"targets must be class indices (an integer array) or rows of {classes} "
                         f"probabilities, got shape {tuple(y.shape)} and dtype {y.dtype}")
    return xp.reshape(y, (-1, classes))


def assemble(shape, entries, xp=np):
    """Stack scalar-or-array ``entries`` (row-major) into an array of shape batch + ``shape``.

    Entries broadcast together (leading batch axes); Python numbers stay weak, so float32
    inputs give a float32 matrix. ``xp``: the array namespace (NumPy by default)."""
    if xp is not np:
        arrays = [e for e in entries if not isinstance(e, (int, float))]
        dtype = xp.result_type(*arrays) if arrays else xp.float64
        parts = [xp.asarray(e, dtype=dtype) for e in entries]
        parts = xp.broadcast_arrays(*parts)
        stacked = xp.stack(parts, axis=-1)
        return xp.reshape(stacked, tuple(stacked.shape[:-1]) + tuple(shape))
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
