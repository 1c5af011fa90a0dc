"""Q2_K: super-blocks of 256 weights in 84 bytes: u8 scales[16], u8 qs[64], f16 d, f16 dmin.

Element e takes bits 2k..2k+1 (k = (e % 128) // 32) of qs[32 * (e // 128) + e % 32].
Sub-block s = e // 16 has scale scales[s] & 15 and min scales[s] >> 4;
w = d * (sc & 15) * q - dmin * (sc >> 4).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, MATH_FAST, group_of_rows, group_sums, read_f16, read_f16_fast, read_u32
from ._int8 import (
    i32x16_word_bytes16,
    i32x16_word_bytes_quads,
    q2x64_load,
)

BLOCK_ELEMS = 256
BLOCK_BYTES = 84
WEIGHT_DTYPE = np.dtype(np.uint8)


@njit(**MATH_EXACT)
def dequantize_rows(w, row_bytes, rows, n_blocks, out):
    n = n_blocks * 256
    for i in range(rows.size):
        r = rows[i]
        src = w[r * row_bytes : r * row_bytes + n_blocks * 84]
        dst = out[i * n : (i + 1) * n]
        for b in range(n_blocks):
            o = b * 84
            e = b * 256
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


@njit(inline="always")
def split_2bit(byte):
    """The four 2-bit fields of a byte, low first, as float32 (split in float)."""
    q = np.float32(byte)
    q3 = np.floor(q * np.float32(1.0 / 64.0))
    q = q - np.float32(64.0) * q3
    q2 = np.floor(q * np.float32(0.0625))
    q = q - np.float32(16.0) * q2
    q1 = np.floor(q * np.float32(0.25))
    q0 = q - np.float32(4.0) * q1
    return q0, q1, q2, q3


@njit(inline="always")
def _q2_dot(byte, c0, x0, c1, x1, c2, x2, c3, x3):
    q0, q1, q2, q3 = split_2bit(byte)
    return (c0 * q0) * x0 + (c1 * q1) * x1 + (c2 * q2) * x2 + (c3 * q3) * x3


@njit(inline="always")
def _scales(blk, h, half, xsb):
    """The four sub-block scales of one 16-lane step, and their part of sum(min * sum(x))."""
    s = 8 * h + half
    q0 = np.int64(blk[s])
    q1 = np.int64(blk[s + 2])
    q2 = np.int64(blk[s + 4])
    q3 = np.int64(blk[s + 6])
    m = (
        np.float32(q0 >> 4) * xsb[s]
        + np.float32(q1 >> 4) * xsb[s + 2]
        + np.float32(q2 >> 4) * xsb[s + 4]
        + np.float32(q3 >> 4) * xsb[s + 6]
    )
    return np.float32(q0 & 15), np.float32(q1 & 15), np.float32(q2 & 15), np.float32(q3 & 15), m


@njit(parallel=True, **MATH_FAST)
def matmul(w, n_out, n_in, x, n_tok, out):
    nb = n_in // 256
    rb = nb * 84
    n16 = n_in // 16
    xs = group_sums(x, n_tok, n_in, 16)
    for g in prange((n_out + 3) // 4):
        r0, r1, r2, r3 = group_of_rows(g, n_out)
        w0 = w[r0 * rb : (r0 + 1) * rb]
        w1 = w[r1 * rb : (r1 + 1) * rb]
        w2 = w[r2 * rb : (r2 + 1) * rb]
        w3 = w[r3 * rb : (r3 + 1) * rb]
        for t in range(n_tok):
            xt = x[t * n_in : (t + 1) * n_in]
            xst = xs[t * n16 : (t + 1) * n16]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for b in range(nb):
                o = b * 84
                v0 = w0[o : o + 84]
                v1 = w1[o : o + 84]
                v2 = w2[o : o + 84]
                v3 = w3[o : o + 84]
                xb = xt[b * 256 : (b + 1) * 256]
                xsb = xst[b * 16 : (b + 1) * 16]
                s0 = s1 = s2 = s3 = np.float32(0.0)
                m0 = m1 = m2 = m3 = np.float32(0.0)
                for h in range(2):
                    for half in range(2):
                        c00, c01, c02, c03, mm0 = _scales(v0, h, half, xsb)
                        c10, c11, c12, c13, mm1 = _scales(v1, h, half, xsb)
                        c20, c21, c22, c23, mm2 = _scales(v2, h, half, xsb)
                        c30, c31, c32, c33, mm3 = _scales(v3, h, half, xsb)
                        m0 += mm0
                        m1 += mm1
                        m2 += mm2
                        m3 += mm3
                        qs = 16 + 32 * h + 16 * half
                        xe = 128 * h + 16 * half
                        for l in range(16):
                            x0 = xb[xe + l]
                            x1 = xb[xe + 32 + l]
                            x2 = xb[xe + 64 + l]
                            x3 = xb[xe + 96 + l]
                            s0 += _q2_dot(v0[qs + l], c00, x0, c01, x1, c02, x2, c03, x3)
                            s1 += _q2_dot(v1[qs + l], c10, x0, c11, x1, c12, x2, c13, x3)
                            s2 += _q2_dot(v2[qs + l], c20, x0, c21, x1, c22, x2, c23, x3)
                            s3 += _q2_dot(v3[qs + l], c30, x0, c31, x1, c32, x2, c33, x3)
                a0 += read_f16_fast(v0, 80) * s0 - read_f16_fast(v0, 82) * m0
                a1 += read_f16_fast(v1, 80) * s1 - read_f16_fast(v1, 82) * m1
                a2 += read_f16_fast(v2, 80) * s2 - read_f16_fast(v2, 82) * m2
                a3 += read_f16_fast(v3, 80) * s3 - read_f16_fast(v3, 82) * m3
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = a0
            ot[r1] = a1
            ot[r2] = a2
            ot[r3] = a3


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
