"""Q5_0: blocks of 32 weights in 22 bytes: f16 d, u8 qh[4], u8 qs[16].

Low 4 bits as in Q4_0; bit j of the little-endian word qh is bit 4 of element j;
w = d * (q - 16).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, block_shape, read_f16, read_u32
from ._int8 import (
    dpbusd,
    i32x16_bit_bytes,
    i32x16_load,
    i32x16_nibbles,
    i32x16_splat,
    i32x16_to_f32,
    int8_group_sums,
    prefetch_next_group,
    rows16_offsets,
    store_rows16,
    sum_lanes8,
    transpose_words16,
    u8x64_or,
    u8x64_splat_word,
)
from ._simd import vfma, vload, vload_half_pairs16, vmul, vsplat, vstore

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_0")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o)
    qh = read_u32(src, o + 2)
    for j in range(16):
        q = np.int64(src[o + 6 + j])
        lo = (q & 15) | (((qh >> j) & 1) << 4)
        hi = (q >> 4) | (((qh >> (j + 16)) & 1) << 4)
        dst[e + j] = d * np.float32(lo - 16)
        dst[e + 16 + j] = d * np.float32(hi - 16)


# The 8-bit product (llama.cpp's ggml_vec_dot_q5_0_q8_0 on AVX2/AVX-512, and its batched
# tinyBLAS twin): per block, the eight integer lane sums S_l of (q - 16) * y over four
# consecutive elements (lanes 0-3 the low nibbles, 4-7 the high ones), acc_l = fma(d_w * d_y,
# S_l, acc_l) block after block, then the lanes summed as ggml's hsum_float_8. One lane per
# row for 16 rows (block rows turned word-wise); q - 16 is taken as q with 16 times the sum
# of the lane's four activations subtracted. Bit for bit llama.cpp's result.
@njit(inline="always")
def q5_lane_values(words, qh, k, high, first_bit):
    """The 16 rows' values of lane l = 4 high + k (0..31): the nibbles of word k plus their
    fifth bits (bits first_bit.. of qh)."""
    return u8x64_or(i32x16_nibbles(i32x16_load(words, 16 * k), high), i32x16_bit_bytes(qh, first_bit))


@njit(inline="always")
def q5_block_values(words, qh):
    """A turned block's eight lane values (q5_lane_values of lanes 0..7), decoded once for
    every token of the batch."""
    return (q5_lane_values(words, qh, 0, 0, 0), q5_lane_values(words, qh, 1, 0, 4),
            q5_lane_values(words, qh, 2, 0, 8), q5_lane_values(words, qh, 3, 0, 12),
            q5_lane_values(words, qh, 0, 1, 16), q5_lane_values(words, qh, 1, 1, 20),
            q5_lane_values(words, qh, 2, 1, 24), q5_lane_values(words, qh, 3, 1, 28))


@njit(parallel=True, **MATH_EXACT)
def matmul_q8_0(w, n_out, n_in, xq, xd, n_tok, out):
    nb = n_in // 32
    rb = nb * 22
    ysum4 = int8_group_sums(xq, 4)
    for g in prange((n_out + 15) // 16):
        rowoff = rows16_offsets(g, n_out, rb)
        words = np.empty(64, dtype=np.int32)
        qhw = np.empty(16, dtype=np.int32)
        dm = np.empty(32, dtype=np.float32)
        acc = np.zeros(n_tok * 128, dtype=np.float32)  # acc[128 t + 16 l + r]: lane l
        res = np.empty(16, dtype=np.float32)
        for b in range(nb):
            prefetch_next_group(w, g, rb, b, 22)
            o = b * 22
            vload_half_pairs16(w, rowoff, o, dm)  # d (the second half is qh bytes: unused)
            transpose_words16(w, rowoff, o + 2, 1, qhw)
            transpose_words16(w, rowoff, o + 6, 4, words)
            dw = vload(dm, 0)
            qv = q5_block_values(words, i32x16_load(qhw, 0))
            for t in range(n_tok):
                xo = t * n_in + b * 32
                ys = (t * nb + b) * 8
                d = vmul(dw, vsplat(xd[t * nb + b]))
                a = t * 128
                for l in range(8):  # S_l of (q - 16) * y: q with 16 times the lane's activation sum taken out
                    s_l = dpbusd(i32x16_splat(-16 * ysum4[ys + l]), qv[l], u8x64_splat_word(xq, xo + 4 * l))
                    vstore(acc, a + 16 * l, vfma(d, i32x16_to_f32(s_l), vload(acc, a + 16 * l)))
        for t in range(n_tok):
            store_rows16(out, t * n_out, sum_lanes8(acc, t * 128, vsplat(np.float32(0.0))), g, n_out, res)
