"""BF16: bfloat16 weights, read as their uint16 bits (the top half of a float32)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, bf16_to_f32

BLOCK_ELEMS, BLOCK_BYTES = block_shape("BF16")
WEIGHT_DTYPE = np.dtype(np.uint16)


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    dst[e] = bf16_to_f32(src[o])


@njit(inline="always")
def value_fast(v):
    """A weight as float32 for the float matmul (row_kernels.matmul)."""
    return bf16_to_f32(v)
