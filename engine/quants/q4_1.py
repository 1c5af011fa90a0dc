"""Q4_1: blocks of 32 weights in 20 bytes: f16 d, f16 m, u8 qs[16].

Element j < 16 is the low nibble of qs[j], element j + 16 the high nibble; w = d * q + m.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, MATH_FAST, group_of_rows, group_sums, read_f16, read_f16_fast
from ..ggml_math import fma32
from .q4_0 import _nibbles_dot

BLOCK_ELEMS = 32
BLOCK_BYTES = 20
WEIGHT_DTYPE = np.dtype(np.uint8)


@njit(**MATH_EXACT)
def dequantize_rows(w, row_bytes, rows, n_blocks, out):
    n = n_blocks * 32
    for i in range(rows.size):
        r = rows[i]
        src = w[r * row_bytes : r * row_bytes + n_blocks * 20]
        dst = out[i * n : (i + 1) * n]
        for b in range(n_blocks):
            o = b * 20
            e = b * 32
            d = read_f16(src, o)
            m = read_f16(src, o + 2)
            for j in range(16):
                q = src[o + 4 + j]
                dst[e + j] = d * np.float32(q & 15) + m
                dst[e + 16 + j] = d * np.float32(q >> 4) + m


@njit(**MATH_FAST)
def matmul(w, n_out, n_in, x, n_tok, out):
    matmul_with_sums(w, n_out, n_in, x, group_sums(x, n_tok, n_in, 32), n_tok, out)


@njit(parallel=True, **MATH_FAST)
def matmul_with_sums(w, n_out, n_in, x, xs, n_tok, out):
    """matmul with the block sums of x given: xs[t * (n_in // 32) + b] stands for
    sum(x[t, 32b:32b+32]) in the minimum term m * sum(x). llama.cpp's Q8_1 activations carry
    that sum rounded to half (block_q8_1.s), which `matmul` would compute exactly instead."""
    nb = n_in // 32
    rb = nb * 20
    for g in prange((n_out + 3) // 4):
        r0, r1, r2, r3 = group_of_rows(g, n_out)
        w0 = w[r0 * rb : (r0 + 1) * rb]
        w1 = w[r1 * rb : (r1 + 1) * rb]
        w2 = w[r2 * rb : (r2 + 1) * rb]
        w3 = w[r3 * rb : (r3 + 1) * rb]
        for t in range(n_tok):
            xt = x[t * n_in : (t + 1) * n_in]
            xst = xs[t * nb : (t + 1) * nb]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for b in range(nb):
                o = b * 20
                v0 = w0[o : o + 20]
                v1 = w1[o : o + 20]
                v2 = w2[o : o + 20]
                v3 = w3[o : o + 20]
                xb = xt[b * 32 : (b + 1) * 32]
                s0 = s1 = s2 = s3 = np.float32(0.0)
                for j in range(16):
                    x_lo = xb[j]
                    x_hi = xb[16 + j]
                    s0 += _nibbles_dot(v0[4 + j], x_lo, x_hi)
                    s1 += _nibbles_dot(v1[4 + j], x_lo, x_hi)
                    s2 += _nibbles_dot(v2[4 + j], x_lo, x_hi)
                    s3 += _nibbles_dot(v3[4 + j], x_lo, x_hi)
                xsum = xst[b]  # sum((d q + m) x) = d sum(q x) + m sum(x)
                a0 += read_f16_fast(v0, 0) * s0 + read_f16_fast(v0, 2) * xsum
                a1 += read_f16_fast(v1, 0) * s1 + read_f16_fast(v1, 2) * xsum
                a2 += read_f16_fast(v2, 0) * s2 + read_f16_fast(v2, 2) * xsum
                a3 += read_f16_fast(v3, 0) * s3 + read_f16_fast(v3, 2) * xsum
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = a0
            ot[r1] = a1
            ot[r2] = a2
            ot[r3] = a3


@njit(inline="always")
def _block_lanes(v, xqb, d0d1, acc):
    """One block of ggml_vec_dot_q4_1_q8_1 (AVX2): eight int32 lanes, lane l the sum of the
    products of elements 4l..4l+3, each added to its accumulator with a fused multiply-add
    by d_w * d_x. The lane sums are integers below 2**24, exact in float32 in any order."""
    for l in range(4):
        s_lo = np.float32(0.0)
        s_hi = np.float32(0.0)
        for k in range(4):
            q = np.float32(v[4 + 4 * l + k])
            hi = np.floor(q * np.float32(0.0625))
            s_lo += (q - np.float32(16.0) * hi) * xqb[4 * l + k]
            s_hi += hi * xqb[16 + 4 * l + k]
        acc[l] = fma32(d0d1, s_lo, acc[l])
        acc[4 + l] = fma32(d0d1, s_hi, acc[4 + l])


@njit(**MATH_EXACT)
def _finish(acc, w_row, xs_tok, nb):
    """hsum_float_8(acc) + Σ_b m_b · s_b, summed in llama.cpp's order (kept out of the
    fastmath kernel: these float sums must not be re-associated)."""
    m = np.float32(0.0)
    for b in range(nb):
        m += read_f16_fast(w_row, b * 20 + 2) * xs_tok[b]
    r0 = acc[4] + acc[0]
    r1 = acc[5] + acc[1]
    r2 = acc[6] + acc[2]
    r3 = acc[7] + acc[3]
    return ((r0 + r2) + (r1 + r3)) + m


@njit(parallel=True, **MATH_FAST)
def matmul_q8_1(w, n_out, n_in, xq, xd, xs, n_tok, out):
    """out = W·x with x given as llama.cpp's Q8_1 blocks: xq the int8 values (as float32),
    xd the half scales and xs the half block sums, one per block of 32. The arithmetic of
    ggml_vec_dot_q4_1_q8_1 on AVX2/AVX-512, so that the result matches llama.cpp's bit for
    bit: see _block_lanes and _finish (fastmath only re-associates exact integer sums)."""
    nb = n_in // 32
    rb = nb * 20
    for g in prange((n_out + 3) // 4):
        r0, r1, r2, r3 = group_of_rows(g, n_out)
        w0 = w[r0 * rb : (r0 + 1) * rb]
        w1 = w[r1 * rb : (r1 + 1) * rb]
        w2 = w[r2 * rb : (r2 + 1) * rb]
        w3 = w[r3 * rb : (r3 + 1) * rb]
        acc0 = np.empty(8, dtype=np.float32)
        acc1 = np.empty(8, dtype=np.float32)
        acc2 = np.empty(8, dtype=np.float32)
        acc3 = np.empty(8, dtype=np.float32)
        for t in range(n_tok):
            xt = xq[t * n_in : (t + 1) * n_in]
            xdt = xd[t * nb : (t + 1) * nb]
            xst = xs[t * nb : (t + 1) * nb]
            acc0[:] = 0.0
            acc1[:] = 0.0
            acc2[:] = 0.0
            acc3[:] = 0.0
            for b in range(nb):
                o = b * 20
                v0 = w0[o : o + 20]
                v1 = w1[o : o + 20]
                v2 = w2[o : o + 20]
                v3 = w3[o : o + 20]
                xqb = xt[b * 32 : (b + 1) * 32]
                dy = xdt[b]
                _block_lanes(v0, xqb, read_f16_fast(v0, 0) * dy, acc0)
                _block_lanes(v1, xqb, read_f16_fast(v1, 0) * dy, acc1)
                _block_lanes(v2, xqb, read_f16_fast(v2, 0) * dy, acc2)
                _block_lanes(v3, xqb, read_f16_fast(v3, 0) * dy, acc3)
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = _finish(acc0, w0, xst, nb)
            ot[r1] = _finish(acc1, w1, xst, nb)
            ot[r2] = _finish(acc2, w2, xst, nb)
            ot[r3] = _finish(acc3, w3, xst, nb)
