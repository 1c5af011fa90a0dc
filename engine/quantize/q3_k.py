"""Q3_K: 256 values per block in 16 groups of 16; 6-bit signed group scales, f16 d, 3-bit
q (2 low bits in qs, the high bit in hmask); x = d * sc * (q - 4) (quantize_row_q3_K_ref)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import F32, KERNEL, block_shape, f16_to_f32, f32_to_f16, make_q3_quants, nearest_int, put_f16, to_int8

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q3_K")  # hmask[32], qs[64], scales[12], d


@njit(**KERNEL)
def quantize_blocks(x, out):
    L = np.empty(256, np.int64)
    scales = np.empty(16, np.float32)
    sb = np.empty(12, np.int64)  # the packed scale bytes
    for i in range(x.size // 256):
        xb = x[i * 256 : i * 256 + 256]
        ob = out[i * 110 : i * 110 + 110]
        max_scale = F32(0.0)
        amax = F32(0.0)
        for j in range(16):
            s = make_q3_quants(16, 4, xb[16 * j : 16 * j + 16], L[16 * j : 16 * j + 16])
            scales[j] = s
            if abs(s) > amax:
                amax = abs(s)
                max_scale = s
        for k in range(12):
            sb[k] = 0
        if max_scale != F32(0.0):
            iscale = F32(-32.0) / max_scale
            for j in range(16):
                l = to_int8(nearest_int(iscale * scales[j]))  # C stores it in an int8_t first
                l = max(-32, min(31, l)) + 32
                if j < 8:
                    sb[j] = l & 0xF
                else:
                    sb[j - 8] |= (l & 0xF) << 4
                l >>= 4
                sb[j % 4 + 8] |= l << (2 * (j // 4))
            dh = f32_to_f16(F32(1.0) / iscale)
        else:
            dh = f32_to_f16(F32(0.0))
        d_all = f16_to_f32(dh)
        for j in range(16):
            lo = sb[j] & 0xF if j < 8 else (sb[j - 8] >> 4) & 0xF
            sc = (lo | (((sb[8 + j % 4] >> (2 * (j // 4))) & 3) << 4)) - 32
            d = d_all * F32(sc)
            if d == F32(0.0):
                continue
            for ii in range(16):
                l = nearest_int(xb[16 * j + ii] / d)
                L[16 * j + ii] = max(-4, min(3, l)) + 4
        hm = ob[0:32]
        for k in range(32):
            hm[k] = 0
        for j in range(256):  # high bit of value j: bit j // 32 of hmask[j % 32]
            if L[j] > 3:
                hm[j % 32] |= 1 << (j // 32)
                L[j] -= 4
        for h in range(2):
            base = 128 * h
            for l in range(32):
                ob[32 + 32 * h + l] = (L[base + l] | (L[base + l + 32] << 2) | (L[base + l + 64] << 4)
                                       | (L[base + l + 96] << 6)) & 0xFF
        for k in range(12):
            ob[96 + k] = sb[k] & 0xFF
        put_f16(ob, 108, dh)
