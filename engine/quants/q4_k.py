"""Q4_K: super-blocks of 256 weights in 144 bytes: f16 d, f16 dmin, u8 scales[12], u8 qs[128].

Eight sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed in `scales`
(`scale_min_k4`). Byte qs[32c + l] holds element 64c + l (sub-block 2c) in its low nibble
and element 64c + 32 + l (sub-block 2c + 1) in its high nibble; w = d*sc*q - dmin*m.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, read_f16
from ._int8 import (
    dpwssd_splat,
    dpwssd_splat_sum,
    i32x16_and,
    i32x16_dup16,
    i32x16_load,
    i32x16_lshr,
    i32x16_nibbles,
    i32x16_or,
    i32x16_shl,
    i32x16_store,
    i32x16_to_f32,
    i32x16_zero,
    transpose_words16,
)
from ._simd import vfma, vload_f16, vload_half_pairs16, vmul, vsplat, vstore

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


# The 8-bit product (llama.cpp's ggml_vec_dot_q4_K_q8_K), sixteen rows at once
# (kquant_products.matmul_q8_k_rows16): activations as Q8_K blocks (int8 values, a float
# scale per 256, int32 sums per 16). Per row and block the exact integers
#   S = sum_j sc_j * (q_j . x_j)      M = sum_j m_j * (x sum of sub-block j)
# then acc = fma(S, d d_x, acc) and acc = fma(M, -(dmin d_x), acc), block after block.
#
# Layout: a block's 128 qs bytes are turned word-wise for the 16 rows (transpose_words16):
# vector k (k = 8c + i) holds word k of every row, whose low nibbles are elements
# 64c + 4i .. +3 (sub-block 2c) and high nibbles elements 64c + 32 + 4i .. +3 (sub-block
# 2c + 1). A sub-block is eight such vectors: their byte products with the token's eight
# activation words, summed as 16-bit pairs, are at most 8 * 2 * 15 * 128 = 30720 < 2**15.
ROWS16_WORDS = 32 * 16  # words[16 k + r]: word k of row r's qs
ROWS16_SCALES = 12 * 16  # eight vectors sc_j | sc_j << 16, then four m_2p | m_2p+1 << 16
ROWS16_XSUMS = 4  # per token and block: x sums of sub-blocks 2p, 2p + 1 as 16-bit halves
ROWS16_CHUNKS = 4  # rows16_chunk c = 0..3: sub-blocks 2c and 2c + 1
ROWS16_SCRATCH = 3 * 16  # rows16_prepare's turned scale words
ROWS16_ROW_BY_ROW = False  # one or two tokens: each block turned as it goes (kquant_products)


@njit(inline="always")
def rows16_dm(w, rowoff, o, dm, do):
    """d of the 16 rows' blocks at byte o to dm[do:], dmin to dm[do + 16:]."""
    vload_half_pairs16(w, rowoff, o, dm[do : do + 32])


@njit(inline="always")
def rows16_prepare(w, rowoff, o, words, wo, scales, so, sw):
    """The blocks at byte o of 16 rows (offsets rowoff) made ready for any number of
    tokens: words[wo:] the turned qs, scales[so:] the scale vectors."""
    for c in range(4):
        transpose_words16(w, rowoff, o + 16 + 32 * c, 8, words[wo + 128 * c : wo + 128 * c + 128])
    transpose_words16(w, rowoff, o + 4, 3, sw)  # the twelve scale bytes as three words
    _unpack_scales(sw, 0, scales, so)


