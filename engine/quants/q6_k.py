"""Q6_K: super-blocks of 256 weights in 210 bytes: u8 ql[128], u8 qh[64], i8 scales[16], f16 d.

Two halves h of 128; with L = ql[64h:], H = qh[32h:] and l < 32, element 128h + l takes
the low nibble of L[l], +32 the low nibble of L[l+32], +64 the high nibble of L[l], +96
the high nibble of L[l+32]; their bits 4-5 are bits 0-1, 2-3, 4-5, 6-7 of H[l].
w = d * scales[e // 16] * (q - 32).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, read_f16
from ._int8 import (
    dpbusd_scaled,
    dpwssd,
    dpwssd_splat,
    dpwssd_splat_sum,
    i32x16_and,
    i32x16_ashr,
    i32x16_bytes,
    i32x16_dup16,
    i32x16_load,
    i32x16_lshr,
    i32x16_or,
    i32x16_shl,
    i32x16_store,
    i32x16_sub,
    i32x16_to_f32,
    i32x16_load_s8,
    i32x16_load_s8_quads,
    i32x16_zero,
    q6x64_load,
    transpose_words16,
    u8x64_load,
)
from ._simd import vfma, vload_half_pairs16, vmul, vsplat

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q6_K")


@njit(inline="always")
def _scale(buf, i):
    """The signed 8-bit scale at buf[i] (buf is uint8)."""
    s = np.int64(buf[i])
    return s - 256 if s >= 128 else s


@njit(inline="always")
def dequantize_block(src, o, dst, e):
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


# The 8-bit product (llama.cpp's ggml_vec_dot_q6_K_q8_K), sixteen rows at once
# (kquant_products.matmul_q8_k_rows16): q - 32 with q in 0..63, sixteen sub-blocks of 16
# with signed 8-bit scales. Per row and block the exact integer
#   S = sum_j sc_j * (q_j . x_j) - 32 * sum_j sc_j * (x sum of sub-block j)
# then acc = fma(S, d d_x, acc), block after block.
#
# Layout: the block's 6-bit values are put together once per block of 16 rows, four values
# of a row to a 32-bit lane: vector v holds elements 4v .. 4v + 3 of every row, so
# sub-block j is vectors 4j .. 4j + 3. Their byte products with the token's activations are
# summed two vectors at a time as 16-bit pairs: at most 2 * 2 * 63 * 128 = 32256 < 2**15.
ROWS16_WORDS = 64 * 16  # values[16 v + r]: elements 4v .. 4v + 3 of row r
ROWS16_SCALES = 24 * 16  # sixteen vectors sc_j | sc_j << 16, then eight sc_2p | sc_2p+1 << 16
ROWS16_XSUMS = 8  # per token and block: x sums of sub-blocks 2p, 2p + 1 as 16-bit halves
ROWS16_CHUNKS = 8  # rows16_chunk c = 0..7: sub-blocks 2c and 2c + 1
ROWS16_SCRATCH = 24 * 16  # rows16_prepare's turned words of ql and qh of a half
ROWS16_ROW_BY_ROW = True  # one or two tokens: row by row, rows16_row_sums (see there)


@njit(inline="always")
def rows16_dm(w, rowoff, o, dm, do):
    """d of the 16 rows' blocks at byte o to dm[do + 16:]: the second half of the word at
    206 (the first is scales 14-15, unused), which does not read past the block."""
    vload_half_pairs16(w, rowoff, o + 206, dm[do : do + 32])


@njit(inline="always")
def rows16_prepare(w, rowoff, o, words, wo, scales, so, sw):
    """The blocks at byte o of 16 rows (offsets rowoff) made ready for any number of
    tokens: words[wo:] the 6-bit values, scales[so:] the scale vectors."""
    _prepare_scales(w, rowoff, o, scales, so, sw)
    for h in range(2):
        transpose_words16(w, rowoff, o + 64 * h, 8, sw)  # L[0:32] as words 0-7
        transpose_words16(w, rowoff, o + 64 * h + 32, 8, sw[128:])  # L[32:64]
        transpose_words16(w, rowoff, o + 128 + 32 * h, 8, sw[256:])  # H[0:32]
        for k in range(8):
            lw0 = i32x16_load(sw, 16 * k)
            lw1 = i32x16_load(sw, 128 + 16 * k)
            hw = i32x16_load(sw, 256 + 16 * k)
            v = wo + 16 * (32 * h + k)  # element 128h + 4k: vector 32h + k, then +8 per 32
            i32x16_store(words, v, _six_bits(i32x16_and(lw0, 0x0F0F0F0F), hw, 0))
            i32x16_store(words, v + 128, _six_bits(i32x16_and(lw1, 0x0F0F0F0F), hw, 2))
            i32x16_store(words, v + 256, _six_bits(i32x16_and(i32x16_lshr(lw0, 4), 0x0F0F0F0F), hw, 4))
            i32x16_store(words, v + 384, _six_bits(i32x16_and(i32x16_lshr(lw1, 4), 0x0F0F0F0F), hw, 6))


@njit(inline="always")
def _prepare_scales(w, rowoff, o, scales, so, sw):
    transpose_words16(w, rowoff, o + 192, 4, sw)
    for k in range(4):
        v = i32x16_load(sw, 16 * k)
        for b in range(4):
            sc = i32x16_ashr(i32x16_shl(v, 24 - 8 * b), 24)  # byte 4k + b, sign extended
            i32x16_store(scales, so + 16 * (4 * k + b), i32x16_dup16(sc))
        lo = i32x16_and(i32x16_ashr(i32x16_shl(v, 24), 24), 0xFFFF)
        hi = i32x16_ashr(i32x16_shl(v, 16), 24)
        i32x16_store(scales, so + 256 + 16 * (2 * k), i32x16_or(lo, i32x16_shl(hi, 16)))
        lo = i32x16_and(i32x16_ashr(i32x16_shl(v, 8), 24), 0xFFFF)
        hi = i32x16_ashr(v, 24)
        i32x16_store(scales, so + 256 + 16 * (2 * k + 1), i32x16_or(lo, i32x16_shl(hi, 16)))


@njit(inline="always")
def _six_bits(low, hw, shift):
    """Four 6-bit values per lane: the low nibbles with bits shift, shift + 1 of hw on top."""
    return i32x16_or(low, i32x16_shl(i32x16_and(i32x16_lshr(hw, shift), 0x03030303), 4))


@njit(inline="always")
def rows16_xsums(xbs, xsums, i):
    """Token-block i's x sums per sub-block of 16, two to a word (|sum| <= 2048)."""
    for p in range(8):
        xsums[i * 8 + p] = (xbs[i * 16 + 2 * p] & 0xFFFF) | (xbs[i * 16 + 2 * p + 1] << 16)


