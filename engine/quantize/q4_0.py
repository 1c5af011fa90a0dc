"""Q4_0: 32 values per block, f16 d and 4-bit q; x = d * (q - 8) (quantize_row_q4_0_ref)."""

from __future__ import annotations

from numba import njit

from ._common import F32, KERNEL, block_shape, put_symmetric_scale, to_int8, trunc_i32

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q4_0")


@njit(**KERNEL)
def quantize_blocks(x, out):
    for i in range(x.size // 32):
        xb = x[i * 32 : i * 32 + 32]
        ob = out[i * 18 : i * 18 + 18]
        inv = put_symmetric_scale(xb, ob, F32(8.0))
        for j in range(16):
            # C: MIN(15, (int8_t)(x*id + 8.5f)): truncation toward zero
            q0 = min(15, to_int8(trunc_i32(xb[j] * inv + F32(8.5))))
            q1 = min(15, to_int8(trunc_i32(xb[16 + j] * inv + F32(8.5))))
            ob[2 + j] = (q0 & 0xFF) | ((q1 << 4) & 0xFF)
