"""W·x for every k-quant type (Q2_K ... Q6_K) with x as Q8_K blocks: llama.cpp's
ggml_vec_dot_qX_K_q8_K, with 8-bit integer dot products (_int8.dpbusd).

One kernel for the five types: each type module supplies `_decode_q8_k(blk)` (one block
made ready for any number of tokens: a flat tuple d, "dmin", four 64-value weight vectors,
four lane-scale vectors, the minimum-term vector) and the kernel plugs it in at compile
time through `overload`s keyed by the type of its first argument, a `TypeTag` (_common.py)
whose numba type names the ggml type, so each type still gets its own compiled code. The dot of one decoded block with one token's block of
activations is the same for every type, except Q3_K's (its offset is taken out in integers).

Rows: in runs of 16 per parallel task; tokens in tiles of up to TILE = 8. One row and one
tile per inner step: each block decoded once for the tile, the tile's running lanes held in
registers across the row's blocks (not stored and reloaded per block), and the tile's
activations (8 x 4 KB for a 4096-wide row) kept in L1 while the group's 16 rows go by. The
scales are applied with vpmaddubsw + vpdpwssd (and the mins in float, exactly) rather than
vpdpbusd + the two-uop vpmulld: the same integers in every lane, fewer uops on the one port
these instructions share, which is what a token costs (about 10 cycles per row and block
on this machine, against 13 before). A token's float operations and their order are those
of the token alone, whatever its tile: batch invariance holds.

numba's on-disk cache checks this file only: after editing a type's _decode_q8_k, delete
engine/quants/__pycache__ (as for _common.py and _int8.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.extending import overload

from ..ggml_types import GGMLType
from . import q2_k, q3_k, q4_k, q5_k, q6_k
from ._common import MATH_FAST, TypeTag, TypeTagType
from ._simd import vfma, vload, vmul, vsplat
from ._int8 import prefetch, dpbusd_scaled, f32x16_sum, i32x16_dup16, i32x16_sub, i32x16_to_f32, i32x16_load, i32x16_mul, i32x16_zero, u8x64_load

# ggml type -> its module (block decoding) and block size in bytes
_TYPES = {
    int(GGMLType.Q2_K): (q2_k, q2_k.BLOCK_BYTES),
    int(GGMLType.Q3_K): (q3_k, q3_k.BLOCK_BYTES),
    int(GGMLType.Q4_K): (q4_k, q4_k.BLOCK_BYTES),
    int(GGMLType.Q5_K): (q5_k, q5_k.BLOCK_BYTES),
    int(GGMLType.Q6_K): (q6_k, q6_k.BLOCK_BYTES),
}
TYPES: frozenset[GGMLType] = frozenset(GGMLType(t) for t in _TYPES)


TAGS = {t: TypeTag(t) for t in _TYPES}

# Tokens per inner step (their running lanes stay in registers).
TILE = 8
# A row's blocks are read in order, a stream the hardware prefetcher follows too late to
# hide memory behind the decoding: asking for the lines 2 KB ahead (three per block, into L2)
# takes a 7B Q4_K matrix from 6.3 to 11-12 GB/s on one thread (512 B and 1 KB: 10.5), and the
# 7B's mat-vecs on 2 threads to 20.7 GB/s (1 KB: 19.0, 4 KB: 19.9).
PREFETCH_AHEAD = 2048


# One decoded block against one token's 256 activations, per lane sum_c sc_c * (q_c . x_c):
# the scales in both 16-bit halves of their lanes (the _decode overload), so that vpmaddubsw + vpdpwssd apply them
# (dpbusd_scaled); the minimum term as the float product of the mins and the 16-value sums
# (_dot_mins), which equals the converted integer product.
@njit(inline="always")
def _scaled_sum(dec, x0, x1, x2, x3):
    s = dpbusd_scaled(i32x16_zero(), dec[2], x0, dec[6])
    s = dpbusd_scaled(s, dec[3], x1, dec[7])
    s = dpbusd_scaled(s, dec[4], x2, dec[8])
    return dpbusd_scaled(s, dec[5], x3, dec[9])


@njit(inline="always")
def _dot_mins(dec, x0, x1, x2, x3, bsums, bsums_f):
    """(s, the minimum-term lanes as floats): mins * bsums is below 2**24 for every type
    (|min| <= 128, |bsum| <= 2048), so the float product of the two (each exact in float32)
    is exactly the converted integer product, and costs one multiply where the integer
    product and its conversion cost two uops on the busy port."""
    return _scaled_sum(dec, x0, x1, x2, x3), vmul(dec[11], bsums_f)


@njit(inline="always")
def _dot_q3_k(dec, x0, x1, x2, x3, bsums, bsums_f):
    """Q3_K: the -4 offset taken out in integers, s - 4 sum sc bsums (no minimum term: zeros)."""
    s = i32x16_sub(_scaled_sum(dec, x0, x1, x2, x3), i32x16_mul(dec[10], bsums))
    return s, i32x16_to_f32(i32x16_zero())


def _decode(kind, blk):
    raise NotImplementedError  # only inside the kernel, through the overload


def _dot(kind, dec, x0, x1, x2, x3, bsums, bsums_f):
    raise NotImplementedError


def _block_bytes(kind):
    raise NotImplementedError


@overload(_decode, inline="always")
def _decode_for(kind, blk):
    if not isinstance(kind, TypeTagType):
        return None
    module = _TYPES[kind.ggml_type][0]
    decode = module._decode_q8_k
    if getattr(module, "SCALES_DUP16", False):  # the scales come ready

        def prepared(kind, blk):
            d = decode(blk)
            return (d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], i32x16_to_f32(d[10]))

        return prepared

    def prepared(kind, blk):
        d = decode(blk)
        return (d[0], d[1], d[2], d[3], d[4], d[5],
                i32x16_dup16(d[6]), i32x16_dup16(d[7]), i32x16_dup16(d[8]), i32x16_dup16(d[9]), d[10],
                i32x16_to_f32(d[10]))

    return prepared


@overload(_dot, inline="always")
def _dot_for(kind, dec, x0, x1, x2, x3, bsums, bsums_f):
    if not isinstance(kind, TypeTagType):
        return None
    dot = _dot_q3_k if kind.ggml_type == int(GGMLType.Q3_K) else _dot_mins
    return lambda kind, dec, x0, x1, x2, x3, bsums, bsums_f: dot(dec, x0, x1, x2, x3, bsums, bsums_f)


@overload(_block_bytes, inline="always")
def _block_bytes_for(kind):
    if not isinstance(kind, TypeTagType):
        return None
    n = _TYPES[kind.ggml_type][1]
    return lambda kind: n


@njit(inline="always")
def _token_block(xq, xbs, t, b, n_in, nb):
    """Token t's activations of block b: four 64-byte vectors and the 16 sums."""
    xo = t * n_in + b * 256
    return (u8x64_load(xq, xo), u8x64_load(xq, xo + 64), u8x64_load(xq, xo + 128), u8x64_load(xq, xo + 192),
            i32x16_load(xbs, (t * nb + b) * 16))


