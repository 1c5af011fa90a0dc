"""Q5_0: 32 values per block, f16 d, the 5th bits in a u32 and 4-bit low parts;
x = d * (q - 16) (quantize_row_q5_0_ref)."""

from __future__ import annotations

from numba import njit

from ._common import F32, KERNEL, block_shape, f32_to_f16, put_f16, to_int8, trunc_i32

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_0")


@njit(**KERNEL)
def quantize_blocks(x, out):
    for i in range(x.size // 32):
        xb = x[i * 32 : i * 32 + 32]
        ob = out[i * 22 : i * 22 + 22]
        amax = F32(0.0)
        mx = F32(0.0)
        for j in range(32):
            v = xb[j]
            if amax < abs(v):
                amax = abs(v)
                mx = v
        d = mx / F32(-16.0)
        inv = F32(1.0) / d if d != F32(0.0) else F32(0.0)
        put_f16(ob, 0, f32_to_f16(d))
        qh = 0
        for j in range(16):
            q0 = min(31, to_int8(trunc_i32(xb[j] * inv + F32(16.5)))) & 0xFF
            q1 = min(31, to_int8(trunc_i32(xb[16 + j] * inv + F32(16.5)))) & 0xFF
            ob[6 + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4)
            qh |= ((q0 & 0x10) >> 4) << j
            qh |= ((q1 & 0x10) >> 4) << (j + 16)
        for k in range(4):
            ob[2 + k] = (qh >> (8 * k)) & 0xFF
