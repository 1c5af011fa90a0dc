"""Q4_1: blocks of 32 weights in 20 bytes: f16 d, f16 m, u8 qs[16].

Element j < 16 is the low nibble of qs[j], element j + 16 the high nibble; w = d * q + m.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, MATH_FAST, group_of_rows, group_sums, read_f16, read_f16_fast
from ._int8 import (
    dpbusd,
    i32x16_load,
    i32x16_nibbles,
    i32x16_to_f32,
    i32x16_zero,
    rows16_offsets,
    store_rows16,
    sum_lanes8,
    transpose_words16,
    u8x64_splat_word,
)
from ._simd import vadd, vfma, vload, vload_half_pairs16, vmul, vsplat, vstore
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


# The exact Q4_1 x Q8_1 product (llama.cpp's ggml_vec_dot_q4_1_q8_1, AVX2/AVX-512 path).
# Per output element (row r, token t), llama.cpp keeps eight float lanes; for each block b in
# turn, lane l gets acc[l] = fma(d_w * d_x, S_l, acc[l]), where S_l is the integer sum of the
# products of elements 4l..4l+3 (l < 4: low nibbles, elements 0..15; l >= 4: high nibbles,
# elements 16..31) with the int8 activations. At the end:
# ((acc4 + acc0) + (acc6 + acc2)) + ((acc5 + acc1) + (acc7 + acc3)) + sum_b m_b * s_b, the
# last sum taken block by block from 0 with separate multiply and add.
#
# The kernel keeps exactly that order per element and vectorizes across 16 weight rows (one
# lane per row): each block's sixteen rows are turned word-wise (transpose_words16: lane r of
# vector k = bytes 4k..4k+3 of row r) and dpbusd gives llama.cpp's integer lane sum S_l of
# all 16 rows in one instruction; the decoded block is reused for every token. One kernel for
# any number of tokens, so a token's result never depends on the batch it came in (an
# earlier float kernel for batches of 9+ gave the same bits but ran about 2x slower).
_ROWS = 16


@njit(parallel=True, **MATH_EXACT)
def matvec_q8_1(w, n_out, n_in, xq, xd, xs, n_tok, out):
    """out = W·x with x given as llama.cpp's Q8_1 blocks: xq the int8 values as bytes (uint8
    view), xd the half scales and xs the half block sums, one per block of 32. Bit for bit
    the result of ggml_vec_dot_q4_1_q8_1 on AVX2/AVX-512 (see above); no fastmath."""
    nb = n_in // 32
    rb = nb * 20
    for g in prange((n_out + _ROWS - 1) // _ROWS):
        rowoff = rows16_offsets(g, n_out, rb)
        words = np.empty(64, dtype=np.int32)  # words[16 k + r]: bytes 4k..4k+3 of row r's qs
        dm = np.empty(32, dtype=np.float32)  # the rows' d, then their m
        acc = np.zeros(n_tok * 128, dtype=np.float32)  # acc[128 t + 16 l + r]: lane l
        msum = np.zeros(n_tok * 16, dtype=np.float32)  # sum_b m_b * s_b
        res = np.empty(_ROWS, dtype=np.float32)
        zero = i32x16_zero()
        for b in range(nb):
            o = b * 20
            vload_half_pairs16(w, rowoff, o, dm)
            transpose_words16(w, rowoff, o + 4, 4, words)
            dw = vload(dm, 0)
            mw = vload(dm, 16)
            for t in range(n_tok):
                xo = t * n_in + b * 32
                d = vmul(dw, vsplat(xd[t * nb + b]))
                a = t * 128
                for k in range(4):  # lanes 0-3: low nibbles (elements 4k..4k+3)
                    s = dpbusd(zero, i32x16_nibbles(i32x16_load(words, 16 * k), 0), u8x64_splat_word(xq, xo + 4 * k))
                    vstore(acc, a + 16 * k, vfma(d, i32x16_to_f32(s), vload(acc, a + 16 * k)))
                for k in range(4):  # lanes 4-7: high nibbles (elements 16 + 4k..)
                    s = dpbusd(zero, i32x16_nibbles(i32x16_load(words, 16 * k), 1), u8x64_splat_word(xq, xo + 16 + 4 * k))
                    vstore(acc, a + 64 + 16 * k, vfma(d, i32x16_to_f32(s), vload(acc, a + 64 + 16 * k)))
                vstore(msum, 16 * t, vadd(vload(msum, 16 * t), vmul(mw, vsplat(xs[t * nb + b]))))
        for t in range(n_tok):
            store_rows16(out, t * n_out, sum_lanes8(acc, t * 128, vload(msum, 16 * t)), g, n_out, res)
