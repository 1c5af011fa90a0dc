"""Q5_K: as Q4_K with 5-bit q (the 5th bits in qh); x = d * sc * q - dmin * m
(quantize_row_q5_K_ref)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import F32, KERNEL, block_shape
from .q4_k import k_group_levels, k_scratch

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_K")  # d, dmin, scales[12], qh[32], qs[128]


@njit(**KERNEL)
def quantize_blocks(x, out):
    L, scratch = k_scratch()
    for i in range(x.size // 256):
        xb = x[i * 256 : i * 256 + 256]
        ob = out[i * 176 : i * 176 + 176]
        k_group_levels(xb, ob, L, 31, F32(-0.5), 15, scratch)
        qh = ob[16:48]
        for k in range(32):
            qh[k] = 0
        for c in range(4):  # value 64c + j: low nibble in qs, 5th bit is bit 2c of qh[j]
            for j in range(32):
                l1 = np.int64(L[64 * c + j])
                l2 = np.int64(L[64 * c + j + 32])
                if l1 > 15:
                    l1 -= 16
                    qh[j] |= 1 << (2 * c)
                if l2 > 15:
                    l2 -= 16
                    qh[j] |= 2 << (2 * c)
                ob[48 + 32 * c + j] = l1 | (l2 << 4)
