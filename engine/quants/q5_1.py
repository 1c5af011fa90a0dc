"""Q5_1: blocks of 32 weights in 24 bytes: f16 d, f16 m, u8 qh[4], u8 qs[16].

The 5-bit values as in Q5_0; w = d * q + m.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, MATH_FAST, group_of_rows, group_sums, read_f16, read_f16_fast, read_u32
from ._int8 import (
    dpbusd,
    i32x16_load,
    i32x16_to_f32,
    i32x16_zero,
    prefetch_next_group,
    rows16_offsets,
    store_rows16,
    sum_lanes8,
    transpose_words16,
    u8x64_splat_word,
)
from ._simd import vadd, vfma, vload, vload_half_pairs16, vmul, vsplat, vstore
from .q5_0 import _q5_dot, q5_block_values

BLOCK_ELEMS = 32
BLOCK_BYTES = 24
WEIGHT_DTYPE = np.dtype(np.uint8)


@njit(**MATH_EXACT)
def dequantize_rows(w, row_bytes, rows, n_blocks, out):
    n = n_blocks * 32
    for i in range(rows.size):
        r = rows[i]
        src = w[r * row_bytes : r * row_bytes + n_blocks * 24]
        dst = out[i * n : (i + 1) * n]
        for b in range(n_blocks):
            o = b * 24
            e = b * 32
            d = read_f16(src, o)
            m = read_f16(src, o + 2)
            qh = read_u32(src, o + 4)
            for j in range(16):
                q = np.int64(src[o + 8 + j])
                lo = (q & 15) | (((qh >> j) & 1) << 4)
                hi = (q >> 4) | (((qh >> (j + 16)) & 1) << 4)
                dst[e + j] = d * np.float32(lo) + m
                dst[e + 16 + j] = d * np.float32(hi) + m


@njit(**MATH_FAST)
def matmul(w, n_out, n_in, x, n_tok, out):
    matmul_with_sums(w, n_out, n_in, x, group_sums(x, n_tok, n_in, 32), n_tok, out)


@njit(parallel=True, **MATH_FAST)
def matmul_with_sums(w, n_out, n_in, x, xs, n_tok, out):
    """matmul with the block sums of x given: xs[t * (n_in // 32) + b] stands for
    sum(x[t, 32b:32b+32]) in the minimum term m * sum(x). llama.cpp's Q8_1 activations carry
    that sum rounded to half (block_q8_1.s), which `matmul` would compute exactly instead."""
    nb = n_in // 32
    rb = nb * 24
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
                o = b * 24
                v0 = w0[o : o + 24]
                v1 = w1[o : o + 24]
                v2 = w2[o : o + 24]
                v3 = w3[o : o + 24]
                xb = xt[b * 32 : (b + 1) * 32]
                h0 = read_u32(v0, 4)
                h1 = read_u32(v1, 4)
                h2 = read_u32(v2, 4)
                h3 = read_u32(v3, 4)
                s0 = s1 = s2 = s3 = np.float32(0.0)
                for j in range(16):
                    x_lo = xb[j]
                    x_hi = xb[16 + j]
                    s0 += _q5_dot(v0[8 + j], h0, j, x_lo, x_hi)
                    s1 += _q5_dot(v1[8 + j], h1, j, x_lo, x_hi)
                    s2 += _q5_dot(v2[8 + j], h2, j, x_lo, x_hi)
                    s3 += _q5_dot(v3[8 + j], h3, j, x_lo, x_hi)
                xsum = xst[b]
                a0 += read_f16_fast(v0, 0) * s0 + read_f16_fast(v0, 2) * xsum
                a1 += read_f16_fast(v1, 0) * s1 + read_f16_fast(v1, 2) * xsum
                a2 += read_f16_fast(v2, 0) * s2 + read_f16_fast(v2, 2) * xsum
                a3 += read_f16_fast(v3, 0) * s3 + read_f16_fast(v3, 2) * xsum
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = a0
            ot[r1] = a1
            ot[r2] = a2
            ot[r3] = a3


# The exact Q5_1 x Q8_1 product (llama.cpp's ggml_vec_dot_q5_1_q8_1, AVX2/AVX-512): as Q4_1's
# matvec_q8_1 with the fifth bit: per block eight integer lane sums S_l of q * y, each lane
# acc_l = fma(d_w * d_y, S_l, acc_l), block after block; hsum_float_8 of the lanes plus
# sum_b m_b * s_b (separate multiply and add). One lane per row for 16 rows; any batch size.
@njit(parallel=True, **MATH_EXACT)
def matvec_q8_1(w, n_out, n_in, xq, xd, xs, n_tok, out):
    nb = n_in // 32
    rb = nb * 24
    for g in prange((n_out + 15) // 16):
        rowoff = rows16_offsets(g, n_out, rb)
        words = np.empty(64, dtype=np.int32)
        qhw = np.empty(16, dtype=np.int32)
        dm = np.empty(32, dtype=np.float32)
        acc = np.zeros(n_tok * 128, dtype=np.float32)  # acc[128 t + 16 l + r]: lane l
        msum = np.zeros(n_tok * 16, dtype=np.float32)
        res = np.empty(16, dtype=np.float32)
        for b in range(nb):
            prefetch_next_group(w, g, rb, b, 24)
            o = b * 24
            vload_half_pairs16(w, rowoff, o, dm)
            transpose_words16(w, rowoff, o + 4, 1, qhw)
            transpose_words16(w, rowoff, o + 8, 4, words)
            dw = vload(dm, 0)
            mw = vload(dm, 16)
            qv = q5_block_values(words, i32x16_load(qhw, 0))  # the same five-bit values as Q5_0
            for t in range(n_tok):
                xo = t * n_in + b * 32
                d = vmul(dw, vsplat(xd[t * nb + b]))
                a = t * 128
                for l in range(8):
                    s_l = dpbusd(i32x16_zero(), qv[l], u8x64_splat_word(xq, xo + 4 * l))
                    vstore(acc, a + 16 * l, vfma(d, i32x16_to_f32(s_l), vload(acc, a + 16 * l)))
                vstore(msum, 16 * t, vadd(vload(msum, 16 * t), vmul(mw, vsplat(xs[t * nb + b]))))
        for t in range(n_tok):
            store_rows16(out, t * n_out, sum_lanes8(acc, t * 128, vload(msum, 16 * t)), g, n_out, res)
