"""F16: IEEE half weights, read as their uint16 bits (numba has no float16 on the CPU)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, half_to_f32_exact, half_to_f32_fast

BLOCK_ELEMS, BLOCK_BYTES = block_shape("F16")
WEIGHT_DTYPE = np.dtype(np.uint16)


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    dst[e] = half_to_f32_exact(src[o])


@njit(inline="always")
def value_fast(v):
    """A weight as float32 for the float matmul (row_kernels.matmul)."""
    return half_to_f32_fast(v)
