"""Q5_1: blocks of 32 weights in 24 bytes: f16 d, f16 m, u8 qh[4], u8 qs[16].

The 5-bit values as in Q5_0; w = d * q + m.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, block_shape, read_f16, read_u32
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
from .q5_0 import q5_block_values

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_1")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o)
    m = read_f16(src, o + 2)
    qh = read_u32(src, o + 4)
    for j in range(16):
        q = np.int64(src[o + 8 + j])
        lo = (q & 15) | (((qh >> j) & 1) << 4)
        hi = (q >> 4) | (((qh >> (j + 16)) & 1) << 4)
        dst[e + j] = d * np.float32(lo) + m
        dst[e + 16 + j] = d * np.float32(hi) + m


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
