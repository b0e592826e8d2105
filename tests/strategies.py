"""Hypothesis strategies for shapes, broadcastable shape pairs and float arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

small_shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=5)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5)


def broadcastable_pair(num_shapes: int = 2):
    """Shapes that broadcast together, as NumPy would."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=0, max_dims=4, min_side=1, max_side=4)


def floats_array(shape, dtype=np.float64, low: float = -3.0, high: float = 3.0):
    """Arrays of finite floats in [low, high] (kept away from the kinks of abs/relu by the tests)."""
    return hnp.arrays(dtype, shape, elements=st.floats(low, high, allow_nan=False, allow_infinity=False, width=64
                                                       if dtype == np.float64 else 32))


def positive_array(shape, dtype=np.float64):
    return hnp.arrays(dtype, shape, elements=st.floats(0.1, 3.0, width=64 if dtype == np.float64 else 32))
