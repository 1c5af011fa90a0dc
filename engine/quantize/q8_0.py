"""Q8_0: 32 values per block, f16 d and int8 q; x = d * q (quantize_row_q8_0_ref, which
rounds half away from zero: C's roundf)."""

from __future__ import annotations

from numba import njit

from ._common import F32, KERNEL, block_shape, f32_to_f16, put_f16, roundf, trunc_i32

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q8_0")


@njit(**KERNEL)
def quantize_blocks(x, out):
    for i in range(x.size // 32):
        xb = x[i * 32 : i * 32 + 32]
        ob = out[i * 34 : i * 34 + 34]
        amax = F32(0.0)
        for j in range(32):
            amax = max(amax, abs(xb[j]))
        d = amax / F32(127.0)
        inv = F32(1.0) / d if d != F32(0.0) else F32(0.0)
        put_f16(ob, 0, f32_to_f16(d))
        for j in range(32):
            ob[2 + j] = trunc_i32(roundf(xb[j] * inv)) & 0xFF  # C: int8_t = roundf(x)
