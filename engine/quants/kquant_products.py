"""W·x for every k-quant type (Q2_K ... Q6_K) with x as Q8_K blocks: llama.cpp's
ggml_vec_dot_qX_K_q8_K, with 8-bit integer dot products (_int8).

Two kernels, each written once for several types; a type module plugs its block code in at
compile time through `overload`s keyed by the type of the kernel's first argument, a
`TypeTag` (_common.py) whose numba type names the ggml type, so each type gets its own
compiled code. `kernel_for(type)` says which kernel a type takes.

matmul_q8_k_rows16 (Q4_K, Q6_K: the types of the Q4_K_M files people run): sixteen rows at
once, one lane each. A prompt is compute-bound, and what it costs is the number of
instructions per weight and token: with a row's values four to a lane, one broadcast load of
four activations feeds sixteen rows, the byte products of a whole sub-block add up as 16-bit
pairs before its scale is applied once, and no lanes are summed across at the end. Each
block of the group's rows is turned word-wise once (transpose_words16) and goes by ROWS16_TILE
tokens at a time: 7B Q4_K prompt products 4.2 -> 2.0 ns per block and token at one thread.
One or two tokens take a cheaper route per type (rows16_row_sums, or turning each block as it
goes) that gives the same integers. Per row, token and block the kernel forms the exact
integers S (the scaled dot product) and M (the minimum or offset term), and the float
operations, fma(S, d d_x, acc) then the M term, are the same whatever the route or the
batch: batch invariance holds.

matmul_q8_k (Q2_K, Q3_K, Q5_K): one row at a time, tokens in tiles of up to TILE = 8: each
block decoded once for the tile, the tile's running lanes held in registers across the row's
blocks, and the tile's activations kept in L1 while the group's 16 rows go by. The scales are
applied with vpmaddubsw + vpdpwssd (and the mins in float, exactly). A token's float
operations and their order are those of the token alone, whatever its tile.

numba's on-disk cache checks this file only: after editing a type's block code, delete
engine/quants/__pycache__ (as for _common.py and _int8.py).
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import njit, prange
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import overload

from ..ggml_types import GGMLType
from . import q2_k, q3_k, q4_k, q5_k, q6_k
from ._common import MATH_EXACT, MATH_FAST, TypeTag, TypeTagType
from ._simd import vfma, vload, vmul, vsplat
from ._int8 import (
    dpbusd_scaled, f32x16_sum, i32x16_dup16, i32x16_load, i32x16_mul, i32x16_row_sums, i32x16_store, i32x16_sub,
    i32x16_to_f32, i32x16_zero,
    prefetch, prefetch_next_group, rows16_offsets, store_tile4, u8x64_load,
)

# ggml type -> its module (block decoding) and block size in bytes: one row at a time
_TYPES = {
    int(GGMLType.Q2_K): (q2_k, q2_k.BLOCK_BYTES),
    int(GGMLType.Q3_K): (q3_k, q3_k.BLOCK_BYTES),
    int(GGMLType.Q5_K): (q5_k, q5_k.BLOCK_BYTES),
}
# sixteen rows at a time (matmul_q8_k_rows16)
_ROWS16 = {
    int(GGMLType.Q4_K): q4_k,
    int(GGMLType.Q6_K): q6_k,
}
TYPES: frozenset[GGMLType] = frozenset(GGMLType(t) for t in (*_TYPES, *_ROWS16))


TAGS = {int(t): TypeTag(t) for t in TYPES}


def kernel_for(ggml_type):
    """The kernel computing W·x for a k-quant type: matmul_q8_k or matmul_q8_k_rows16, both
    called (TAGS[type], w, n_out, n_in, xq, xd, xbs, n_tok, out)."""
    return matmul_q8_k_rows16 if int(ggml_type) in _ROWS16 else matmul_q8_k

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


# ---- sixteen rows at a time, one lane each (Q4_K, Q6_K) ----
# A type module gives its sizes (BLOCK_BYTES; ROWS16_WORDS, ROWS16_SCALES int32 per block of
# 16 rows; ROWS16_XSUMS int32 per token and block; ROWS16_CHUNKS; ROWS16_SCRATCH;
# ROWS16_ROW_BY_ROW) and rows16_dm (the rows' d and dmin), rows16_prepare (a block of 16 rows
# turned word-wise, its scales as vectors), rows16_xsums, rows16_chunk (the exact integer sums
# of a few sub-blocks for up to four tokens), rows16_mins (the M term), rows16_step (the float
# update of one block) and, for ROWS16_ROW_BY_ROW, rows16_row_sums. A batch turns all of a row
# group's blocks once and goes through them ROWS16_TILE tokens at a time (in the rows'
# L2-resident turned copy); one or two tokens take the type's own route. Either way a
# token's integers and float operations are the same: batch invariance holds.
ROWS16_TILE = 4
# numba's pedantic SSA check complains of the tile's conditionally updated sums once the
# type's chunk function is inlined into the loop; the compiled code is right (the tests
# compare every batch size with one token at a time), and a warning at first use would
# land on the user's terminal.
warnings.filterwarnings("ignore", message=r"variable '.*rows16_.*' is not in scope", category=NumbaIRAssumptionWarning)


def _r16_sizes(kind):
    raise NotImplementedError  # only inside the kernel, through the overloads below


def _r16_module(kind):
    if isinstance(kind, TypeTagType) and kind.ggml_type in _ROWS16:
        return _ROWS16[kind.ggml_type]
    return None


@overload(_r16_sizes, inline="always")
def _r16_sizes_for(kind):
    m = _r16_module(kind)
    if m is None:
        return None
    # as int64 values, not a tuple of literals (which numba's parfor analysis mistakes for a shape)
    bb, nw, ns, nx, nc, nsc = (np.int64(v) for v in (
        m.BLOCK_BYTES, m.ROWS16_WORDS, m.ROWS16_SCALES, m.ROWS16_XSUMS, m.ROWS16_CHUNKS, m.ROWS16_SCRATCH))

    def sizes(kind):
        return np.int64(bb), np.int64(nw), np.int64(ns), np.int64(nx), np.int64(nc), np.int64(nsc)

    return sizes


# Each _r16_<name>(kind, ...) is the type module's rows16_<name>(...), inlined.
def _r16_dm(kind, w, rowoff, o, dm, do):
    raise NotImplementedError


@overload(_r16_dm, inline="always")
def _r16_dm_for(kind, w, rowoff, o, dm, do):
    m = _r16_module(kind)
    if m is None:
        return None
    f = m.rows16_dm
    return lambda kind, w, rowoff, o, dm, do: f(w, rowoff, o, dm, do)


def _r16_prepare(kind, w, rowoff, o, words, wo, scales, so, sw):
    raise NotImplementedError


@overload(_r16_prepare, inline="always")
def _r16_prepare_for(kind, w, rowoff, o, words, wo, scales, so, sw):
    m = _r16_module(kind)
    if m is None:
        return None
    f = m.rows16_prepare
    return lambda kind, w, rowoff, o, words, wo, scales, so, sw: f(w, rowoff, o, words, wo, scales, so, sw)


def _r16_xsums(kind, xbs, xsums, i):
    raise NotImplementedError


@overload(_r16_xsums, inline="always")
def _r16_xsums_for(kind, xbs, xsums, i):
    m = _r16_module(kind)
    if m is None:
        return None
    f = m.rows16_xsums
    return lambda kind, xbs, xsums, i: f(xbs, xsums, i)


def _r16_chunk(kind, S0, S1, S2, S3, nt, xq, xo, n_in, scales, so, c, words, wo):
    raise NotImplementedError


@overload(_r16_chunk, inline="always")
def _r16_chunk_for(kind, S0, S1, S2, S3, nt, xq, xo, n_in, scales, so, c, words, wo):
    m = _r16_module(kind)
    if m is None:
        return None
    f = m.rows16_chunk
    return lambda kind, S0, S1, S2, S3, nt, xq, xo, n_in, scales, so, c, words, wo: f(S0, S1, S2, S3, nt, xq, xo, n_in, scales, so, c, words, wo)


def _r16_mins(kind, scales, so, xsums, i):
    raise NotImplementedError


@overload(_r16_mins, inline="always")
def _r16_mins_for(kind, scales, so, xsums, i):
    m = _r16_module(kind)
    if m is None:
        return None
    f = m.rows16_mins
    return lambda kind, scales, so, xsums, i: f(scales, so, xsums, i)


def _r16_row_sums(kind, w, o, xq, xbs, xo0, xo1, bo0, bo1, nt):
    raise NotImplementedError


@overload(_r16_row_sums, inline="always")
def _r16_row_sums_for(kind, w, o, xq, xbs, xo0, xo1, bo0, bo1, nt):
    m = _r16_module(kind)
    if m is None:
        return None
    f = m.rows16_row_sums
    return lambda kind, w, o, xq, xbs, xo0, xo1, bo0, bo1, nt: f(w, o, xq, xbs, xo0, xo1, bo0, bo1, nt)


def _r16_step(kind, acc, S, M, dv, dmv, dx):
    raise NotImplementedError


@overload(_r16_step, inline="always")
def _r16_step_for(kind, acc, S, M, dv, dmv, dx):
    m = _r16_module(kind)
    if m is None:
        return None
    f = m.rows16_step
    return lambda kind, acc, S, M, dv, dmv, dx: f(acc, S, M, dv, dmv, dx)


@njit(inline="always")
def _r16_block(kind, n_chunks, a0, a1, a2, a3, words, wo, scales, so, dm, do, xq, xd, xsums, t0, nt, b, n_in, nb):
    """The running lanes of tokens t0 .. t0 + nt - 1 (nt <= 4) after block b of the 16 rows."""
    S0 = S1 = S2 = S3 = i32x16_zero()
    for c in range(n_chunks):  # a loop, not copies: unrolled, the copies' weight vectors spill
        S0, S1, S2, S3 = _r16_chunk(kind, S0, S1, S2, S3, nt, xq, t0 * n_in + b * 256, n_in, scales, so, c, words, wo)
    dv = vload(dm, do)
    dmv = vload(dm, do + 16)
    i = t0 * nb + b
    a0 = _r16_step(kind, a0, S0, _r16_mins(kind, scales, so, xsums, i), dv, dmv, xd[i])
    if nt > 1:
        a1 = _r16_step(kind, a1, S1, _r16_mins(kind, scales, so, xsums, i + nb), dv, dmv, xd[i + nb])
    if nt > 2:
        a2 = _r16_step(kind, a2, S2, _r16_mins(kind, scales, so, xsums, i + 2 * nb), dv, dmv, xd[i + 2 * nb])
    if nt > 3:
        a3 = _r16_step(kind, a3, S3, _r16_mins(kind, scales, so, xsums, i + 3 * nb), dv, dmv, xd[i + 3 * nb])
    return a0, a1, a2, a3


# Up to two tiles of tokens (decoding, a drafted guess, a few sequences) take a group block
# by block as it streams in, both tiles' lanes in registers; the two kernels below differ
# only in how a block is prepared (turned as it goes, or read as held turned).
@njit(inline="always")
def _two_tiles_block(kind, n_chunks, acc, words, wo, scales, dm, xq, xd, xsums, n_tok, b, n_in, nb):
    """The eight running lane vectors (two tiles of ROWS16_TILE tokens) after block b."""
    a0, a1, a2, a3, b0, b1, b2, b3 = acc
    nt = min(n_tok, ROWS16_TILE)
    a0, a1, a2, a3 = _r16_block(kind, n_chunks, a0, a1, a2, a3, words, wo, scales, 0, dm, 0, xq, xd, xsums, 0, nt, b, n_in, nb)
    if n_tok > ROWS16_TILE:
        b0, b1, b2, b3 = _r16_block(kind, n_chunks, b0, b1, b2, b3, words, wo, scales, 0, dm, 0,
                                    xq, xd, xsums, ROWS16_TILE, n_tok - ROWS16_TILE, b, n_in, nb)
    return a0, a1, a2, a3, b0, b1, b2, b3


@njit(inline="always")
def _store_two_tiles(out, acc, n_tok, g, n_out, res):
    a0, a1, a2, a3, b0, b1, b2, b3 = acc
    store_tile4(out, 0, min(n_tok, ROWS16_TILE), a0, a1, a2, a3, g, n_out, res)
    if n_tok > ROWS16_TILE:
        store_tile4(out, ROWS16_TILE, n_tok - ROWS16_TILE, b0, b1, b2, b3, g, n_out, res)


# One or two tokens: a type takes one of two routes (its ROWS16_ROW_BY_ROW), chosen when
# the kernel is compiled for it, both giving the integers S and M the batch route gives.
@njit(inline="always")
def _few_tokens_turned(kind, w, g, rowoff, rb, bb, n_words, n_scales, n_chunks, sw, xq, xd, xbs, xsums,
                       n_tok, n_in, nb, n_out, out, res):
    """Each block of the 16 rows turned as it goes, then as a batch takes it."""
    words = np.empty(n_words, dtype=np.int32)
    scales = np.empty(n_scales, dtype=np.int32)
    dm = np.empty(32, dtype=np.float32)
    z = vsplat(np.float32(0.0))
    a0 = a1 = a2 = a3 = z
    for b in range(nb):
        prefetch_next_group(w, g, rb, b, bb)
        _r16_dm(kind, w, rowoff, b * bb, dm, 0)
        _r16_prepare(kind, w, rowoff, b * bb, words, 0, scales, 0, sw)
        a0, a1, a2, a3 = _r16_block(kind, n_chunks, a0, a1, a2, a3, words, 0, scales, 0, dm, 0, xq, xd, xsums, 0, n_tok, b, n_in, nb)
    store_tile4(out, 0, n_tok, a0, a1, a1, a1, g, n_out, res)


@njit(inline="always")
def _few_tokens_row_by_row(kind, w, g, rowoff, rb, bb, n_words, n_scales, n_chunks, sw, xq, xd, xbs, xsums,
                           n_tok, n_in, nb, n_out, out, res):
    """Row by row, each row's blocks in order (one stream, prefetched ahead), the type's
    rows16_row_sums giving lanes whose sums are S and M; the sixteen rows' lanes summed per
    block (i32x16_row_sums). For Q6_K, where putting a block's values together costs more
    than a token or two gain from it: 7B Q6_K, one token, 18.8 -> 12 ns a block."""
    per_tok = nb * 512  # token t, block b: S then M lanes of the 16 rows at t per_tok + 512 b
    lanes = np.empty(n_tok * per_tok, dtype=np.int32)
    for r in range(16):
        o = rowoff[r]
        for b in range(nb):
            ahead = o + b * bb + PREFETCH_AHEAD
            prefetch(w, ahead)
            prefetch(w, ahead + 64)
            prefetch(w, ahead + 128)
            s0, m0, s1, m1 = _r16_row_sums(kind, w, o + b * bb, xq, xbs, b * 256, n_in + b * 256,
                                           16 * b, 16 * (nb + b), n_tok)
            i32x16_store(lanes, 512 * b + 16 * r, s0)
            i32x16_store(lanes, 512 * b + 256 + 16 * r, m0)
            if n_tok > 1:
                i32x16_store(lanes, per_tok + 512 * b + 16 * r, s1)
                i32x16_store(lanes, per_tok + 512 * b + 256 + 16 * r, m1)
    dm = np.empty(32, dtype=np.float32)
    z = vsplat(np.float32(0.0))
    a0 = a1 = z
    for b in range(nb):
        _r16_dm(kind, w, rowoff, b * bb, dm, 0)
        dv = vload(dm, 0)
        dmv = vload(dm, 16)
        S, M = i32x16_row_sums(lanes, 512 * b), i32x16_row_sums(lanes, 512 * b + 256)
        a0 = _r16_step(kind, a0, S, M, dv, dmv, xd[b])
        if n_tok > 1:
            S, M = i32x16_row_sums(lanes, per_tok + 512 * b), i32x16_row_sums(lanes, per_tok + 512 * b + 256)
            a1 = _r16_step(kind, a1, S, M, dv, dmv, xd[nb + b])
    store_tile4(out, 0, n_tok, a0, a1, a1, a1, g, n_out, res)


def _r16_few_tokens(kind, w, g, rowoff, rb, bb, n_words, n_scales, n_chunks, sw, xq, xd, xbs, xsums,
                    n_tok, n_in, nb, n_out, out, res):
    raise NotImplementedError


@overload(_r16_few_tokens, inline="always")
def _r16_few_tokens_for(kind, w, g, rowoff, rb, bb, n_words, n_scales, n_chunks, sw, xq, xd, xbs, xsums,
                        n_tok, n_in, nb, n_out, out, res):
    m = _r16_module(kind)
    if m is None:
        return None
    route = _few_tokens_row_by_row if m.ROWS16_ROW_BY_ROW else _few_tokens_turned

    def few(kind, w, g, rowoff, rb, bb, n_words, n_scales, n_chunks, sw, xq, xd, xbs, xsums, n_tok, n_in, nb, n_out, out, res):
        route(kind, w, g, rowoff, rb, bb, n_words, n_scales, n_chunks, sw, xq, xd, xbs, xsums, n_tok, n_in, nb, n_out, out, res)

    return few


@njit(parallel=True, **MATH_FAST)
def matmul_q8_k_rows16(kind, w, n_out, n_in, xq, xd, xbs, n_tok, out):
    """out[t, r] = W[r]·x[t] for a matrix of type `kind` (TAGS[ggml type]) with a rows16
    kernel, x as Q8_K blocks (activations.quantize_q8_k)."""
    bb, n_words, n_scales, n_xsums, n_chunks, n_scratch = _r16_sizes(kind)
    nb = n_in // 256
    rb = nb * bb
    xsums = np.empty(n_tok * nb * n_xsums, dtype=np.int32)
    for i in range(n_tok * nb):
        _r16_xsums(kind, xbs, xsums, i)
    z = vsplat(np.float32(0.0))
    for g in prange((n_out + 15) // 16):
        rowoff = rows16_offsets(g, n_out, rb)
        res = np.empty(16, dtype=np.float32)
        sw = np.empty(n_scratch, dtype=np.int32)
        if n_tok <= 2:
            _r16_few_tokens(kind, w, g, rowoff, rb, bb, n_words, n_scales, n_chunks, sw, xq, xd, xbs, xsums,
                            n_tok, n_in, nb, n_out, out, res)
            continue
        if n_tok <= 2 * ROWS16_TILE:  # block by block as the group streams in (see the turned kernel)
            words = np.empty(n_words, dtype=np.int32)
            scales = np.empty(n_scales, dtype=np.int32)
            dm = np.empty(32, dtype=np.float32)
            acc = (z, z, z, z, z, z, z, z)
            for b in range(nb):
                prefetch_next_group(w, g, rb, b, bb)
                _r16_dm(kind, w, rowoff, b * bb, dm, 0)
                _r16_prepare(kind, w, rowoff, b * bb, words, 0, scales, 0, sw)
                acc = _two_tiles_block(kind, n_chunks, acc, words, 0, scales, dm, xq, xd, xsums, n_tok, b, n_in, nb)
            _store_two_tiles(out, acc, n_tok, g, n_out, res)
            continue
        words = np.empty(n_words * nb, dtype=np.int32)
        scales = np.empty(n_scales * nb, dtype=np.int32)
        dm = np.empty(32 * nb, dtype=np.float32)
        for b in range(nb):
            prefetch_next_group(w, g, rb, b, bb)
            _r16_dm(kind, w, rowoff, b * bb, dm, 32 * b)
            _r16_prepare(kind, w, rowoff, b * bb, words, n_words * b, scales, n_scales * b, sw)
        for t0 in range(0, n_tok, ROWS16_TILE):
            nt = min(ROWS16_TILE, n_tok - t0)
            a0 = a1 = a2 = a3 = z
            for b in range(nb):
                a0, a1, a2, a3 = _r16_block(kind, n_chunks, a0, a1, a2, a3, words, n_words * b, scales, n_scales * b, dm, 32 * b,
                                            xq, xd, xsums, t0, nt, b, n_in, nb)
            store_tile4(out, t0, nt, a0, a1, a2, a3, g, n_out, res)


# ---- sixteen rows held turned (Q4_K read into memory: resident_weights.py) ----
# A type with a turned layout (its TURNED_WORDS, rows16_turn, rows16_from_turned,
# unturn_rows16) can be held with each block of 16 rows already turned, one stream a group:
# the copy into memory turns it once (turn_rows16) and every product then skips the
# turning. The integers and float operations are those of matmul_q8_k_rows16: the same bits.
def _r16_turned_words(kind):
    raise NotImplementedError


@overload(_r16_turned_words, inline="always")
def _r16_turned_words_for(kind):
    m = _r16_module(kind)
    if m is None or not hasattr(m, "TURNED_WORDS"):
        return None
    n = np.int64(m.TURNED_WORDS)
    return lambda kind: n


def _r16_turn(kind, w, rowoff, o, t16, t32, at):
    raise NotImplementedError


@overload(_r16_turn, inline="always")
def _r16_turn_for(kind, w, rowoff, o, t16, t32, at):
    m = _r16_module(kind)
    if m is None or not hasattr(m, "rows16_turn"):
        return None
    f = m.rows16_turn
    return lambda kind, w, rowoff, o, t16, t32, at: f(w, rowoff, o, t16, t32, at)


def _r16_from_turned(kind, t16, t32, at, dm, do, scales, so):
    raise NotImplementedError


@overload(_r16_from_turned, inline="always")
def _r16_from_turned_for(kind, t16, t32, at, dm, do, scales, so):
    m = _r16_module(kind)
    if m is None or not hasattr(m, "rows16_from_turned"):
        return None
    f = m.rows16_from_turned
    return lambda kind, t16, t32, at, dm, do, scales, so: f(t16, t32, at, dm, do, scales, so)


TURNED_TYPES: frozenset[GGMLType] = frozenset(GGMLType(t) for t, m in _ROWS16.items() if hasattr(m, "rows16_turn"))
"""The types a matrix can be held turned in (QuantMatrix.turned)."""


def can_turn(ggml_type, n_out: int) -> bool:
    return GGMLType(int(ggml_type)) in TURNED_TYPES and n_out % 16 == 0


def unturn(ggml_type, data: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """The ggml bytes (n_out, row bytes) of a matrix held turned."""
    return _ROWS16[int(ggml_type)].unturn_rows16(data, n_out, n_in)


@njit(nogil=True, **MATH_EXACT)
def turn_rows16(kind, w8, w16, w32, n_out, n_in):
    """The matrix in w8 (its ggml bytes, n_out a multiple of 16; w16, w32 the same memory as
    halves and words) turned in place, a group of 16 rows at a time through a copy of the
    group. Without the GIL: the copy into memory turns while the forward pass runs."""
    bb = _r16_sizes(kind)[0]
    nb = n_in // 256
    rb = nb * bb
    group = np.empty(16 * rb, dtype=np.uint8)
    rowoff = np.arange(16, dtype=np.int64) * rb
    gw = _r16_turned_words(kind)
    for g in range(n_out // 16):
        group[:] = w8[g * 16 * rb : (g + 1) * 16 * rb]
        for b in range(nb):
            _r16_turn(kind, group, rowoff, b * bb, w16, w32, (g * nb + b) * gw)


@njit(parallel=True, **MATH_FAST)
def matmul_q8_k_turned(kind, t16, t32, n_out, n_in, xq, xd, xbs, n_tok, out):
    """out[t, r] = W[r]·x[t] for a matrix of type `kind` held turned (t16, t32: its memory
    as halves and words), x as Q8_K blocks: matmul_q8_k_rows16's results."""
    bb, n_words, n_scales, n_xsums, n_chunks, n_scratch = _r16_sizes(kind)
    gw = _r16_turned_words(kind)
    nb = n_in // 256
    xsums = np.empty(n_tok * nb * n_xsums, dtype=np.int32)
    for i in range(n_tok * nb):
        _r16_xsums(kind, xbs, xsums, i)
    z = vsplat(np.float32(0.0))
    for g in prange(n_out // 16):
        res = np.empty(16, dtype=np.float32)
        if n_tok <= 2 * ROWS16_TILE:
            # Up to two tiles (decoding, a drafted guess, a few sequences): block by block as
            # the group streams in, the lines two blocks ahead asked for while this one is
            # multiplied. Preparing the whole group first, then multiplying, waits on memory
            # and then on the arithmetic (7B w_gate, 2 threads: 4 tokens 2.14 -> 1.21 ms).
            scales = np.empty(n_scales, dtype=np.int32)
            dm = np.empty(32, dtype=np.float32)
            acc = (z, z, z, z, z, z, z, z)
            for b in range(nb):
                at = (g * nb + b) * gw
                for line in range(0, gw, 16):
                    prefetch(t32, at + 2 * gw + line)
                wo = _r16_from_turned(kind, t16, t32, at, dm, 0, scales, 0)
                acc = _two_tiles_block(kind, n_chunks, acc, t32, wo, scales, dm, xq, xd, xsums, n_tok, b, n_in, nb)
            _store_two_tiles(out, acc, n_tok, g, n_out, res)
            continue
        scales = np.empty(n_scales * nb, dtype=np.int32)
        dm = np.empty(32 * nb, dtype=np.float32)
        wos = np.empty(nb, dtype=np.int64)
        for b in range(nb):  # the group read once (prefetched ahead), then every tile from cache
            at = (g * nb + b) * gw
            for line in range(0, gw, 16):
                prefetch(t32, at + 2 * gw + line)
            wos[b] = _r16_from_turned(kind, t16, t32, at, dm, 32 * b, scales, n_scales * b)
        for t0 in range(0, n_tok, ROWS16_TILE):
            nt = min(ROWS16_TILE, n_tok - t0)
            a0 = a1 = a2 = a3 = z
            for b in range(nb):
                a0, a1, a2, a3 = _r16_block(kind, n_chunks, a0, a1, a2, a3, t32, wos[b], scales, n_scales * b, dm, 32 * b,
                                            xq, xd, xsums, t0, nt, b, n_in, nb)
            store_tile4(out, t0, nt, a0, a1, a2, a3, g, n_out, res)
