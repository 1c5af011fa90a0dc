"""Q8_0: blocks of 32 weights in 34 bytes: f16 d, i8 qs[32]; w = d * q.

The kernels read the bytes as int8 (the scale's two bytes are masked back to unsigned).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, block_shape, read_f16
from ._int8 import (
    dpbusd,
    i32x16_flip_signs,
    i32x16_load,
    i32x16_splat,
    i32x16_to_f32,
    int8_group_sums,
    prefetch_next_group,
    rows16_offsets,
    store_rows16,
    transpose_words16,
    u8x64_splat_word,
)
from ._simd import vfma, vload, vload_half_pairs16, vmul, vsplat

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q8_0")
WEIGHT_DTYPE = np.dtype(np.int8)


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o)
    for j in range(32):
        dst[e + j] = np.float32(src[o + 2 + j]) * d


# The 8-bit product: per row and block the exact integer sum S of q * y, then
# acc = fma(S, d_w * d_y, acc), block after block, as the Q4_0 kernel (which reproduces
# llama.cpp bit for bit). For Q8_0 files llama.cpp's logits differ from ours by ~1.5e-3
# relative RMS (tests/test_model_logits.py) whichever order we take: its Q8_0 path rounds
# somewhere else too (not identified). One lane per row for 16 rows (block rows turned
# word-wise); the signed weights go in as q + 128 with 128 * sum(y) subtracted.
@njit(inline="always")
def _token_step(q, dw, acc, xq, xd, ysum, t, b, n_in, nb):
    """acc after block b of token t: fma(S, d_w d_y, acc), S the exact integer sum."""
    xo = t * n_in + b * 32
    s = i32x16_splat(-128 * ysum[t * nb + b])
    s = dpbusd(s, q[0], u8x64_splat_word(xq, xo))
    s = dpbusd(s, q[1], u8x64_splat_word(xq, xo + 4))
    s = dpbusd(s, q[2], u8x64_splat_word(xq, xo + 8))
    s = dpbusd(s, q[3], u8x64_splat_word(xq, xo + 12))
    s = dpbusd(s, q[4], u8x64_splat_word(xq, xo + 16))
    s = dpbusd(s, q[5], u8x64_splat_word(xq, xo + 20))
    s = dpbusd(s, q[6], u8x64_splat_word(xq, xo + 24))
    s = dpbusd(s, q[7], u8x64_splat_word(xq, xo + 28))
    return vfma(i32x16_to_f32(s), vmul(dw, vsplat(xd[t * nb + b])), acc)


@njit(inline="always")
def _block_q(words, o):
    return (i32x16_flip_signs(i32x16_load(words, o)), i32x16_flip_signs(i32x16_load(words, o + 16)),
            i32x16_flip_signs(i32x16_load(words, o + 32)), i32x16_flip_signs(i32x16_load(words, o + 48)),
            i32x16_flip_signs(i32x16_load(words, o + 64)), i32x16_flip_signs(i32x16_load(words, o + 80)),
            i32x16_flip_signs(i32x16_load(words, o + 96)), i32x16_flip_signs(i32x16_load(words, o + 112)))


# Batches of more than TILE tokens turn the group's blocks once and go through them tile by
# tile, a tile's running lanes in registers (1.1-1.35x at 4-64 tokens); fewer tokens turn
# each block as they go (a separate pass over the turned blocks cost 10% at 1-2 tokens).
TILE = 4


@njit(parallel=True, **MATH_EXACT)
def matmul_q8_0(w, n_out, n_in, xq, xd, n_tok, out):
    nb = n_in // 32
    rb = nb * 34
    ysum = int8_group_sums(xq, 32)
    z = vsplat(np.float32(0.0))
    for g in prange((n_out + 15) // 16):
        rowoff = rows16_offsets(g, n_out, rb)
        res = np.empty(16, dtype=np.float32)
        if n_tok <= 2:
            words = np.empty(128, dtype=np.int32)
            dm = np.empty(32, dtype=np.float32)
            a0 = a1 = z
            for b in range(nb):
                prefetch_next_group(w, g, rb, b, 34)
                vload_half_pairs16(w, rowoff, b * 34, dm)  # d (the second half is qs bytes: unused)
                transpose_words16(w, rowoff, b * 34 + 2, 8, words)
                dw = vload(dm, 0)
                q = _block_q(words, 0)
                a0 = _token_step(q, dw, a0, xq, xd, ysum, 0, b, n_in, nb)
                if n_tok > 1:
                    a1 = _token_step(q, dw, a1, xq, xd, ysum, 1, b, n_in, nb)
            store_rows16(out, 0, a0, g, n_out, res)
            if n_tok > 1:
                store_rows16(out, n_out, a1, g, n_out, res)
            continue
        words = np.empty(128 * nb, dtype=np.int32)  # block b: words[128 b + 16 k + r]
        dm = np.empty(32 * nb, dtype=np.float32)
        for b in range(nb):
            prefetch_next_group(w, g, rb, b, 34)
            vload_half_pairs16(w, rowoff, b * 34, dm[32 * b : 32 * b + 32])
            transpose_words16(w, rowoff, b * 34 + 2, 8, words[128 * b : 128 * b + 128])
        for t0 in range(0, n_tok, TILE):
            nt = min(TILE, n_tok - t0)
            a0 = a1 = a2 = a3 = z
            for b in range(nb):
                dw = vload(dm, 32 * b)
                q = _block_q(words, 128 * b)
                a0 = _token_step(q, dw, a0, xq, xd, ysum, t0, b, n_in, nb)
                if nt > 1:
                    a1 = _token_step(q, dw, a1, xq, xd, ysum, t0 + 1, b, n_in, nb)
                if nt > 2:
                    a2 = _token_step(q, dw, a2, xq, xd, ysum, t0 + 2, b, n_in, nb)
                if nt > 3:
                    a3 = _token_step(q, dw, a3, xq, xd, ysum, t0 + 3, b, n_in, nb)
            store_rows16(out, t0 * n_out, a0, g, n_out, res)
            if nt > 1:
                store_rows16(out, (t0 + 1) * n_out, a1, g, n_out, res)
            if nt > 2:
                store_rows16(out, (t0 + 2) * n_out, a2, g, n_out, res)
            if nt > 3:
                store_rows16(out, (t0 + 3) * n_out, a3, g, n_out, res)
