"""Q5_1: 32 values per block, f16 d, f16 m, the 5th bits in a u32 and 4-bit low parts;
x = d * q + m (quantize_row_q5_1_ref)."""

from __future__ import annotations

from numba import njit

from ._common import F32, KERNEL, block_shape, f32_to_f16, put_f16, trunc_i32

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_1")
FLT_MAX = F32(3.4028234663852886e38)


@njit(**KERNEL)
def quantize_blocks(x, out):
    for i in range(x.size // 32):
        xb = x[i * 32 : i * 32 + 32]
        ob = out[i * 24 : i * 24 + 24]
        mn = FLT_MAX
        mx = -FLT_MAX
        for j in range(32):
            v = xb[j]
            if v < mn:
                mn = v
            if v > mx:
                mx = v
        d = (mx - mn) / F32(31.0)
        inv = F32(1.0) / d if d != F32(0.0) else F32(0.0)
        put_f16(ob, 0, f32_to_f16(d))
        put_f16(ob, 2, f32_to_f16(mn))
        qh = 0
        for j in range(16):
            # C: (uint8_t)(x + 0.5f), no clamp
            q0 = trunc_i32((xb[j] - mn) * inv + F32(0.5)) & 0xFF
            q1 = trunc_i32((xb[16 + j] - mn) * inv + F32(0.5)) & 0xFF
            ob[8 + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4)
            qh |= ((q0 & 0x10) >> 4) << j
            qh |= ((q1 & 0x10) >> 4) << (j + 16)
        for k in range(4):
            ob[4 + k] = (qh >> (8 * k)) & 0xFF
