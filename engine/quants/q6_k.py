"""Q6_K: super-blocks of 256 weights in 210 bytes: u8 ql[128], u8 qh[64], i8 scales[16], f16 d.

Two halves h of 128; with L = ql[64h:], H = qh[32h:] and l < 32, element 128h + l takes
the low nibble of L[l], +32 the low nibble of L[l+32], +64 the high nibble of L[l], +96
the high nibble of L[l+32]; their bits 4-5 are bits 0-1, 2-3, 4-5, 6-7 of H[l].
w = d * scales[e // 16] * (q - 32).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, MATH_FAST, group_of_rows, group_sums, read_f16, read_f16_fast
from ._int8 import (
    i32x16_load_s8,
    i32x16_load_s8_quads,
    q6x64_load,
)

BLOCK_ELEMS = 256
BLOCK_BYTES = 210
WEIGHT_DTYPE = np.dtype(np.uint8)


@njit(inline="always")
def _scale(buf, i):
    """The signed 8-bit scale at buf[i] (buf is uint8)."""
    s = np.int64(buf[i])
    return s - 256 if s >= 128 else s


@njit(**MATH_EXACT)
def dequantize_rows(w, row_bytes, rows, n_blocks, out):
    n = n_blocks * 256
    for i in range(rows.size):
        r = rows[i]
        src = w[r * row_bytes : r * row_bytes + n_blocks * 210]
        dst = out[i * n : (i + 1) * n]
        for b in range(n_blocks):
            o = b * 210
            e = b * 256
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


@njit(inline="always")
def _q6_dot(L0, L1, H, c0, x0, c1, x1, c2, x2, c3, x3):
    """Sum over the four elements of one (L[l], L[l+32], H[l]) triple of scale * (q+32) * x."""
    a = np.float32(L0)
    a_hi = np.floor(a * np.float32(0.0625))
    a_lo = a - np.float32(16.0) * a_hi
    b = np.float32(L1)
    b_hi = np.floor(b * np.float32(0.0625))
    b_lo = b - np.float32(16.0) * b_hi
    h = np.float32(H)
    h3 = np.floor(h * np.float32(1.0 / 64.0))
    h = h - np.float32(64.0) * h3
    h2 = np.floor(h * np.float32(0.0625))
    h = h - np.float32(16.0) * h2
    h1 = np.floor(h * np.float32(0.25))
    h0 = h - np.float32(4.0) * h1
    q0 = a_lo + np.float32(16.0) * h0
    q1 = b_lo + np.float32(16.0) * h1
    q2 = a_hi + np.float32(16.0) * h2
    q3 = b_hi + np.float32(16.0) * h3
    return (c0 * q0) * x0 + (c1 * q1) * x1 + (c2 * q2) * x2 + (c3 * q3) * x3


@njit(inline="always")
def _scales(blk, h, half, xsb):
    """The four scales used by one 16-lane step, and their part of sum(sc * sum(x))."""
    g = 8 * h + half
    c0 = np.float32(_scale(blk, 192 + g))
    c1 = np.float32(_scale(blk, 192 + g + 2))
    c2 = np.float32(_scale(blk, 192 + g + 4))
    c3 = np.float32(_scale(blk, 192 + g + 6))
    m = c0 * xsb[g] + c1 * xsb[g + 2] + c2 * xsb[g + 4] + c3 * xsb[g + 6]
    return c0, c1, c2, c3, m


@njit(parallel=True, **MATH_FAST)
def matmul(w, n_out, n_in, x, n_tok, out):
    nb = n_in // 256
    rb = nb * 210
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
                o = b * 210
                v0 = w0[o : o + 210]
                v1 = w1[o : o + 210]
                v2 = w2[o : o + 210]
                v3 = w3[o : o + 210]
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
                        ql = 64 * h + 16 * half
                        qh = 128 + 32 * h + 16 * half
                        xe = 128 * h + 16 * half
                        for l in range(16):
                            x0 = xb[xe + l]
                            x1 = xb[xe + 32 + l]
                            x2 = xb[xe + 64 + l]
                            x3 = xb[xe + 96 + l]
                            s0 += _q6_dot(v0[ql + l], v0[ql + 32 + l], v0[qh + l], c00, x0, c01, x1, c02, x2, c03, x3)
                            s1 += _q6_dot(v1[ql + l], v1[ql + 32 + l], v1[qh + l], c10, x0, c11, x1, c12, x2, c13, x3)
                            s2 += _q6_dot(v2[ql + l], v2[ql + 32 + l], v2[qh + l], c20, x0, c21, x1, c22, x2, c23, x3)
                            s3 += _q6_dot(v3[ql + l], v3[ql + 32 + l], v3[qh + l], c30, x0, c31, x1, c32, x2, c33, x3)
                off = np.float32(32.0)  # sum(sc (q - 32) x) = sum(sc q x) - 32 sum(sc sum(x))
                a0 += read_f16_fast(v0, 208) * (s0 - off * m0)
                a1 += read_f16_fast(v1, 208) * (s1 - off * m1)
                a2 += read_f16_fast(v2, 208) * (s2 - off * m2)
                a3 += read_f16_fast(v3, 208) * (s3 - off * m3)
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = a0
            ot[r1] = a1
            ot[r2] = a2
            ot[r3] = a3


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
