"""Q4_0: blocks of 32 weights in 18 bytes: f16 d, u8 qs[16].

Element j < 16 is the low nibble of qs[j], element j + 16 the high nibble; w = d * (q - 8).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, MATH_FAST, group_of_rows, group_sums, read_f16, read_f16_fast
from ._int8 import dpbssd, fma_f32, i32x16_half_sum, i32x16_zero, q4x64_load_pair, u8x64_load_dup32, u8x64_sub

BLOCK_ELEMS = 32
BLOCK_BYTES = 18
WEIGHT_DTYPE = np.dtype(np.uint8)


@njit(**MATH_EXACT)
def dequantize_rows(w, row_bytes, rows, n_blocks, out):
    n = n_blocks * 32
    for i in range(rows.size):
        r = rows[i]
        src = w[r * row_bytes : r * row_bytes + n_blocks * 18]
        dst = out[i * n : (i + 1) * n]
        for b in range(n_blocks):
            o = b * 18
            e = b * 32
            d = read_f16(src, o)
            for j in range(16):
                q = src[o + 2 + j]
                dst[e + j] = d * np.float32(np.int32(q & 15) - 8)
                dst[e + 16 + j] = d * np.float32(np.int32(q >> 4) - 8)


@njit(inline="always")
def _nibbles_dot(byte, x_lo, x_hi):
    q = np.float32(byte)
    hi = np.floor(q * np.float32(0.0625))
    lo = q - np.float32(16.0) * hi
    return lo * x_lo + hi * x_hi


@njit(parallel=True, **MATH_FAST)
def matmul(w, n_out, n_in, x, n_tok, out):
    nb = n_in // 32
    rb = nb * 18
    xs = group_sums(x, n_tok, n_in, 32)
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
                o = b * 18
                v0 = w0[o : o + 18]
                v1 = w1[o : o + 18]
                v2 = w2[o : o + 18]
                v3 = w3[o : o + 18]
                xb = xt[b * 32 : (b + 1) * 32]
                s0 = s1 = s2 = s3 = np.float32(0.0)
                for j in range(16):
                    x_lo = xb[j]
                    x_hi = xb[16 + j]
                    s0 += _nibbles_dot(v0[2 + j], x_lo, x_hi)
                    s1 += _nibbles_dot(v1[2 + j], x_lo, x_hi)
                    s2 += _nibbles_dot(v2[2 + j], x_lo, x_hi)
                    s3 += _nibbles_dot(v3[2 + j], x_lo, x_hi)
                off = np.float32(8.0) * xst[b]  # sum((q - 8) x) = sum(q x) - 8 sum(x)
                a0 += read_f16_fast(v0, 0) * (s0 - off)
                a1 += read_f16_fast(v1, 0) * (s1 - off)
                a2 += read_f16_fast(v2, 0) * (s2 - off)
                a3 += read_f16_fast(v3, 0) * (s3 - off)
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = a0
            ot[r1] = a1
            ot[r2] = a2
            ot[r3] = a3


# The 8-bit product as llama.cpp computes it on x86 (its "repacked" Q4_0 kernels,
# ggml_gemv/gemm_q4_0_8x8_q8_0): per row and block the exact integer sum S of (q - 8) * y,
# then acc = fma(S, d_w * d_y, acc), block after block. Two rows per 16-lane vector for the
# integer products (lanes 0-7 one row, 8-15 the next), summed per row. Bit for bit llama.cpp.
@njit(parallel=True, **MATH_EXACT)
def matmul_q8_0(w, n_out, n_in, xq, xd, n_tok, out):
    nb = n_in // 32
    rb = nb * 18
    for g in prange((n_out + 15) // 16):
        for p in range(min(8, (n_out - g * 16 + 1) // 2)):
            ra = g * 16 + 2 * p
            rz = min(ra + 1, n_out - 1)  # an odd last row is paired with itself
            for t in range(n_tok):
                acc_a = np.float32(0.0)
                acc_z = np.float32(0.0)
                for b in range(nb):
                    oa = ra * rb + b * 18
                    oz = rz * rb + b * 18
                    q = u8x64_sub(q4x64_load_pair(w, oa + 2, oz + 2), 8)
                    s = dpbssd(i32x16_zero(), q, u8x64_load_dup32(xq, t * n_in + b * 32))
                    dy = xd[t * nb + b]
                    acc_a = fma_f32(np.float32(i32x16_half_sum(s, 0)), read_f16_fast(w, oa) * dy, acc_a)
                    acc_z = fma_f32(np.float32(i32x16_half_sum(s, 1)), read_f16_fast(w, oz) * dy, acc_z)
                out[t * n_out + ra] = acc_a
                out[t * n_out + rz] = acc_z
