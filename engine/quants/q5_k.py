"""Q5_K: super-blocks of 256 weights in 176 bytes: f16 d, f16 dmin, u8 scales[12],
u8 qh[32], u8 qs[128].

As Q4_K, plus bit 4 of element e: bit e // 32 of qh[e % 32]; w = d*sc*q - dmin*m.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, read_f16, read_f16_fast, read_u32
from ._int8 import (
    i32x16_byte_pairs64,
    i32x16_scale_bytes_dup16,
    q5x64_load,
)
from .q4_k import scale_min_k4

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_K")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o)
    dmin = read_f16(src, o + 2)
    for c in range(4):
        sc_lo, m_lo = scale_min_k4(src, o + 4, 2 * c)
        sc_hi, m_hi = scale_min_k4(src, o + 4, 2 * c + 1)
        d_lo = d * np.float32(sc_lo)
        d_hi = d * np.float32(sc_hi)
        dm_lo = dmin * np.float32(m_lo)
        dm_hi = dmin * np.float32(m_hi)
        for l in range(32):
            q = np.int64(src[o + 48 + 32 * c + l])
            qh = np.int64(src[o + 16 + l])
            q_lo = (q & 15) | (((qh >> (2 * c)) & 1) << 4)
            q_hi = (q >> 4) | (((qh >> (2 * c + 1)) & 1) << 4)
            dst[e + 64 * c + l] = d_lo * np.float32(q_lo) - dm_lo
            dst[e + 64 * c + 32 + l] = d_hi * np.float32(q_hi) - dm_hi


# The 8-bit product (llama.cpp's ggml_vec_dot_q5_K_q8_K): as Q4_K's (q4_k.py), with 5-bit q
# (0..31). Per block and row the integer sum over the eight sub-blocks of sc_j * (q_j . x_j)
# is exact (at most 4 chunks * 63 * 4 * 31 * 128 per lane); it is scaled by d * d_x in float,
# and the minimum term dmin * d_x * sum_j m_j * (x sum of sub-block j) subtracted.
# _decode_q8_k gives each scale in both 16-bit halves of its lanes (kquant_products.dpbusd_scaled).
SCALES_DUP16 = True


@njit(inline="always")
def _decode_q8_k(blk):
    """One block, ready for any number of tokens: the 5-bit values as four 64-value vectors
    (chunk c = elements 64c..64c+63 = sub-blocks 2c in dpbusd lanes 0-7 and 2c+1 in lanes
    8-15), the sub-block scales spread to those lanes, the mins beside the x sums (lanes 2j,
    2j+1: sub-block j's two halves of 16). A flat tuple, d and dmin first, as every type."""
    u0 = read_u32(blk, 4)
    u1 = read_u32(blk, 8)
    u2 = read_u32(blk, 12)
    # the twelve scale bytes to scales 0-3 | 4-7 (s0 | s1) and mins (m0 | m1), one per byte
    s0 = u0 & 0x3F3F3F3F
    s1 = (u2 & 0x0F0F0F0F) | (((u0 >> 6) & 0x03030303) << 4)
    m0 = u1 & 0x3F3F3F3F
    m1 = ((u2 >> 4) & 0x0F0F0F0F) | (((u1 >> 6) & 0x03030303) << 4)
    sc = s0 | (s1 << 32)
    return (
        read_f16_fast(blk, 0),
        read_f16_fast(blk, 2),
        q5x64_load(blk, 48, blk, 16, 0),
        q5x64_load(blk, 80, blk, 16, 1),
        q5x64_load(blk, 112, blk, 16, 2),
        q5x64_load(blk, 144, blk, 16, 3),
        i32x16_scale_bytes_dup16(sc, 0),
        i32x16_scale_bytes_dup16(sc, 2),
        i32x16_scale_bytes_dup16(sc, 4),
        i32x16_scale_bytes_dup16(sc, 6),
        i32x16_byte_pairs64(m0 | (m1 << 32)),
    )
