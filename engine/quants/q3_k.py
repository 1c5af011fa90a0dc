"""Q3_K: super-blocks of 256 weights in 110 bytes: u8 hmask[32], u8 qs[64], u8 scales[12], f16 d.

The low 2 bits of element e are laid out as in Q2_K; its high bit is bit e // 32 of
hmask[e % 32], and q = low2 - (high bit ? 0 : 4), in -4..3. Sixteen 6-bit scales (one per
16 elements) are packed in `scales` (`scale6`), stored with +32; w = d * (sc - 32) * q.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, MATH_FAST, group_of_rows, group_sums, read_f16, read_f16_fast, read_u32
from ._int8 import (
    i32x16_shl,
    i32x16_splat8,
    i32x16_sub,
    i32x16_word_bytes16,
    i32x16_word_bytes_quads,
    q3x64_load,
)
from .q2_k import split_2bit

BLOCK_ELEMS = 256
BLOCK_BYTES = 110
WEIGHT_DTYPE = np.dtype(np.uint8)


@njit(inline="always")
def scale6(buf, o, s):
    """Signed scale (-32..31) of group s (0..15) from the 12 packed bytes at buf[o:]."""
    if s < 8:
        low = np.int64(buf[o + s]) & 15
    else:
        low = np.int64(buf[o + s - 8]) >> 4
    high = (np.int64(buf[o + 8 + s % 4]) >> (2 * (s // 4))) & 3
    return (low | (high << 4)) - 32


@njit(**MATH_EXACT)
def dequantize_rows(w, row_bytes, rows, n_blocks, out):
    n = n_blocks * 256
    for i in range(rows.size):
        r = rows[i]
        src = w[r * row_bytes : r * row_bytes + n_blocks * 110]
        dst = out[i * n : (i + 1) * n]
        for b in range(n_blocks):
            o = b * 110
            e = b * 256
            d = read_f16(src, o + 108)
            for h in range(2):
                for k in range(4):
                    for l in range(32):
                        dl = d * np.float32(scale6(src, o + 96, 8 * h + 2 * k + l // 16))
                        low = (np.int64(src[o + 32 + 32 * h + l]) >> (2 * k)) & 3
                        hb = (np.int64(src[o + l]) >> (4 * h + k)) & 1
                        dst[e + 128 * h + 32 * k + l] = dl * np.float32(low - 4 * (1 - hb))


@njit(inline="always")
def _q3_dot(byte, hbyte, h, c0, x0, c1, x1, c2, x2, c3, x3):
    """sum_k c_k * (low2_k + 4 * highbit_k) * x_k, high bits 4h..4h+3 of hbyte."""
    q0, q1, q2, q3 = split_2bit(byte)
    t = np.float32(hbyte)
    top = np.floor(t * np.float32(0.0625))
    if h == 0:
        t = t - np.float32(16.0) * top
    else:
        t = top
    b3 = np.floor(t * np.float32(0.125))
    t = t - np.float32(8.0) * b3
    b2 = np.floor(t * np.float32(0.25))
    t = t - np.float32(4.0) * b2
    b1 = np.floor(t * np.float32(0.5))
    b0 = t - np.float32(2.0) * b1
    four = np.float32(4.0)
    return (
        (c0 * (q0 + four * b0)) * x0
        + (c1 * (q1 + four * b1)) * x1
        + (c2 * (q2 + four * b2)) * x2
        + (c3 * (q3 + four * b3)) * x3
    )


@njit(inline="always")
def _scales(blk, h, half, xsb):
    """The four scales of one 16-lane step, and their part of sum(sc * sum(x))."""
    s = 8 * h + half
    c0 = np.float32(scale6(blk, 96, s))
    c1 = np.float32(scale6(blk, 96, s + 2))
    c2 = np.float32(scale6(blk, 96, s + 4))
    c3 = np.float32(scale6(blk, 96, s + 6))
    m = c0 * xsb[s] + c1 * xsb[s + 2] + c2 * xsb[s + 4] + c3 * xsb[s + 6]
    return c0, c1, c2, c3, m


@njit(parallel=True, **MATH_FAST)
def matmul(w, n_out, n_in, x, n_tok, out):
    nb = n_in // 256
    rb = nb * 110
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
                o = b * 110
                v0 = w0[o : o + 110]
                v1 = w1[o : o + 110]
                v2 = w2[o : o + 110]
                v3 = w3[o : o + 110]
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
                        qs = 32 + 32 * h + 16 * half
                        hm = 16 * half
                        xe = 128 * h + 16 * half
                        for l in range(16):
                            x0 = xb[xe + l]
                            x1 = xb[xe + 32 + l]
                            x2 = xb[xe + 64 + l]
                            x3 = xb[xe + 96 + l]
                            s0 += _q3_dot(v0[qs + l], v0[hm + l], h, c00, x0, c01, x1, c02, x2, c03, x3)
                            s1 += _q3_dot(v1[qs + l], v1[hm + l], h, c10, x0, c11, x1, c12, x2, c13, x3)
                            s2 += _q3_dot(v2[qs + l], v2[hm + l], h, c20, x0, c21, x1, c22, x2, c23, x3)
                            s3 += _q3_dot(v3[qs + l], v3[hm + l], h, c30, x0, c31, x1, c32, x2, c33, x3)
                off = np.float32(4.0)  # q = (low2 + 4 hb) - 4
                a0 += read_f16_fast(v0, 108) * (s0 - off * m0)
                a1 += read_f16_fast(v1, 108) * (s1 - off * m1)
                a2 += read_f16_fast(v2, 108) * (s2 - off * m2)
                a3 += read_f16_fast(v3, 108) * (s3 - off * m3)
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = a0
            ot[r1] = a1
            ot[r2] = a2
            ot[r3] = a3


# The 8-bit product (llama.cpp's ggml_vec_dot_q3_K_q8_K): sixteen sub-blocks of 16 with
# signed 6-bit scales sc_j; q = q' - 4 with q' = low2 + 4 * highbit in 0..7, unsigned as
# dpbusd takes it. The offset is taken out in integers, as llama.cpp does: the block's
# sum_j sc_j * (q_j . x_j) = sum_j sc_j * (q'_j . x_j) - 4 * sum_j sc_j * (x sum of sub-block
# j), exact (at most 4 chunks * 32 * 4 * 7 * 128 + 4 * 32 * 16 * 128 per lane), then scaled
# by d * d_x once: no float cancellation between two large terms. There is no minimum term.
@njit(inline="always")
def _decode_q8_k(blk):
    """One block for any number of tokens: four 64-value vectors of q' (chunk c = elements
    64c..64c+63 = sub-blocks 4c + i in dpbusd lanes 4i..4i+3), the signed scales spread to
    those lanes, and all sixteen times 4 in lane order (beside the bsums). d first, then
    0 for the "dmin" of the types with a minimum term."""
    u0 = read_u32(blk, 96)
    u1 = read_u32(blk, 100)
    u2 = read_u32(blk, 104)
    # the twelve scale bytes to the sixteen 6-bit scales (+32), four per word: low nibbles
    # from u0 (0-3, 8-11 in its high nibbles) and u1 (4-7, 12-15), top bits from u2
    s0 = (u0 & 0x0F0F0F0F) | ((u2 & 0x03030303) << 4)
    s1 = (u1 & 0x0F0F0F0F) | (((u2 >> 2) & 0x03030303) << 4)
    s2 = ((u0 >> 4) & 0x0F0F0F0F) | (((u2 >> 4) & 0x03030303) << 4)
    s3 = ((u1 >> 4) & 0x0F0F0F0F) | (((u2 >> 6) & 0x03030303) << 4)
    bias = i32x16_splat8(32, 32)
    return (
        read_f16_fast(blk, 108),
        np.float32(0.0),
        q3x64_load(blk, 32, blk, 0, 0),
        q3x64_load(blk, 32, blk, 0, 1),
        q3x64_load(blk, 64, blk, 0, 2),
        q3x64_load(blk, 64, blk, 0, 3),
        i32x16_sub(i32x16_word_bytes_quads(s0), bias),
        i32x16_sub(i32x16_word_bytes_quads(s1), bias),
        i32x16_sub(i32x16_word_bytes_quads(s2), bias),
        i32x16_sub(i32x16_word_bytes_quads(s3), bias),
        i32x16_shl(i32x16_sub(i32x16_word_bytes16(s0, s1, s2, s3), bias), 2),
    )
