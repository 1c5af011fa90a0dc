"""Q4_0: blocks of 32 weights in 18 bytes: f16 d, u8 qs[16].

Element j < 16 is the low nibble of qs[j], element j + 16 the high nibble; w = d * (q - 8).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, block_shape, read_f16
from ._int8 import (
    dpbusd,
    i32x16_load,
    i32x16_nibbles,
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

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q4_0")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o)
    for j in range(16):
        q = src[o + 2 + j]
        dst[e + j] = d * np.float32(np.int32(q & 15) - 8)
        dst[e + 16 + j] = d * np.float32(np.int32(q >> 4) - 8)


# The 8-bit product as llama.cpp computes it on x86 (its "repacked" Q4_0 kernels,
# ggml_gemv/gemm_q4_0_8x8_q8_0): per row and block the exact integer sum S of (q - 8) * y,
# then acc = fma(S, d_w * d_y, acc), block after block. One lane per row for 16 rows: each
# block's rows are turned word-wise (transpose_words16), so eight dpbusd give S for all 16;
# q - 8 is taken as q with 8 * sum(y) subtracted. Bit for bit llama.cpp's result.
@njit(inline="always")
def _token_step(nib, dw, acc, xq, xd, ysum, t, b, n_in, nb):
    """acc after block b of token t: fma(S, d_w d_y, acc), S the exact integer sum."""
    xo = t * n_in + b * 32
    s = i32x16_splat(-8 * ysum[t * nb + b])
    s = dpbusd(s, nib[0], u8x64_splat_word(xq, xo))
    s = dpbusd(s, nib[1], u8x64_splat_word(xq, xo + 4))
    s = dpbusd(s, nib[2], u8x64_splat_word(xq, xo + 8))
    s = dpbusd(s, nib[3], u8x64_splat_word(xq, xo + 12))
    s = dpbusd(s, nib[4], u8x64_splat_word(xq, xo + 16))
    s = dpbusd(s, nib[5], u8x64_splat_word(xq, xo + 20))
    s = dpbusd(s, nib[6], u8x64_splat_word(xq, xo + 24))
    s = dpbusd(s, nib[7], u8x64_splat_word(xq, xo + 28))
    return vfma(i32x16_to_f32(s), vmul(dw, vsplat(xd[t * nb + b])), acc)


@njit(inline="always")
def _block_nibbles(words, o):
    w0 = i32x16_load(words, o)
    w1 = i32x16_load(words, o + 16)
    w2 = i32x16_load(words, o + 32)
    w3 = i32x16_load(words, o + 48)
    return (i32x16_nibbles(w0, 0), i32x16_nibbles(w1, 0), i32x16_nibbles(w2, 0), i32x16_nibbles(w3, 0),
            i32x16_nibbles(w0, 1), i32x16_nibbles(w1, 1), i32x16_nibbles(w2, 1), i32x16_nibbles(w3, 1))


# Batches of more than 2 tokens turn the group's blocks once and go through them TILE tokens
# at a time, a tile's running lanes in registers; 1-2 tokens turn each block as they go.
TILE = 4


@njit(parallel=True, **MATH_EXACT)
def matmul_q8_0(w, n_out, n_in, xq, xd, n_tok, out):
    nb = n_in // 32
    rb = nb * 18
    ysum = int8_group_sums(xq, 32)
    z = vsplat(np.float32(0.0))
    for g in prange((n_out + 15) // 16):
        rowoff = rows16_offsets(g, n_out, rb)
        res = np.empty(16, dtype=np.float32)
        if n_tok <= 2:
            words = np.empty(64, dtype=np.int32)
            dm = np.empty(32, dtype=np.float32)
            a0 = a1 = z
            for b in range(nb):
                prefetch_next_group(w, g, rb, b, 18)
                vload_half_pairs16(w, rowoff, b * 18, dm)  # d (the second half is qs bytes: unused)
                transpose_words16(w, rowoff, b * 18 + 2, 4, words)
                dw = vload(dm, 0)
                nib = _block_nibbles(words, 0)
                a0 = _token_step(nib, dw, a0, xq, xd, ysum, 0, b, n_in, nb)
                if n_tok > 1:
                    a1 = _token_step(nib, dw, a1, xq, xd, ysum, 1, b, n_in, nb)
            store_rows16(out, 0, a0, g, n_out, res)
            if n_tok > 1:
                store_rows16(out, n_out, a1, g, n_out, res)
            continue
        words = np.empty(64 * nb, dtype=np.int32)  # block b: words[64 b + 16 k + r]
        dm = np.empty(32 * nb, dtype=np.float32)
        for b in range(nb):
            prefetch_next_group(w, g, rb, b, 18)
            vload_half_pairs16(w, rowoff, b * 18, dm[32 * b : 32 * b + 32])
            transpose_words16(w, rowoff, b * 18 + 2, 4, words[64 * b : 64 * b + 64])
        for t0 in range(0, n_tok, TILE):
            nt = min(TILE, n_tok - t0)
            a0 = a1 = a2 = a3 = z
            for b in range(nb):
                dw = vload(dm, 32 * b)
                nib = _block_nibbles(words, 64 * b)
                a0 = _token_step(nib, dw, a0, xq, xd, ysum, t0, b, n_in, nb)
                if nt > 1:
                    a1 = _token_step(nib, dw, a1, xq, xd, ysum, t0 + 1, b, n_in, nb)
                if nt > 2:
                    a2 = _token_step(nib, dw, a2, xq, xd, ysum, t0 + 2, b, n_in, nb)
                if nt > 3:
                    a3 = _token_step(nib, dw, a3, xq, xd, ysum, t0 + 3, b, n_in, nb)
            store_rows16(out, t0 * n_out, a0, g, n_out, res)
            if nt > 1:
                store_rows16(out, (t0 + 1) * n_out, a1, g, n_out, res)
            if nt > 2:
                store_rows16(out, (t0 + 2) * n_out, a2, g, n_out, res)
            if nt > 3:
                store_rows16(out, (t0 + 3) * n_out, a3, g, n_out, res)