@njit(inline="always")
def _step(acc, s, m, d, dmin, dx):
    """acc += (d dx) s - (dmin dx) m on a token's running lanes held in a register (m already as floats)."""
    v = vfma(i32x16_to_f32(s), vsplat(d * dx), acc)
    return vfma(m, vsplat(-(dmin * dx)), v)


@njit(inline="always")
def _token_dot(kind, dec, xq, xbs, xbsf, t, b, n_in, nb):
    x0, x1, x2, x3, bs = _token_block(xq, xbs, t, b, n_in, nb)
    return _dot(kind, dec, x0, x1, x2, x3, bs, vload(xbsf, (t * nb + b) * 16))


@njit(inline="always")
def _tile_token(kind, da, acc, xq, xd, xbs, xbsf, t, b, n_in, nb):
    """acc after block b of token t (one row)."""
    s, m = _token_dot(kind, da, xq, xbs, xbsf, t, b, n_in, nb)
    return _step(acc, s, m, da[0], da[1], xd[t * nb + b])


@njit(inline="always")
def _row_tile(kind, w, ra, rb, bb, nb, n_in, xq, xd, xbs, xbsf, t0, nt, n_out, out):
    """Row ra x tokens t0..t0 + nt - 1 (nt <= TILE = 8): each block decoded once, the
    running lanes in registers. Per token the same operations in the same order as one
    token alone."""
    z = vsplat(np.float32(0.0))
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = z
    for b in range(nb):
        ahead = ra * rb + b * bb + PREFETCH_AHEAD
        prefetch(w, ahead)
        prefetch(w, ahead + 64)
        prefetch(w, ahead + 128)
        da = _decode(kind, w[ra * rb + b * bb : ra * rb + (b + 1) * bb])
        a0 = _tile_token(kind, da, a0, xq, xd, xbs, xbsf, t0, b, n_in, nb)
        if nt > 1:
            a1 = _tile_token(kind, da, a1, xq, xd, xbs, xbsf, t0 + 1, b, n_in, nb)
        if nt > 2:
            a2 = _tile_token(kind, da, a2, xq, xd, xbs, xbsf, t0 + 2, b, n_in, nb)
        if nt > 3:
            a3 = _tile_token(kind, da, a3, xq, xd, xbs, xbsf, t0 + 3, b, n_in, nb)
        if nt > 4:
            a4 = _tile_token(kind, da, a4, xq, xd, xbs, xbsf, t0 + 4, b, n_in, nb)
        if nt > 5:
            a5 = _tile_token(kind, da, a5, xq, xd, xbs, xbsf, t0 + 5, b, n_in, nb)
        if nt > 6:
            a6 = _tile_token(kind, da, a6, xq, xd, xbs, xbsf, t0 + 6, b, n_in, nb)
        if nt > 7:
            a7 = _tile_token(kind, da, a7, xq, xd, xbs, xbsf, t0 + 7, b, n_in, nb)
    o = t0 * n_out + ra
    out[o] = f32x16_sum(a0)
    if nt > 1:
        out[o + n_out] = f32x16_sum(a1)
    if nt > 2:
        out[o + 2 * n_out] = f32x16_sum(a2)
    if nt > 3:
        out[o + 3 * n_out] = f32x16_sum(a3)
    if nt > 4:
        out[o + 4 * n_out] = f32x16_sum(a4)
    if nt > 5:
        out[o + 5 * n_out] = f32x16_sum(a5)
    if nt > 6:
        out[o + 6 * n_out] = f32x16_sum(a6)
    if nt > 7:
        out[o + 7 * n_out] = f32x16_sum(a7)


@njit(parallel=True, **MATH_FAST)
def matmul_q8_k(kind, w, n_out, n_in, xq, xd, xbs, n_tok, out):
    """out[t, r] = W[r]·x[t] for a matrix of type `kind` (TAGS[ggml type]), x as Q8_K
    blocks (activations.quantize_q8_k: int8 values as bytes, scales per 256, sums per 16)."""
    bb = _block_bytes(kind)
    nb = n_in // 256
    rb = nb * bb
    xbsf = np.empty(xbs.size, dtype=np.float32)  # the 16-value sums as floats (exact)
    for i in range(xbs.size):
        xbsf[i] = np.float32(xbs[i])
    for g in prange((n_out + 15) // 16):
        r0 = g * 16
        for t0 in range(0, n_tok, TILE):  # a tile's activations stay in L1 across the rows
            for ra in range(r0, min(r0 + 16, n_out)):
                _row_tile(kind, w, ra, rb, bb, nb, n_in, xq, xd, xbs, xbsf, t0, min(TILE, n_tok - t0), n_out, out)
