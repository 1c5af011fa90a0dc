"""Q4_1: 32 values per block, f16 d, f16 m (the block minimum) and 4-bit q; x = d * q + m
(quantize_row_q4_1_ref)."""

from __future__ import annotations

from numba import njit

from ._common import F32, KERNEL, block_shape, put_affine_scale, to_int8, trunc_i32

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q4_1")


@njit(**KERNEL)
def quantize_blocks(x, out):
    for i in range(x.size // 32):
        xb = x[i * 32 : i * 32 + 32]
        ob = out[i * 20 : i * 20 + 20]
        mn, inv = put_affine_scale(xb, ob, F32(15.0))
        for j in range(16):
            q0 = min(15, to_int8(trunc_i32((xb[j] - mn) * inv + F32(0.5))))
            q1 = min(15, to_int8(trunc_i32((xb[16 + j] - mn) * inv + F32(0.5))))
            ob[4 + j] = (q0 & 0xFF) | ((q1 << 4) & 0xFF)