@njit(inline="always")
def rows16_chunk(S0, S1, S2, S3, nt, xq, xo, n_in, scales, so, c, words, wo):
    """S of up to four tokens (activations at xq[xo + t n_in:]) plus sub-blocks 2c, 2c + 1."""
    v = wo + 128 * c
    q = (i32x16_load(words, v), i32x16_load(words, v + 16), i32x16_load(words, v + 32), i32x16_load(words, v + 48),
         i32x16_load(words, v + 64), i32x16_load(words, v + 80), i32x16_load(words, v + 96), i32x16_load(words, v + 112))
    a = (i32x16_bytes(q[0]), i32x16_bytes(q[1]))
    b = (i32x16_bytes(q[2]), i32x16_bytes(q[3]))
    e = (i32x16_bytes(q[4]), i32x16_bytes(q[5]))
    f = (i32x16_bytes(q[6]), i32x16_bytes(q[7]))
    sc0 = i32x16_load(scales, so + 32 * c)
    sc1 = i32x16_load(scales, so + 32 * c + 16)
    o = xo + 32 * c
    R0 = _two_sub_blocks(S0, xq, o, sc0, sc1, a, b, e, f)
    R1, R2, R3 = S1, S2, S3
    if nt > 1:
        R1 = _two_sub_blocks(S1, xq, o + n_in, sc0, sc1, a, b, e, f)
    if nt > 2:
        R2 = _two_sub_blocks(S2, xq, o + 2 * n_in, sc0, sc1, a, b, e, f)
    if nt > 3:
        R3 = _two_sub_blocks(S3, xq, o + 3 * n_in, sc0, sc1, a, b, e, f)
    return R0, R1, R2, R3


