"""Q4_K: 256 values per block in 8 groups of 32; 6-bit group scales and mins, f16 d and
dmin, 4-bit q; x = d * sc * q - dmin * m (quantize_row_q4_K_ref)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import F32, HELPER, KERNEL, block_shape, f16_to_f32, f32_to_f16, make_qkx2_quants, nearest_int, put_f16

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q4_K")  # d, dmin, scales[12], qs[128]


@njit(**HELPER)
def k_scratch():
    """k_group_levels' working arrays, made once per kernel call: (L, the rest)."""
    return np.empty(256, np.uint8), (np.empty(32, np.uint8), np.empty(32, np.float32), np.empty(8, np.float32),
                                     np.empty(8, np.float32), np.empty(12, np.int64))


@njit(**KERNEL)
def k_group_levels(xb, ob, L, nmax, rmin, nstep, scratch):
    """The part Q4_K and Q5_K share: per group of 32 the weighted scale/min search, then
    6-bit scales and mins packed, then every value requantized into L with the stored
    scales; the block's head (d, dmin, scales[12]) written to ob[0:16]."""
    Laux, weights, mins, scales, sb = scratch
    max_scale = F32(0.0)
    max_min = F32(0.0)
    for j in range(8):
        xg = xb[32 * j : 32 * j + 32]
        sum_x2 = F32(0.0)
        for l in range(32):
            sum_x2 += xg[l] * xg[l]
        av_x = np.sqrt(sum_x2 / F32(32.0))
        for l in range(32):
            weights[l] = av_x + abs(xg[l])
        s, m = make_qkx2_quants(32, nmax, xg, weights, L[32 * j : 32 * j + 32], Laux, rmin, F32(0.1), nstep, False)
        scales[j] = s
        mins[j] = m
        if s > max_scale:
            max_scale = s
        if m > max_min:
            max_min = m
    inv_scale = F32(63.0) / max_scale if max_scale > F32(0.0) else F32(0.0)
    inv_min = F32(63.0) / max_min if max_min > F32(0.0) else F32(0.0)
    for k in range(12):
        sb[k] = 0
    for j in range(8):
        ls = min(63, nearest_int(inv_scale * scales[j]) & 0xFF)  # C: uint8_t, then MIN(63, .)
        lm = min(63, nearest_int(inv_min * mins[j]) & 0xFF)
        if j < 4:
            sb[j] = ls
            sb[j + 4] = lm
        else:
            sb[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
            sb[j - 4] |= (ls >> 4) << 6
            sb[j] |= (lm >> 4) << 6
    dh = f32_to_f16(max_scale / F32(63.0))
    mh = f32_to_f16(max_min / F32(63.0))
    d_all = f16_to_f32(dh)
    m_all = f16_to_f32(mh)
    for j in range(8):
        if j < 4:
            sc = sb[j] & 63
            m = sb[j + 4] & 63
        else:
            sc = (sb[j + 4] & 0xF) | ((sb[j - 4] >> 6) << 4)
            m = (sb[j + 4] >> 4) | ((sb[j] >> 6) << 4)
        d = d_all * F32(sc)
        if d == F32(0.0):
            continue
        dm = m_all * F32(m)
        for ii in range(32):
            l = nearest_int((xb[32 * j + ii] + dm) / d)
            L[32 * j + ii] = max(0, min(nmax, l))
    put_f16(ob, 0, dh)
    put_f16(ob, 2, mh)
    for k in range(12):
        ob[4 + k] = sb[k] & 0xFF


@njit(**KERNEL)
def quantize_blocks(x, out):
    L, scratch = k_scratch()
    for i in range(x.size // 256):
        xb = x[i * 256 : i * 256 + 256]
        ob = out[i * 144 : i * 144 + 144]
        k_group_levels(xb, ob, L, 15, F32(-1.0), 20, scratch)
        for c in range(4):
            for l in range(32):
                ob[16 + 32 * c + l] = L[64 * c + l] | (L[64 * c + l + 32] << 4)
