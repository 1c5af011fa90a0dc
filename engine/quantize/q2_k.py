"""Q2_K: 256 values per block in 16 groups of 16; 4-bit group scales and mins, f16 d and
dmin, 2-bit q; x = d * sc * q - dmin * m (quantize_row_q2_K_ref)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import F32, KERNEL, block_shape, f16_to_f32, f32_to_f16, make_qkx2_quants, nearest_int, put_f16

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q2_K")  # scales[16], qs[64], d, dmin


@njit(**KERNEL)
def quantize_blocks(x, out):
    L = np.empty(256, np.uint8)
    Laux = np.empty(16, np.uint8)
    weights = np.empty(16, np.float32)
    mins = np.empty(16, np.float32)
    scales = np.empty(16, np.float32)
    sc = np.empty(16, np.int64)  # the scale bytes being built
    q4scale = F32(15.0)
    for i in range(x.size // 256):
        xb = x[i * 256 : i * 256 + 256]
        ob = out[i * 84 : i * 84 + 84]
        max_scale = F32(0.0)
        max_min = F32(0.0)
        for j in range(16):
            xg = xb[16 * j : 16 * j + 16]
            for l in range(16):
                weights[l] = abs(xg[l])
            s, m = make_qkx2_quants(16, 3, xg, weights, L[16 * j : 16 * j + 16], Laux,
                                    F32(-0.5), F32(0.1), 15, True)
            scales[j] = s
            mins[j] = m
            if s > max_scale:
                max_scale = s
            if m > max_min:
                max_min = m
        if max_scale > F32(0.0):
            iscale = q4scale / max_scale
            for j in range(16):
                sc[j] = nearest_int(iscale * scales[j]) & 0xFF
            dh = f32_to_f16(max_scale / q4scale)
        else:
            for j in range(16):
                sc[j] = 0
            dh = f32_to_f16(F32(0.0))
        if max_min > F32(0.0):
            iscale = q4scale / max_min
            for j in range(16):
                sc[j] = (sc[j] | (nearest_int(iscale * mins[j]) << 4)) & 0xFF
            mh = f32_to_f16(max_min / q4scale)
        else:
            mh = f32_to_f16(F32(0.0))
        d_all = f16_to_f32(dh)  # requantize with the scales as stored
        m_all = f16_to_f32(mh)
        for j in range(16):
            d = d_all * F32(sc[j] & 0xF)
            if d == F32(0.0):
                continue
            dm = m_all * F32(sc[j] >> 4)
            for ii in range(16):
                l = nearest_int((xb[16 * j + ii] + dm) / d)
                L[16 * j + ii] = max(0, min(3, l))
        for j in range(16):
            ob[j] = sc[j]
        for h in range(2):
            base = 128 * h
            for l in range(32):
                ob[16 + 32 * h + l] = (L[base + l] | (L[base + l + 32] << 2) | (L[base + l + 64] << 4)
                                       | (L[base + l + 96] << 6)) & 0xFF
        put_f16(ob, 80, dh)
        put_f16(ob, 82, mh)
