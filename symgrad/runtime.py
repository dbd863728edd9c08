"""Runtime helpers used by generated code: NumPy only (importing this never imports SymPy)."""

from __future__ import annotations

import numpy as np

__all__ = ["assemble", "result_dtype", "namespace", "labels", "device", "indices", "rows", "shaped", "reduce_to", "product", "check_broadcast"]


def namespace(*arrays):
    """The array namespace of the inputs: NumPy itself for NumPy arrays, Python numbers and
    lists (no wrapper on the fast path); otherwise array-api-compat's namespace of the arrays
    (PyTorch, CuPy, JAX, Dask, array-api-strict)."""
    numpy_like = (np.ndarray, np.generic, int, float, list, tuple)  # (copied into exported modules)
    for a in arrays:
        if not isinstance(a, numpy_like):
            break
    else:
        return np
    others = [a for a in arrays if not isinstance(a, numpy_like)]
    try:
        import array_api_compat
    except ImportError:
        raise TypeError(f"{type(others[0]).__module__}.{type(others[0]).__name__} inputs need array-api-compat: "
                        "pip install 'symgrad[array]' (or pass NumPy arrays)") from None
    return array_api_compat.array_namespace(*others)


def device(x):
    """The device of array ``x`` (array-api-compat's ``device``: Dask and NumPy arrays have no
    ``.device`` attribute); None for NumPy arrays."""
    if isinstance(x, (np.ndarray, np.generic)):
        return None
    import array_api_compat

    return array_api_compat.device(x)


def _check_indices(lo: int, hi: int, classes: int) -> None:
    if lo < 0 or hi >= classes:
        raise ValueError(f"class indices must lie in 0 … {classes - 1} (0-based), got {lo} … {hi}")


def _checked_block(block, classes: int):
    """A Dask block of class indices, unchanged, once its range is checked (when computed)."""
    if block.size:
        _check_indices(int(block.min()), int(block.max()), classes)
    return block


def labels(y, classes: int, dtype, xp=np):
    """Targets as an (N, C) matrix: 0-based class indices (...,) become one-hot rows; target rows
    (..., C) (one-hot or probabilities) are flattened to (N, C). Indices out of range raise a
    ValueError (for a lazy Dask array when it is computed: nothing is computed here)."""
    y = xp.asarray(y)
    if xp.isdtype(y.dtype, "integral") if hasattr(xp, "isdtype") else np.issubdtype(y.dtype, np.integer):
        flat = xp.reshape(y, (-1, 1))
        if hasattr(flat, "map_blocks") and hasattr(flat, "dask"):  # Dask: the check runs with the graph
            flat = flat.map_blocks(_checked_block, classes, dtype=flat.dtype)
        elif flat.shape[0]:
            _check_indices(int(xp.min(flat)), int(xp.max(flat)), classes)
        if xp is np:  # zeros, then a one per row: one pass less than comparing with arange
            onehot = np.zeros((flat.shape[0], classes), dtype=dtype)
            onehot[np.arange(flat.shape[0]), flat[:, 0]] = 1
            return onehot
        onehot = flat == xp.reshape(xp.arange(classes, device=device(y)), (1, -1))
        return xp.astype(onehot, dtype)
    if y.ndim == 0 or y.shape[-1] != classes:
        raise ValueError(f"targets must be class indices (an integer array) or rows of {classes} "
                         f"probabilities, got shape {tuple(y.shape)} and dtype {y.dtype}")
    return xp.reshape(y, (-1, classes))


def indices(y, xp=np) -> bool:
    """Whether targets ``y`` are class indices (an integer array), not rows of probabilities."""
    return bool(xp.isdtype(y.dtype, "integral")) if hasattr(xp, "isdtype") else np.issubdtype(y.dtype, np.integer)


def rows(x, xp=np):
    """``x`` (..., K) as an (N, K) matrix, the leading axes flattened (a 2-D array as it is)."""
    return x if x.ndim == 2 else xp.reshape(x, (-1, x.shape[-1]))


def shaped(x, shape, xp=np):
    """``x`` reshaped to ``shape`` (as it is when it has that shape already)."""
    return x if x.shape == shape else xp.reshape(x, shape)


def reduce_to(g, shape, xp=np):
    """The gradient ``g`` of a broadcast input, summed over the axes the input was broadcast along
    (the VJP of broadcasting), and spread where it does not vary: shaped like the input."""
    if g.shape == shape:
        return g
    full = np.broadcast_shapes(tuple(g.shape), tuple(shape))
    if full != tuple(g.shape):
        g = xp.broadcast_to(g, full) + 0  # a new array of the full shape
    lead = len(full) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and full[lead + i] != 1)
    return xp.reshape(xp.sum(g, axis=axes) if axes else g, shape)


def check_broadcast(grad, **inputs) -> None:
    """A ValueError naming the arguments when the inputs of an elementwise block do not broadcast,
    or when ``grad`` (if given) is neither shaped like the output (their broadcast shape) nor a number."""
    shapes = {name: tuple(a.shape) for name, a in inputs.items()}
    try:
        out = np.broadcast_shapes(*shapes.values())
    except ValueError:
        given = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"the inputs do not broadcast together: {given}") from None
    if grad is not None and tuple(grad.shape) not in (out, ()):  # a number: the same upstream everywhere
        given = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"grad: shape {tuple(grad.shape)}, expected {out}, the output's ({given} broadcast)")


def product(c, a, b, xp=np):
    """c·a·b for a number c: NumPy arrays of one shape in blocks of 2¹⁴ entries (each written once,
    c applied while the block is in cache: −grad·z in one pass over memory); otherwise c * (a * b)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype \
            and a.ndim and a.flags.c_contiguous and b.flags.c_contiguous:
        out = np.empty_like(a)
        fa, fb, fo = a.reshape(-1), b.reshape(-1), out.reshape(-1)
        for i in range(0, fa.size, 1 << 14):
            block = np.multiply(fa[i:i + (1 << 14)], fb[i:i + (1 << 14)], out=fo[i:i + (1 << 14)])
            block *= c
        return out
    return c * (a * b)


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
