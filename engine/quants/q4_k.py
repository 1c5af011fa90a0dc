"""Q4_K: super-blocks of 256 weights in 144 bytes: f16 d, f16 dmin, u8 scales[12], u8 qs[128].

Eight sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed in `scales`
(`scale_min_k4`). Byte qs[32c + l] holds element 64c + l (sub-block 2c) in its low nibble
and element 64c + 32 + l (sub-block 2c + 1) in its high nibble; w = d*sc*q - dmin*m.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, MATH_FAST, group_of_rows, group_sums, read_f16, read_f16_fast, read_u32
from ._int8 import (
    i32x16_byte_pairs64,
    i32x16_scale_bytes_dup16,
    q4x64_load,
)

BLOCK_ELEMS = 256
BLOCK_BYTES = 144
WEIGHT_DTYPE = np.dtype(np.uint8)


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


@njit(**MATH_EXACT)
def dequantize_rows(w, row_bytes, rows, n_blocks, out):
    n = n_blocks * 256
    for i in range(rows.size):
        r = rows[i]
        src = w[r * row_bytes : r * row_bytes + n_blocks * 144]
        dst = out[i * n : (i + 1) * n]
        for b in range(n_blocks):
            o = b * 144
            e = b * 256
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


@njit(inline="always")
def _nibbles_dot_scaled(byte, c_lo, x_lo, c_hi, x_hi):
    q = np.float32(byte)
    hi = np.floor(q * np.float32(0.0625))
    lo = q - np.float32(16.0) * hi
    return (c_lo * lo) * x_lo + (c_hi * hi) * x_hi


@njit(inline="always")
def _scales_mins(blk, c, xsb):
    """Sub-block scales of chunk c as float32, and the min term sum(m * sum(x)) of both."""
    sc_lo, m_lo = scale_min_k4(blk, 4, 2 * c)
    sc_hi, m_hi = scale_min_k4(blk, 4, 2 * c + 1)
    mins = np.float32(m_lo) * xsb[2 * c] + np.float32(m_hi) * xsb[2 * c + 1]
    return np.float32(sc_lo), np.float32(sc_hi), mins


@njit(parallel=True, **MATH_FAST)
def matmul(w, n_out, n_in, x, n_tok, out):
    nb = n_in // 256
    rb = nb * 144
    n32 = n_in // 32
    xs = group_sums(x, n_tok, n_in, 32)
    for g in prange((n_out + 3) // 4):
        r0, r1, r2, r3 = group_of_rows(g, n_out)
        w0 = w[r0 * rb : (r0 + 1) * rb]
        w1 = w[r1 * rb : (r1 + 1) * rb]
        w2 = w[r2 * rb : (r2 + 1) * rb]
        w3 = w[r3 * rb : (r3 + 1) * rb]
        for t in range(n_tok):
            xt = x[t * n_in : (t + 1) * n_in]
            xst = xs[t * n32 : (t + 1) * n32]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for b in range(nb):
                o = b * 144
                v0 = w0[o : o + 144]
                v1 = w1[o : o + 144]
                v2 = w2[o : o + 144]
                v3 = w3[o : o + 144]
                xb = xt[b * 256 : (b + 1) * 256]
                xsb = xst[b * 8 : (b + 1) * 8]
                s0 = s1 = s2 = s3 = np.float32(0.0)
                m0 = m1 = m2 = m3 = np.float32(0.0)
                for c in range(4):
                    lo0, hi0, mm0 = _scales_mins(v0, c, xsb)
                    lo1, hi1, mm1 = _scales_mins(v1, c, xsb)
                    lo2, hi2, mm2 = _scales_mins(v2, c, xsb)
                    lo3, hi3, mm3 = _scales_mins(v3, c, xsb)
                    m0 += mm0
                    m1 += mm1
                    m2 += mm2
                    m3 += mm3
                    q = 16 + 32 * c
                    xe = 64 * c
                    for l in range(32):
                        x_lo = xb[xe + l]
                        x_hi = xb[xe + 32 + l]
                        s0 += _nibbles_dot_scaled(v0[q + l], lo0, x_lo, hi0, x_hi)
                        s1 += _nibbles_dot_scaled(v1[q + l], lo1, x_lo, hi1, x_hi)
                        s2 += _nibbles_dot_scaled(v2[q + l], lo2, x_lo, hi2, x_hi)
                        s3 += _nibbles_dot_scaled(v3[q + l], lo3, x_lo, hi3, x_hi)
                a0 += read_f16_fast(v0, 0) * s0 - read_f16_fast(v0, 2) * m0
                a1 += read_f16_fast(v1, 0) * s1 - read_f16_fast(v1, 2) * m1
                a2 += read_f16_fast(v2, 0) * s2 - read_f16_fast(v2, 2) * m2
                a3 += read_f16_fast(v3, 0) * s3 - read_f16_fast(v3, 2) * m3
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = a0
            ot[r1] = a1
            ot[r2] = a2
            ot[r3] = a3


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
