"""F32: plain float32 weights."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import MATH_EXACT, MATH_FAST, block_shape, group_of_rows

BLOCK_ELEMS, BLOCK_BYTES = block_shape("F32")
WEIGHT_DTYPE = np.dtype(np.float32)


@njit(**MATH_EXACT)
def dequantize_rows(w, row_items, rows, n_blocks, out):
    for i in range(rows.size):
        r = rows[i]
        src = w[r * row_items : r * row_items + n_blocks]
        dst = out[i * n_blocks : (i + 1) * n_blocks]
        for k in range(n_blocks):
            dst[k] = src[k]


@njit(parallel=True, **MATH_FAST)
def matmul(w, n_out, n_in, x, n_tok, out):
    for g in prange((n_out + 3) // 4):
        r0, r1, r2, r3 = group_of_rows(g, n_out)
        w0 = w[r0 * n_in : (r0 + 1) * n_in]
        w1 = w[r1 * n_in : (r1 + 1) * n_in]
        w2 = w[r2 * n_in : (r2 + 1) * n_in]
        w3 = w[r3 * n_in : (r3 + 1) * n_in]
        for t in range(n_tok):
            xt = x[t * n_in : (t + 1) * n_in]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for k in range(n_in):
                xv = xt[k]
                a0 += w0[k] * xv
                a1 += w1[k] * xv
                a2 += w2[k] * xv
                a3 += w3[k] * xv
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = a0
            ot[r1] = a1
            ot[r2] = a2
            ot[r3] = a3