@njit(inline="always")
def _unpack_scales(sw, swo, scales, so):
    """scales[so:] the scale vectors from the 16 rows' twelve scale bytes turned into three
    words at sw[swo:]."""
    u0 = i32x16_load(sw, swo)
    u1 = i32x16_load(sw, swo + 16)
    u2 = i32x16_load(sw, swo + 32)
    # scale_min_k4 for all eight sub-blocks at once, one byte per sub-block
    s0 = i32x16_and(u0, 0x3F3F3F3F)
    s1 = i32x16_or(i32x16_and(u2, 0x0F0F0F0F), i32x16_shl(i32x16_and(i32x16_lshr(u0, 6), 0x03030303), 4))
    m0 = i32x16_and(u1, 0x3F3F3F3F)
    m1 = i32x16_or(i32x16_and(i32x16_lshr(u2, 4), 0x0F0F0F0F), i32x16_shl(i32x16_and(i32x16_lshr(u1, 6), 0x03030303), 4))
    i32x16_store(scales, so, i32x16_dup16(i32x16_and(s0, 0xFF)))
    i32x16_store(scales, so + 16, i32x16_dup16(i32x16_and(i32x16_lshr(s0, 8), 0xFF)))
    i32x16_store(scales, so + 32, i32x16_dup16(i32x16_and(i32x16_lshr(s0, 16), 0xFF)))
    i32x16_store(scales, so + 48, i32x16_dup16(i32x16_lshr(s0, 24)))
    i32x16_store(scales, so + 64, i32x16_dup16(i32x16_and(s1, 0xFF)))
    i32x16_store(scales, so + 80, i32x16_dup16(i32x16_and(i32x16_lshr(s1, 8), 0xFF)))
    i32x16_store(scales, so + 96, i32x16_dup16(i32x16_and(i32x16_lshr(s1, 16), 0xFF)))
    i32x16_store(scales, so + 112, i32x16_dup16(i32x16_lshr(s1, 24)))
    i32x16_store(scales, so + 128, _byte_pair(m0, 0))
    i32x16_store(scales, so + 144, _byte_pair(m0, 16))
    i32x16_store(scales, so + 160, _byte_pair(m1, 0))
    i32x16_store(scales, so + 176, _byte_pair(m1, 16))


# Held turned (kquant_products.turn_rows16, done once as the weights are read into memory):
# each block of 16 rows as the 576 int32 words it takes 16 x 144 bytes to store, words
#   [0, 16)   the rows' d as 16 halves, then their dmin as 16 halves
#   [16, 64)  the twelve scale bytes, turned (three words a row: transpose_words16)
#   [64, 576) the 128 qs bytes, turned (32 words a row), as rows16_prepare turns them
# so a token reads each block of 16 rows as one stream and turns nothing (7B w_gate, one
# token: 8.2 -> 11.5 GB/s at one thread, 16.8 -> 22 at two).
TURNED_WORDS = 576
TURNED_QS_AT = 64


@njit(inline="always")
def rows16_turn(w, rowoff, o, t16, t32, at):
    """The blocks at byte o of the 16 rows (offsets rowoff) written turned at t32[at:]
    (t16: the same memory as halves)."""
    for r in range(16):
        b = rowoff[r] + o
        t16[2 * at + r] = np.uint16(w[b]) | (np.uint16(w[b + 1]) << 8)
        t16[2 * at + 16 + r] = np.uint16(w[b + 2]) | (np.uint16(w[b + 3]) << 8)
    transpose_words16(w, rowoff, o + 4, 3, t32[at + 16 : at + 64])
    for c in range(4):
        q = at + TURNED_QS_AT + 128 * c
        transpose_words16(w, rowoff, o + 16 + 32 * c, 8, t32[q : q + 128])


@njit(inline="always")
def rows16_from_turned(t16, t32, at, dm, do, scales, so):
    """A turned block of 16 rows at t32[at:] made ready as rows16_dm and rows16_prepare
    make it; returns where its words start in t32."""
    vstore(dm, do, vload_f16(t16, 2 * at))
    vstore(dm, do + 16, vload_f16(t16, 2 * at + 16))
    _unpack_scales(t32, at + 16, scales, so)
    return at + TURNED_QS_AT