@njit(inline="always")
def _two_sub_blocks(S, xq, o, sc0, sc1, a, b, e, f):
    S = dpwssd_splat_sum(dpwssd_splat_sum(S, xq, o, sc0, a), xq, o + 8, sc0, b)
    return dpwssd_splat_sum(dpwssd_splat_sum(S, xq, o + 16, sc1, e), xq, o + 24, sc1, f)


# One or two tokens: row by row, as four 64-value vectors with the scales spread to their
# lanes (dpbusd_scaled), the lanes of the sixteen rows summed at the end (i32x16_row_sums):
# the same integers as rows16_chunk's and rows16_mins', without putting the values
# together in memory.
@njit(inline="always")
def rows16_row_sums(w, o, xq, xbs, xo0, xo1, bo0, bo1, nt):
    """(lanes of sum_j sc_j (q_j . x_j), lanes of sum_j sc_j (x sum of sub-block j)) of the
    block at w[o:] of one row, for the token with activations at xq[xo0:] and 16-value sums
    at xbs[bo0:], and (nt = 2) a second one."""
    q0, q1 = q6x64_load(w, o, w, o + 128, 0), q6x64_load(w, o, w, o + 128, 1)
    q2, q3 = q6x64_load(w, o + 64, w, o + 160, 0), q6x64_load(w, o + 64, w, o + 160, 1)
    c0, c1 = i32x16_dup16(i32x16_load_s8_quads(w, o + 192)), i32x16_dup16(i32x16_load_s8_quads(w, o + 196))
    c2, c3 = i32x16_dup16(i32x16_load_s8_quads(w, o + 200)), i32x16_dup16(i32x16_load_s8_quads(w, o + 204))
    sc = i32x16_and(i32x16_load_s8(w, o + 192), 0xFFFF)  # lane j: sc_j as the low 16 bits, 0 above
    s = dpbusd_scaled(i32x16_zero(), q0, u8x64_load(xq, xo0), c0)
    s = dpbusd_scaled(s, q1, u8x64_load(xq, xo0 + 64), c1)
    s = dpbusd_scaled(s, q2, u8x64_load(xq, xo0 + 128), c2)
    s = dpbusd_scaled(s, q3, u8x64_load(xq, xo0 + 192), c3)
    m = dpwssd(i32x16_zero(), sc, i32x16_load(xbs, bo0))
    t, n = s, m
    if nt > 1:
        t = dpbusd_scaled(i32x16_zero(), q0, u8x64_load(xq, xo1), c0)
        t = dpbusd_scaled(t, q1, u8x64_load(xq, xo1 + 64), c1)
        t = dpbusd_scaled(t, q2, u8x64_load(xq, xo1 + 128), c2)
        t = dpbusd_scaled(t, q3, u8x64_load(xq, xo1 + 192), c3)
        n = dpwssd(i32x16_zero(), sc, i32x16_load(xbs, bo1))
    return s, m, t, n


@njit(inline="always")
def rows16_mins(scales, so, xsums, i):
    """sum_j sc_j (x sum of sub-block j) of the 16 rows for token-block i."""
    O = dpwssd_splat(i32x16_zero(), i32x16_load(scales, so + 256), xsums, 8 * i)
    O = dpwssd_splat(O, i32x16_load(scales, so + 272), xsums, 8 * i + 1)
    O = dpwssd_splat(O, i32x16_load(scales, so + 288), xsums, 8 * i + 2)
    O = dpwssd_splat(O, i32x16_load(scales, so + 304), xsums, 8 * i + 3)
    O = dpwssd_splat(O, i32x16_load(scales, so + 320), xsums, 8 * i + 4)
    O = dpwssd_splat(O, i32x16_load(scales, so + 336), xsums, 8 * i + 5)
    O = dpwssd_splat(O, i32x16_load(scales, so + 352), xsums, 8 * i + 6)
    return dpwssd_splat(O, i32x16_load(scales, so + 368), xsums, 8 * i + 7)


@njit(inline="always")
def rows16_step(acc, S, O, dv, dmv, dx):
    """acc after one block: the -32 offset taken out in integers, then one fma (d is dmv)."""
    return vfma(i32x16_to_f32(i32x16_sub(S, i32x16_shl(O, 5))), vmul(dmv, vsplat(dx)), acc)
