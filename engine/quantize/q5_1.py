"""Q5_1: 32 values per block, f16 d, f16 m, the 5th bits in a u32 and 4-bit low parts;
x = d * q + m (quantize_row_q5_1_ref)."""

from __future__ import annotations

from numba import njit

from ._common import F32, KERNEL, block_shape, put_5bit_pair, put_affine_scale, put_u32, trunc_i32

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_1")


@njit(**KERNEL)
def quantize_blocks(x, out):
    for i in range(x.size // 32):
        xb = x[i * 32 : i * 32 + 32]
        ob = out[i * 24 : i * 24 + 24]
        mn, inv = put_affine_scale(xb, ob, F32(31.0))
        qh = 0
        for j in range(16):
            # C: (uint8_t)(x + 0.5f), no clamp
            q0 = trunc_i32((xb[j] - mn) * inv + F32(0.5)) & 0xFF
            q1 = trunc_i32((xb[16 + j] - mn) * inv + F32(0.5)) & 0xFF
            qh = put_5bit_pair(ob, 8, j, q0, q1, qh)
        put_u32(ob, 4, qh)
