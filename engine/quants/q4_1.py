"""Q4_1: blocks of 32 weights in 20 bytes: f16 d, f16 m, u8 qs[16].

Element j < 16 is the low nibble of qs[j], element j + 16 the high nibble; w = d * q + m.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, block_shape, read_f16
from ._int8 import (
    dpbusd,
    i32x16_load,
    i32x16_nibbles,
    i32x16_to_f32,
    i32x16_zero,
    prefetch_next_group,
    rows16_offsets,
    store_rows16,
    transpose_words16,
    u8x64_splat_word,
)
from ._simd import vadd, vfma, vload, vload_half_pairs16, vmul, vsplat

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q4_1")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o)
    m = read_f16(src, o + 2)
    for j in range(16):
        q = src[o + 4 + j]
        dst[e + j] = d * np.float32(q & 15) + m
        dst[e + 16 + j] = d * np.float32(q >> 4) + m


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


@njit(inline="always")
def _token_lanes(nib, d, a, xq, xo):
    """Lane vectors a (a tuple of 8) after one block of one token: a[l] = fma(d, S_l, a[l])
    with S_l the integer sum of elements 4l..4l+3 (nib: the block's 8 nibble vectors)."""
    zero = i32x16_zero()
    return (
        vfma(d, i32x16_to_f32(dpbusd(zero, nib[0], u8x64_splat_word(xq, xo))), a[0]),
        vfma(d, i32x16_to_f32(dpbusd(zero, nib[1], u8x64_splat_word(xq, xo + 4))), a[1]),
        vfma(d, i32x16_to_f32(dpbusd(zero, nib[2], u8x64_splat_word(xq, xo + 8))), a[2]),
        vfma(d, i32x16_to_f32(dpbusd(zero, nib[3], u8x64_splat_word(xq, xo + 12))), a[3]),
        vfma(d, i32x16_to_f32(dpbusd(zero, nib[4], u8x64_splat_word(xq, xo + 16))), a[4]),
        vfma(d, i32x16_to_f32(dpbusd(zero, nib[5], u8x64_splat_word(xq, xo + 20))), a[5]),
        vfma(d, i32x16_to_f32(dpbusd(zero, nib[6], u8x64_splat_word(xq, xo + 24))), a[6]),
        vfma(d, i32x16_to_f32(dpbusd(zero, nib[7], u8x64_splat_word(xq, xo + 28))), a[7]),
    )


@njit(inline="always")
def _lanes_total(a, msum):
    """sum_lanes8 of lane vectors held in registers."""
    return vadd(vadd(vadd(vadd(a[4], a[0]), vadd(a[6], a[2])), vadd(vadd(a[5], a[1]), vadd(a[7], a[3]))), msum)


# Tokens per inner step: a token's eight lane vectors and its minimum-term sum stay in
# registers over the row group's blocks (nine of the 32 vector registers per token).
TILE = 2


@njit(parallel=True, **MATH_EXACT)
def matvec_q8_1(w, n_out, n_in, xq, xd, xs, n_tok, out):
    """out = W·x with x given as llama.cpp's Q8_1 blocks: xq the int8 values as bytes (uint8
    view), xd the half scales and xs the half block sums, one per block of 32. Bit for bit
    the result of ggml_vec_dot_q4_1_q8_1 on AVX2/AVX-512 (see above); no fastmath.

    The group's blocks are turned once (words: 64 int32 per block, dm: 32 floats) and then
    read by each tile of TILE tokens, whose running lanes stay in registers."""
    nb = n_in // 32
    rb = nb * 20
    for g in prange((n_out + _ROWS - 1) // _ROWS):
        rowoff = rows16_offsets(g, n_out, rb)
        words = np.empty(64 * nb, dtype=np.int32)  # words[64 b + 16 k + r]: bytes 4k..4k+3 of row r's qs
        dm = np.empty(32 * nb, dtype=np.float32)  # block b: the rows' d, then their m
        res = np.empty(_ROWS, dtype=np.float32)
        for b in range(nb):
            prefetch_next_group(w, g, rb, b, 20)
            vload_half_pairs16(w, rowoff, b * 20, dm[32 * b : 32 * b + 32])
            transpose_words16(w, rowoff, b * 20 + 4, 4, words[64 * b : 64 * b + 64])
        z = vsplat(np.float32(0.0))
        for t0 in range(0, n_tok, TILE):
            two = t0 + 1 < n_tok
            a = (z, z, z, z, z, z, z, z)
            c = (z, z, z, z, z, z, z, z)
            ma = z
            mc = z
            for b in range(nb):
                dw = vload(dm, 32 * b)
                mw = vload(dm, 32 * b + 16)
                w0 = i32x16_load(words, 64 * b)
                w1 = i32x16_load(words, 64 * b + 16)
                w2 = i32x16_load(words, 64 * b + 32)
                w3 = i32x16_load(words, 64 * b + 48)
                nib = (i32x16_nibbles(w0, 0), i32x16_nibbles(w1, 0), i32x16_nibbles(w2, 0), i32x16_nibbles(w3, 0),
                       i32x16_nibbles(w0, 1), i32x16_nibbles(w1, 1), i32x16_nibbles(w2, 1), i32x16_nibbles(w3, 1))
                a = _token_lanes(nib, vmul(dw, vsplat(xd[t0 * nb + b])), a, xq, t0 * n_in + b * 32)
                ma = vadd(ma, vmul(mw, vsplat(xs[t0 * nb + b])))
                if two:
                    c = _token_lanes(nib, vmul(dw, vsplat(xd[(t0 + 1) * nb + b])), c, xq, (t0 + 1) * n_in + b * 32)
                    mc = vadd(mc, vmul(mw, vsplat(xs[(t0 + 1) * nb + b])))
            store_rows16(out, t0 * n_out, _lanes_total(a, ma), g, n_out, res)
            if two:
                store_rows16(out, (t0 + 1) * n_out, _lanes_total(c, mc), g, n_out, res)
