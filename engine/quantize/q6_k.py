"""Q6_K: 256 values per block in 16 groups of 16; int8 group scales, f16 d, 6-bit q (4 low
bits in ql, 2 high in qh); x = d * sc * (q - 32) (quantize_row_q6_K_ref)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import F32, GROUP_MAX_EPS, KERNEL, block_shape, f16_to_f32, f32_to_f16, make_qx_quants_rmse1, nearest_int, put_f16, to_int8

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q6_K")  # ql[128], qh[64], scales[16] (int8), d


@njit(**KERNEL)
def quantize_blocks(x, out):
    L = np.empty(256, np.uint8)
    scales = np.empty(16, np.float32)
    sc = np.empty(16, np.int64)
    for i in range(x.size // 256):
        xb = x[i * 256 : i * 256 + 256]
        ob = out[i * 210 : i * 210 + 210]
        max_scale = F32(0.0)
        max_abs_scale = F32(0.0)
        for g in range(16):
            s = make_qx_quants_rmse1(16, 32, xb[16 * g : 16 * g + 16], L[16 * g : 16 * g + 16])
            scales[g] = s
            if abs(s) > max_abs_scale:
                max_abs_scale = abs(s)
                max_scale = s
        if max_abs_scale < GROUP_MAX_EPS:
            for k in range(210):
                ob[k] = 0
            continue
        iscale = F32(-128.0) / max_scale
        dh = f32_to_f16(F32(1.0) / iscale)
        d_all = f16_to_f32(dh)
        for g in range(16):
            sc[g] = to_int8(min(127, nearest_int(iscale * scales[g])))
        for j in range(16):
            d = d_all * F32(sc[j])
            if d == F32(0.0):
                continue
            for ii in range(16):
                l = nearest_int(xb[16 * j + ii] / d)
                L[16 * j + ii] = max(-32, min(31, l)) + 32
        for h in range(2):
            base = 128 * h
            for l in range(32):
                q1 = L[base + l] & 0xF
                q2 = L[base + l + 32] & 0xF
                q3 = L[base + l + 64] & 0xF
                q4 = L[base + l + 96] & 0xF
                ob[64 * h + l] = q1 | (q3 << 4)
                ob[64 * h + l + 32] = q2 | (q4 << 4)
                ob[128 + 32 * h + l] = ((L[base + l] >> 4) | ((L[base + l + 32] >> 4) << 2)
                                        | ((L[base + l + 64] >> 4) << 4) | ((L[base + l + 96] >> 4) << 6))
        for g in range(16):
            ob[192 + g] = sc[g] & 0xFF
        put_f16(ob, 208, dh)