def unturn_rows16(turned: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """The ggml bytes (n_out, row bytes) of a matrix held turned (rows16_turn), for the
    code that reads rows: an embedding lookup, the float product, tests."""
    nb = n_in // BLOCK_ELEMS
    t = np.ascontiguousarray(turned).reshape(-1).view(np.uint32).reshape(n_out // 16, nb, TURNED_WORDS)
    out = np.empty((n_out // 16, 16, nb, BLOCK_BYTES), dtype=np.uint8)
    dm = t[:, :, :16].copy().view(np.uint16)  # (g, b, 32): d of the 16 rows then dmin
    for lo, halves in ((0, dm[:, :, :16]), (2, dm[:, :, 16:])):  # (g, b, r) -> (g, r, b, 2 bytes)
        out[..., lo : lo + 2] = np.ascontiguousarray(halves.transpose(0, 2, 1)).view(np.uint8).reshape(n_out // 16, 16, nb, 2)
    for lo, hi, n_words in ((4, 16, 3), (16, 144, 32)):
        words = t[:, :, 16:64] if n_words == 3 else t[:, :, 64:]
        rows = words.reshape(n_out // 16, nb, n_words, 16).transpose(0, 3, 1, 2)  # (g, r, b, k)
        out[..., lo:hi] = np.ascontiguousarray(rows).view(np.uint8).reshape(n_out // 16, 16, nb, hi - lo)
    return out.reshape(n_out, nb * BLOCK_BYTES)


@njit(inline="always")
def _byte_pair(v, shift):
    """Bytes shift/8 and shift/8 + 1 of each lane as its low and high 16 bits."""
    lo = i32x16_and(i32x16_lshr(v, shift), 0xFF)
    hi = i32x16_and(i32x16_lshr(v, shift + 8), 0xFF)
    return i32x16_or(lo, i32x16_shl(hi, 16))


@njit(inline="always")
def rows16_xsums(xbs, xsums, i):
    """Token-block i's x sums per sub-block of 32, two to a word (|sum| <= 4096)."""
    for p in range(4):
        lo = xbs[i * 16 + 4 * p] + xbs[i * 16 + 4 * p + 1]
        hi = xbs[i * 16 + 4 * p + 2] + xbs[i * 16 + 4 * p + 3]
        xsums[i * 4 + p] = (lo & 0xFFFF) | (hi << 16)


@njit(inline="always")
def rows16_chunk(S0, S1, S2, S3, nt, xq, xo, n_in, scales, so, c, words, wo):
    """S of up to four tokens (activations at xq[xo + t n_in:]) plus sub-blocks 2c and
    2c + 1, the eight words split into nibbles once for all the tokens."""
    v = (i32x16_load(words, wo + 128 * c), i32x16_load(words, wo + 128 * c + 16),
         i32x16_load(words, wo + 128 * c + 32), i32x16_load(words, wo + 128 * c + 48),
         i32x16_load(words, wo + 128 * c + 64), i32x16_load(words, wo + 128 * c + 80),
         i32x16_load(words, wo + 128 * c + 96), i32x16_load(words, wo + 128 * c + 112))
    lo = (i32x16_nibbles(v[0], 0), i32x16_nibbles(v[1], 0), i32x16_nibbles(v[2], 0), i32x16_nibbles(v[3], 0),
          i32x16_nibbles(v[4], 0), i32x16_nibbles(v[5], 0), i32x16_nibbles(v[6], 0), i32x16_nibbles(v[7], 0))
    hi = (i32x16_nibbles(v[0], 1), i32x16_nibbles(v[1], 1), i32x16_nibbles(v[2], 1), i32x16_nibbles(v[3], 1),
          i32x16_nibbles(v[4], 1), i32x16_nibbles(v[5], 1), i32x16_nibbles(v[6], 1), i32x16_nibbles(v[7], 1))
    sc_lo = i32x16_load(scales, so + 32 * c)
    sc_hi = i32x16_load(scales, so + 32 * c + 16)
    o = xo + 64 * c
    R0 = dpwssd_splat_sum(dpwssd_splat_sum(S0, xq, o, sc_lo, lo), xq, o + 32, sc_hi, hi)
    R1, R2, R3 = S1, S2, S3
    if nt > 1:
        R1 = dpwssd_splat_sum(dpwssd_splat_sum(S1, xq, o + n_in, sc_lo, lo), xq, o + n_in + 32, sc_hi, hi)
    if nt > 2:
        R2 = dpwssd_splat_sum(dpwssd_splat_sum(S2, xq, o + 2 * n_in, sc_lo, lo), xq, o + 2 * n_in + 32, sc_hi, hi)
    if nt > 3:
        R3 = dpwssd_splat_sum(dpwssd_splat_sum(S3, xq, o + 3 * n_in, sc_lo, lo), xq, o + 3 * n_in + 32, sc_hi, hi)
    return R0, R1, R2, R3


@njit(inline="always")
def rows16_mins(scales, so, xsums, i):
    """M of the 16 rows for token-block i, from the prepared min pairs."""
    M = dpwssd_splat(i32x16_zero(), i32x16_load(scales, so + 128), xsums, 4 * i)
    M = dpwssd_splat(M, i32x16_load(scales, so + 144), xsums, 4 * i + 1)
    M = dpwssd_splat(M, i32x16_load(scales, so + 160), xsums, 4 * i + 2)
    return dpwssd_splat(M, i32x16_load(scales, so + 176), xsums, 4 * i + 3)


@njit(inline="always")
def rows16_step(acc, S, M, dv, dmv, dx):
    """acc after one block: the two fmas."""
    acc = vfma(i32x16_to_f32(S), vmul(dv, vsplat(dx)), acc)
    return vfma(i32x16_to_f32(M), vmul(dmv, vsplat(-dx)), acc)
