"""Q6_K: super-blocks of 256 weights in 210 bytes: u8 ql[128], u8 qh[64], i8 scales[16], f16 d.

Two halves h of 128; with L = ql[64h:], H = qh[32h:] and l < 32, element 128h + l takes
the low nibble of L[l], +32 the low nibble of L[l+32], +64 the high nibble of L[l], +96
the high nibble of L[l+32]; their bits 4-5 are bits 0-1, 2-3, 4-5, 6-7 of H[l].
w = d * scales[e // 16] * (q - 32).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, read_f16, read_f16_fast
from ._int8 import (
    i32x16_load_s8,
    i32x16_load_s8_quads,
    q6x64_load,
)

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q6_K")


@njit(inline="always")
def _scale(buf, i):
    """The signed 8-bit scale at buf[i] (buf is uint8)."""
    s = np.int64(buf[i])
    return s - 256 if s >= 128 else s


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o + 208)
    for h in range(2):
        for l in range(32):
            L0 = np.int64(src[o + 64 * h + l])
            L1 = np.int64(src[o + 64 * h + 32 + l])
            H = np.int64(src[o + 128 + 32 * h + l])
            q0 = (L0 & 15) | ((H & 3) << 4)
            q1 = (L1 & 15) | (((H >> 2) & 3) << 4)
            q2 = (L0 >> 4) | (((H >> 4) & 3) << 4)
            q3 = (L1 >> 4) | (((H >> 6) & 3) << 4)
            s = o + 192 + 8 * h + l // 16  # scale of element 128h + l; +2 per 32
            k = e + 128 * h + l
            dst[k] = (d * np.float32(_scale(src, s))) * np.float32(q0 - 32)
            dst[k + 32] = (d * np.float32(_scale(src, s + 2))) * np.float32(q1 - 32)
            dst[k + 64] = (d * np.float32(_scale(src, s + 4))) * np.float32(q2 - 32)
            dst[k + 96] = (d * np.float32(_scale(src, s + 6))) * np.float32(q3 - 32)


# The 8-bit product (llama.cpp's ggml_vec_dot_q6_K_q8_K): q - 32 in 0..63 - 32, sixteen
# sub-blocks of 16 with signed 8-bit scales. The integer sum of sc_j * (q_j . x_j) over the
# block is exact; the offset is taken out as 32 * sum_j sc_j * (x sum of sub-block j), which
# the shared accumulation subtracts scaled by 32 d (the "dmin" of this type).
@njit(inline="always")
def _decode_q8_k(blk):
    """One block for any number of tokens: four 64-value vectors of 6-bit q (0..63), the
    scales spread to dpbusd's lanes (sub-block 4k + i in lanes 4i..4i+3 of chunk k), and
    all sixteen scales; d and 32 d first, as every type."""
    d = read_f16_fast(blk, 208)
    return (
        d,
        np.float32(32.0) * d,
        q6x64_load(blk, 0, blk, 128, 0),
        q6x64_load(blk, 0, blk, 128, 1),
        q6x64_load(blk, 64, blk, 160, 0),
        q6x64_load(blk, 64, blk, 160, 1),
        i32x16_load_s8_quads(blk, 192),
        i32x16_load_s8_quads(blk, 196),
        i32x16_load_s8_quads(blk, 200),
        i32x16_load_s8_quads(blk, 204),
        i32x16_load_s8(blk, 192),
    )
