"""Q4_K: super-blocks of 256 weights in 144 bytes: f16 d, f16 dmin, u8 scales[12], u8 qs[128].

Eight sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed in `scales`
(`scale_min_k4`). Byte qs[32c + l] holds element 64c + l (sub-block 2c) in its low nibble
and element 64c + 32 + l (sub-block 2c + 1) in its high nibble; w = d*sc*q - dmin*m.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, read_f16, read_f16_fast, read_u32
from ._int8 import (
    i32x16_byte_pairs64,
    i32x16_scale_bytes_dup16,
    q4x64_load,
)

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q4_K")


@njit(inline="always")
def scale_min_k4(buf, o, j):
    """Scale and min (0..63) of sub-block j from the 12 packed bytes at buf[o:] (Q4_K, Q5_K)."""
    if j < 4:
        sc = np.int64(buf[o + j]) & 63
        m = np.int64(buf[o + j + 4]) & 63
    else:
        sc = (np.int64(buf[o + j + 4]) & 15) | ((np.int64(buf[o + j - 4]) >> 6) << 4)
        m = (np.int64(buf[o + j + 4]) >> 4) | ((np.int64(buf[o + j]) >> 6) << 4)
    return sc, m


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
            q = src[o + 16 + 32 * c + l]
            dst[e + 64 * c + l] = d_lo * np.float32(q & 15) - dm_lo
            dst[e + 64 * c + 32 + l] = d_hi * np.float32(q >> 4) - dm_hi


# The 8-bit product (llama.cpp's ggml_vec_dot_q4_K_q8_K): activations as Q8_K blocks (int8
# values xq, a float scale xd per 256, int32 sums xbs per 16). Per block and row the integer
# sum over the eight sub-blocks of sc_j * (q_j . x_j) is exact; it is scaled by d * d_x in
# float, and the minimum term dmin * d_x * sum_j m_j * (x sum of sub-block j) subtracted.
# _decode_q8_k gives each scale in both 16-bit halves of its lanes (kquant_products.dpbusd_scaled).
SCALES_DUP16 = True


@njit(inline="always")
def _decode_q8_k(blk):
    """One block, ready for any number of tokens: the nibbles as four 64-value vectors, the
    sub-block scales as lane vectors matching dpbusd's lanes, the mins beside the x sums."""
    u0 = read_u32(blk, 4)
    u1 = read_u32(blk, 8)
    u2 = read_u32(blk, 12)
    # the twelve scale bytes to scales 0-3 | 4-7 (s0 | s1) and mins (m0 | m1), one per byte
    s0 = u0 & 0x3F3F3F3F
    s1 = (u2 & 0x0F0F0F0F) | (((u0 >> 6) & 0x03030303) << 4)
    m0 = u1 & 0x3F3F3F3F
    m1 = ((u2 >> 4) & 0x0F0F0F0F) | (((u1 >> 6) & 0x03030303) << 4)
    sc = s0 | (s1 << 32)
    # chunk c (elements 64c..64c+63) = sub-blocks 2c (dpbusd lanes 0-7) and 2c+1 (lanes 8-15)
    # x sums come per 16 values: lanes 2j, 2j+1 of the mins hold sub-block j's two halves.
    # A flat tuple (numba's parfor analysis rejects nested ones): d, dmin first, as every type.
    return (
        read_f16_fast(blk, 0),
        read_f16_fast(blk, 2),
        q4x64_load(blk, 16),
        q4x64_load(blk, 48),
        q4x64_load(blk, 80),
        q4x64_load(blk, 112),
        i32x16_scale_bytes_dup16(sc, 0),
        i32x16_scale_bytes_dup16(sc, 2),
        i32x16_scale_bytes_dup16(sc, 4),
        i32x16_scale_bytes_dup16(sc, 6),
        i32x16_byte_pairs64(m0 | (m1 << 32)),
    )
