"""F32: plain float32 weights."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape

BLOCK_ELEMS, BLOCK_BYTES = block_shape("F32")
WEIGHT_DTYPE = np.dtype(np.float32)


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    dst[e] = src[o]


@njit(inline="always")
def value_fast(v):
    """A weight as float32 for the float matmul (row_kernels.matmul)."""
    return v
