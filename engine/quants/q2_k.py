"""Q2_K: super-blocks of 256 weights in 84 bytes: u8 scales[16], u8 qs[64], f16 d, f16 dmin.

Element e takes bits 2k..2k+1 (k = (e % 128) // 32) of qs[32 * (e // 128) + e % 32].
Sub-block s = e // 16 has scale scales[s] & 15 and min scales[s] >> 4;
w = d * (sc & 15) * q - dmin * (sc >> 4).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, read_f16, read_f16_fast, read_u32
from ._int8 import (
    i32x16_word_bytes16,
    i32x16_word_bytes_quads,
    q2x64_load,
)

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q2_K")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o + 80)
    dmin = read_f16(src, o + 82)
    for h in range(2):
        for k in range(4):
            for l in range(32):
                sc = np.int64(src[o + 8 * h + 2 * k + l // 16])
                dl = d * np.float32(sc & 15)
                ml = dmin * np.float32(sc >> 4)
                q = (np.int64(src[o + 16 + 32 * h + l]) >> (2 * k)) & 3
                dst[e + 128 * h + 32 * k + l] = dl * np.float32(q) - ml


# The 8-bit product (llama.cpp's ggml_vec_dot_q2_K_q8_K): sixteen sub-blocks of 16, q 0..3,
# 4-bit scales and mins. The integer sum over the block of sc_j * (q_j . x_j) is exact (at
# most 4 chunks * 15 * 4 * 3 * 128 per lane), scaled by d * d_x in float; the minimum term
# dmin * d_x * sum_j m_j * (x sum of sub-block j) comes from the activations' bsums.
@njit(inline="always")
def _decode_q8_k(blk):
    """One block for any number of tokens: four 64-value vectors of q (chunk c = elements
    64c..64c+63 = sub-blocks 4c + i in dpbusd lanes 4i..4i+3), the scales spread to those
    lanes, and the sixteen mins in lane order (beside the bsums). d and dmin first."""
    u0 = read_u32(blk, 0)
    u1 = read_u32(blk, 4)
    u2 = read_u32(blk, 8)
    u3 = read_u32(blk, 12)
    lo = 0x0F0F0F0F  # each scale byte: the scale in its low nibble, the min in its high one
    return (
        read_f16_fast(blk, 80),
        read_f16_fast(blk, 82),
        q2x64_load(blk, 16, 0),
        q2x64_load(blk, 16, 1),
        q2x64_load(blk, 48, 0),
        q2x64_load(blk, 48, 1),
        i32x16_word_bytes_quads(u0 & lo),
        i32x16_word_bytes_quads(u1 & lo),
        i32x16_word_bytes_quads(u2 & lo),
        i32x16_word_bytes_quads(u3 & lo),
        i32x16_word_bytes16((u0 >> 4) & lo, (u1 >> 4) & lo, (u2 >> 4) & lo, (u3 >> 4) & lo),
    )
