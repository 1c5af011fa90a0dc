"""Q5_0: 32 values per block, f16 d, the 5th bits in a u32 and 4-bit low parts;
x = d * (q - 16) (quantize_row_q5_0_ref)."""

from __future__ import annotations

from numba import njit

from ._common import F32, KERNEL, block_shape, put_5bit_pair, put_symmetric_scale, put_u32, to_int8, trunc_i32

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_0")


@njit(**KERNEL)
def quantize_blocks(x, out):
    for i in range(x.size // 32):
        xb = x[i * 32 : i * 32 + 32]
        ob = out[i * 22 : i * 22 + 22]
        inv = put_symmetric_scale(xb, ob, F32(16.0))
        qh = 0
        for j in range(16):
            q0 = min(31, to_int8(trunc_i32(xb[j] * inv + F32(16.5)))) & 0xFF
            q1 = min(31, to_int8(trunc_i32(xb[16 + j] * inv + F32(16.5)))) & 0xFF
            qh = put_5bit_pair(ob, 6, j, q0, q1, qh)
        put_u32(ob, 2, qh)
