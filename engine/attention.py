"""Causal grouped-query attention over the KV cache, in numba.

The cache holds keys and values in half precision, as llama.cpp's F16 cache does (the caller
rounds them, KVCache). Values are stored a position per row, (n_ctx, n_head_kv, hd); keys in
tiles of KEY_TILE positions, (n_tiles, n_head_kv, hd, KEY_TILE): element d of sixteen
positions' keys is one 16-lane vector, so a query's scores for sixteen positions are 16-lane
fused multiply-adds over d, with no sum across lanes (store_keys and keys_at write and read
positions; attention reads tiles).

The engine's order (summation_order.ENGINE, the default), the same for every (token, head)
pair in a batch or alone, so a token's output is the same bits however the prompt was split
and drafted tokens checked in one batch get the outputs they would get one at a time. Its
operands are llama.cpp's (the query and the softmax weights rounded to half, so every product
of two halves is exact in float32 and a fused multiply-add rounds as an add does); its sums
run along positions rather than across a head's elements:
- score of position j: s = 0, then s = s + q[d] k_j[d] for d = 0 .. hd-1 in turn, times the scale;
- softmax: best = the largest score, e_j = ggml_expf(s_j - best) (ggml's vector expf), summed
  per group of sixteen positions as _reduce16 adds, the groups in double; w_j = e_j * (float)(1/sum),
  rounded to half;
- out[d]: o = 0, then o = o + w_j v_j[d] for j = 0 .. last in turn.
_attention_tiles does this in vectors (heads of whole steps of 64), _attention_scalar one
element at a time (any head size; the tests' reference for the vector kernel).

llama.cpp (without flash attention) sums otherwise: each Q.K a horizontal sum over d in one of
two orders (ggml_vec_dot_f16 for a single token, tinyBLAS in a batch), each weighted sum of
values in 64 (or 16) accumulators. `summation_order.summation_order(LLAMA_CPP)` switches to
that arithmetic (_attention_scalar, one element at a time), which reproduces llama.cpp's
logits bit for bit (the parity tests). The engine's order reads each key once per vector of
sixteen positions where llama.cpp's needs a horizontal sum per position: a step of 16
drafted tokens at 1,700 positions, SmolLM2's 30 layers, 18.8 -> 13.1 ms of attention.
Work units (a run of tokens, a KV head, a block of its query heads) run in parallel.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import njit, prange

from . import summation_order
from .ggml_math import fma32, ggml_expf, round_f16
from .ggml_vector_math import ggml_expf16
from .quants._common import half_to_f32_fast as _half  # exact for the cache's finite halves
from .quants._int8 import f32x16_sum, prefetch
from .quants._simd import vfma, vload, vload_f16, vmax, vmul, vround_f16, vsplat, vstore, vsub

KEY_TILE = 16
"""Positions per tile of the key cache: one 16-lane vector of float32."""


def key_tiles(n_pos: int) -> int:
    """Tiles that hold positions 0..n_pos-1."""
    return -(-n_pos // KEY_TILE)


def key_cache_shape(n_layer: int, n_ctx: int, n_head_kv: int, head_dim: int) -> tuple[int, ...]:
    """The key cache's shape for n_ctx positions: whole tiles, the last one padded."""
    return (n_layer, key_tiles(n_ctx), n_head_kv, head_dim, KEY_TILE)


def store_keys(k_layer: np.ndarray, start: int, bits: np.ndarray) -> None:
    """Keys (n, n_head_kv, hd) half bits as positions start..start+n-1 of one layer's tiles."""
    i, n = 0, len(bits)
    while i < n:  # a tile's share at a time: plain slices (a generated token's store is one)
        tile, lane = divmod(start + i, KEY_TILE)
        m = min(KEY_TILE - lane, n - i)
        k_layer[tile, :, :, lane : lane + m] = bits[i : i + m].transpose(1, 2, 0)
        i += m


def keys_at(k_layer: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Keys of positions lo..hi-1 of one layer's tiles, (n, n_head_kv, hd) half bits (a copy)."""
    pos = np.arange(lo, hi)
    return k_layer[pos // KEY_TILE, :, :, pos % KEY_TILE]


@njit(inline="always")
def _reduce16(e, o):
    """_mm512_reduce_add_ps of e[o:o+16]: halves added lane-wise, then quarters, then pairs."""
    c0 = (e[o + 4] + e[o + 12]) + (e[o + 0] + e[o + 8])
    c1 = (e[o + 5] + e[o + 13]) + (e[o + 1] + e[o + 9])
    c2 = (e[o + 6] + e[o + 14]) + (e[o + 2] + e[o + 10])
    c3 = (e[o + 7] + e[o + 15]) + (e[o + 3] + e[o + 11])
    return (c0 + c2) + (c1 + c3)


@njit(inline="always")
def _dot16(a, b, lanes):
    """Dot product of two half-valued vectors (length a multiple of 16) in llamafile's
    tinyBLAS order (llama.cpp's batch path): 16 lanes, lane l summing elements l, l+16, ...
    in turn, then reduced."""
    for l in range(16):
        lanes[l] = a[l] * _half(b[l])
    for c in range(16, a.size, 16):
        for l in range(16):
            lanes[l] = fma32(a[c + l], _half(b[c + l]), lanes[l])
    return _reduce16(lanes, 0)


@njit(inline="always")
def _dot64(a, b, lanes):
    """Dot product in ggml_vec_dot_f16's order (llama.cpp's one-token path): four 16-lane
    accumulators over steps of 64, combined as (s0 + s2) + (s1 + s3), reduced, and any tail
    beyond the last multiple of 64 added in double."""
    n64 = a.size - a.size % 64
    for l in range(64):
        lanes[l] = np.float32(0.0)
    for c in range(0, n64, 64):
        for l in range(64):
            lanes[l] = fma32(a[c + l], _half(b[c + l]), lanes[l])
    for l in range(16):
        lanes[l] = (lanes[l] + lanes[32 + l]) + (lanes[16 + l] + lanes[48 + l])
    total = np.float64(_reduce16(lanes, 0))
    for i in range(n64, a.size):
        total += np.float64(a[i] * _half(b[i]))
    return np.float32(total)


def attention(q, k_tiles, v_cache, start_pos, scale, out):
    """q: (n_tok, n_head, hd) float32 for positions start_pos..start_pos+n_tok-1; k_tiles:
    one layer's key tiles (n_tiles, n_head_kv, hd, KEY_TILE) and v_cache its values
    (n_ctx, n_head_kv, hd), uint16 half bits, holding positions 0..start_pos+n_tok-1;
    out: (n_tok, n_head, hd) float32."""
    n_tok, n_head, hd = q.shape
    if summation_order.current() == summation_order.LLAMA_CPP:
        _attention_scalar(q, k_tiles, v_cache, start_pos, scale, out, LLAMA_ONE_TOKEN_SUMS if n_tok == 1 else LLAMA_BATCH_SUMS)
    elif hd % 64 == 0 and k_tiles.flags.c_contiguous and v_cache.flags.c_contiguous and out.flags.c_contiguous:
        n_head_kv = k_tiles.shape[1]
        pb = pair_block(n_tok, n_head // n_head_kv, n_head_kv, numba.get_num_threads())
        _attention_tiles(q, k_tiles.reshape(-1), v_cache.reshape(-1), n_head_kv, start_pos, scale, out.reshape(-1), pb,
                         len(token_runs(n_tok)))
    else:
        _attention_scalar(q, k_tiles, v_cache, start_pos, scale, out, ENGINE_SUMS)


PAIR_BLOCK = 4
"""(token, query head) pairs of one KV head that share each key and value read: four pairs'
accumulators over four tiles or four value vectors (16 registers) beside the keys or values."""
UNIT_TOKENS = 16  # at most this many tokens in one run of work units


def token_runs(n_tok: int) -> list[int]:
    """The tokens cut into as few runs of work units as keep each within UNIT_TOKENS, of
    equal length to a token: run r is tokens [r n // R, (r + 1) n // R). (Runs of 16 and a
    remainder left one of two threads the remainder alone: a verification step of 17
    tokens took 1.4x one of 16.)"""
    n_runs = -(-n_tok // UNIT_TOKENS)
    return [(r + 1) * n_tok // n_runs - r * n_tok // n_runs for r in range(n_runs)]


@functools.lru_cache(maxsize=4096)
def pair_block(n_tok: int, group: int, n_head_kv: int, threads: int) -> int:
    """How many pairs a work unit takes: the most that still spreads the units evenly over
    the threads (a unit of p pairs costs about p + 1/3 pair's work: the keys and values are
    read and converted once for all of them). SmolLM2, one token, 2 threads: 2 (six units,
    [2, 1] pairs for each KV head); eight tokens: 4; a 7B (no grouping), one token: 1."""
    runs = token_runs(n_tok)
    best, best_cost = 1, float("inf")
    for pb in range(1, PAIR_BLOCK + 1):
        n_blocks = -(-group * runs[0] // pb)
        costs = []
        for run in runs:  # unit order does not matter for this estimate
            pairs = group * run
            for _ in range(n_head_kv):
                costs += [min(pb, pairs - b * pb) + 1 / 3 if b * pb < pairs else 0.0 for b in range(n_blocks)]
        per_thread = -(-len(costs) // threads)  # prange hands each thread one contiguous share
        cost = max(sum(costs[i : i + per_thread]) for i in range(0, len(costs), per_thread))
        if cost < best_cost - 1e-9:
            best, best_cost = pb, cost
    return best


@njit(inline="always")
def _fma4(a0, a1, a2, a3, w, x0, x1, x2, x3):
    """Four accumulator vectors after adding w times four vectors (a query element times four
    tiles' keys, or a weight times a value's 64 elements)."""
    return vfma(w, x0, a0), vfma(w, x1, a1), vfma(w, x2, a2), vfma(w, x3, a3)


@njit(inline="always")
def _load4_f16(h, o, step):
    """Four 16-lane vectors of halves at h[o], h[o + step], h[o + 2 step], h[o + 3 step]."""
    return vload_f16(h, o), vload_f16(h, o + step), vload_f16(h, o + 2 * step), vload_f16(h, o + 3 * step)


@njit(inline="always")
def _four_pairs(a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, e0, e1, e2, e3, w, o, stride, n_pairs,
                x0, x1, x2, x3):
    """Up to four pairs' accumulators (a, b, c, e) after _fma4, each with its own multiplier
    (pair p's at w[o + p stride]) and the same four vectors x, read once for all of them."""
    a0, a1, a2, a3 = _fma4(a0, a1, a2, a3, vsplat(w[o]), x0, x1, x2, x3)
    if n_pairs > 1:
        b0, b1, b2, b3 = _fma4(b0, b1, b2, b3, vsplat(w[o + stride]), x0, x1, x2, x3)
    if n_pairs > 2:
        c0, c1, c2, c3 = _fma4(c0, c1, c2, c3, vsplat(w[o + 2 * stride]), x0, x1, x2, x3)
    if n_pairs > 3:
        e0, e1, e2, e3 = _fma4(e0, e1, e2, e3, vsplat(w[o + 3 * stride]), x0, x1, x2, x3)
    return a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, e0, e1, e2, e3


@njit(inline="always")
def _store4(out, o, a0, a1, a2, a3):
    vstore(out, o, a0)
    vstore(out, o + 16, a1)
    vstore(out, o + 32, a2)
    vstore(out, o + 48, a3)


@njit(inline="always")
def _store4_scaled(out, o, a0, a1, a2, a3, s):
    _store4(out, o, vmul(a0, s), vmul(a1, s), vmul(a2, s), vmul(a3, s))


# Tiles ahead whose keys a KV head's first unit asks for while it reads four (the later units
# of the head find them in L2), and positions ahead for the values: a head's tiles and rows
# are strided in the cache (every KV head's between them), a pattern the hardware prefetcher
# follows late.
PREFETCH_TILES = 4
PREFETCH_POSITIONS = 16


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _attention_tiles(q, k_flat, v_flat, n_head_kv, start_pos, scale, out_flat, pb, n_runs):
    """attention in the engine's order, in 16-lane vectors, for head sizes of whole steps of
    64: k_flat, v_flat the layer's key tiles and values flattened, out_flat the output
    (n_tok, n_head, hd) flattened.

    A work unit takes up to `pb` pairs of one KV head (its query heads for one of `n_runs`
    runs of tokens, token_runs), so each key and value is read and converted once for all
    of them: the scores of four tiles (64 positions) for four pairs are sixteen accumulators,
    then the weighted sum of values 64 elements of four pairs at a time: every pair up to the
    first pair's last position, then each pair only up to its own (a later token's value, an
    overflowed half perhaps, never reaches an earlier token's output)."""
    n_tok, n_head, hd = q.shape
    group = n_head // n_head_kv
    vrow = n_head_kv * hd  # one position's values of every KV head
    ktile = n_head_kv * hd * KEY_TILE  # one tile's keys of every KV head
    # Units: a run of tokens, a KV head, a block of pb of its pairs (token-major).
    # Runs are ordered so that any contiguous half of the units (what prange hands each of two
    # threads) holds as many early (short) runs as late (long) ones.
    n_blocks = (group * ((n_tok + n_runs - 1) // n_runs) + pb - 1) // pb
    stride = (start_pos + n_tok + 2 * KEY_TILE - 1) // KEY_TILE * KEY_TILE  # a pair's scores: its tiles and one more
    for u in prange(n_runs * n_head_kv * n_blocks):
        i = u // (n_head_kv * n_blocks)
        kvh = u // n_blocks % n_head_kv
        blk = u % n_blocks
        run = i // 2 if i % 2 == 0 else n_runs - 1 - i // 2
        t_lo = run * n_tok // n_runs
        n_pairs_run = group * ((run + 1) * n_tok // n_runs - t_lo)
        p_lo = blk * pb
        n_pairs = min(pb, n_pairs_run - p_lo)
        if n_pairs <= 0:
            continue
        ts = np.empty(4, dtype=np.int64)
        hs = np.empty(4, dtype=np.int64)
        lasts = np.zeros(4, dtype=np.int64)
        qh = np.zeros(4 * hd, dtype=np.float32)  # pairs beyond n_pairs: never read
        for p in range(n_pairs):
            ts[p] = t_lo + (p_lo + p) // group
            hs[p] = kvh * group + (p_lo + p) % group
            lasts[p] = start_pos + ts[p]
            for d in range(hd):
                qh[p * hd + d] = round_f16(q[ts[p], hs[p], d])
        n_pos = lasts[n_pairs - 1] + 1  # pairs are token-major: the last is the latest
        scores = np.empty(4 * stride, dtype=np.float32)
        bests = np.empty(16, dtype=np.float32)
        vscale = vsplat(scale)
        z = vsplat(np.float32(0.0))
        kh = kvh * hd * KEY_TILE  # this head's keys in a tile
        # scores, four tiles at a time; positions past a pair's last are scored and ignored
        n64 = n_pos // 64 * 64
        for j0 in range(0, n64, 64):
            t0 = j0 // KEY_TILE * ktile + kh
            if blk == 0:
                for c in range(0, hd * KEY_TILE, 32):
                    for t in range(PREFETCH_TILES):
                        prefetch(k_flat, t0 + (PREFETCH_TILES + t) * ktile + c)
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = e0 = e1 = e2 = e3 = z
            for d in range(hd):  # element d of four tiles' keys, times each pair's query element d
                k0, k1, k2, k3 = _load4_f16(k_flat, t0 + d * KEY_TILE, ktile)
                a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, e0, e1, e2, e3 = _four_pairs(
                    a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, e0, e1, e2, e3, qh, d, hd, n_pairs, k0, k1, k2, k3)
            _store4_scaled(scores, j0, a0, a1, a2, a3, vscale)
            _store4_scaled(scores, stride + j0, b0, b1, b2, b3, vscale)
            _store4_scaled(scores, 2 * stride + j0, c0, c1, c2, c3, vscale)
            _store4_scaled(scores, 3 * stride + j0, e0, e1, e2, e3, vscale)
        for j0 in range(n64, n_pos, KEY_TILE):  # the last positions, a tile at a time
            t0 = j0 // KEY_TILE * ktile + kh
            a0 = b0 = c0 = e0 = z
            for d in range(hd):
                k0 = vload_f16(k_flat, t0 + d * KEY_TILE)
                a0 = vfma(vsplat(qh[d]), k0, a0)
                if n_pairs > 1:
                    b0 = vfma(vsplat(qh[hd + d]), k0, b0)
                if n_pairs > 2:
                    c0 = vfma(vsplat(qh[2 * hd + d]), k0, c0)
                if n_pairs > 3:
                    e0 = vfma(vsplat(qh[3 * hd + d]), k0, e0)
            vstore(scores, j0, vmul(a0, vscale))
            vstore(scores, stride + j0, vmul(b0, vscale))
            vstore(scores, 2 * stride + j0, vmul(c0, vscale))
            vstore(scores, 3 * stride + j0, vmul(e0, vscale))
        # softmax per pair
        for p in range(n_pairs):
            so = p * stride
            last = lasts[p]
            n_full = (last + 1) // 16 * 16
            vbest = vsplat(np.float32(-np.inf))
            for j in range(0, n_full, 16):
                vbest = vmax(vbest, vload(scores, so + j))
            vstore(bests, 0, vbest)
            best = bests.max()
            for j in range(n_full, last + 1):
                best = max(best, scores[so + j])
            n_grp = (last + 16) // 16
            total = 0.0  # float64
            vbest = vsplat(best)
            for c in range(n_grp):
                o = so + c * 16
                vstore(scores, o, ggml_expf16(vsub(vload(scores, o), vbest)))
                if c == n_grp - 1:  # the last group is padded with zeros
                    for j in range(last + 1, n_grp * 16):
                        scores[so + j] = np.float32(0.0)
                total += np.float64(f32x16_sum(vload(scores, o)))
            vinv = vsplat(np.float32(1.0 / total))
            for c in range(n_grp):
                vstore(scores, so + c * 16, vround_f16(vmul(vload(scores, so + c * 16), vinv)))
        # the weighted sum of values, positions in order, 64 elements of every pair at a time
        for dc in range(0, hd, 64):
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = e0 = e1 = e2 = e3 = z
            for j in range(lasts[0] + 1):  # positions every pair sees (pairs are token-major)
                vo = j * vrow + kvh * hd + dc
                if blk == 0:
                    prefetch(v_flat, vo + PREFETCH_POSITIONS * vrow)
                    prefetch(v_flat, vo + PREFETCH_POSITIONS * vrow + 32)
                v0, v1, v2, v3 = _load4_f16(v_flat, vo, 16)  # value j's 64 elements, times each pair's weight
                a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, e0, e1, e2, e3 = _four_pairs(
                    a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, e0, e1, e2, e3, scores, j, stride, n_pairs,
                    v0, v1, v2, v3)
            for j in range(lasts[0] + 1, n_pos):  # the later tokens' own positions: each pair up to its last
                v0, v1, v2, v3 = _load4_f16(v_flat, j * vrow + kvh * hd + dc, 16)
                if n_pairs > 1 and j <= lasts[1]:
                    b0, b1, b2, b3 = _fma4(b0, b1, b2, b3, vsplat(scores[stride + j]), v0, v1, v2, v3)
                if n_pairs > 2 and j <= lasts[2]:
                    c0, c1, c2, c3 = _fma4(c0, c1, c2, c3, vsplat(scores[2 * stride + j]), v0, v1, v2, v3)
                if n_pairs > 3 and j <= lasts[3]:
                    e0, e1, e2, e3 = _fma4(e0, e1, e2, e3, vsplat(scores[3 * stride + j]), v0, v1, v2, v3)
            _store4(out_flat, (ts[0] * n_head + hs[0]) * hd + dc, a0, a1, a2, a3)
            if n_pairs > 1:
                _store4(out_flat, (ts[1] * n_head + hs[1]) * hd + dc, b0, b1, b2, b3)
            if n_pairs > 2:
                _store4(out_flat, (ts[2] * n_head + hs[2]) * hd + dc, c0, c1, c2, c3)
            if n_pairs > 3:
                _store4(out_flat, (ts[3] * n_head + hs[3]) * hd + dc, e0, e1, e2, e3)


# The scalar kernel's orders, named by how many accumulators the weighted sum of values keeps
# (position j adds into accumulator j % width); each comes with its own Q.K sum.
ENGINE_SUMS = 1  # the engine's order: Q.K over d in turn, values over positions in turn
LLAMA_ONE_TOKEN_SUMS = 64  # ggml_vec_dot_f16's: llama.cpp evaluating one token
LLAMA_BATCH_SUMS = 16  # tinyBLAS's: llama.cpp evaluating a batch


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _attention_scalar(q, k_tiles, v_cache, start_pos, scale, out, width):
    """attention one element at a time in the order `width` names (ENGINE_SUMS,
    LLAMA_ONE_TOKEN_SUMS or LLAMA_BATCH_SUMS; the module's docstring): the tests' reference
    for the vector kernel, and llama.cpp's arithmetic for summation_order(LLAMA_CPP)."""
    n_tok, n_head, hd = q.shape
    n_head_kv = k_tiles.shape[1]
    group = n_head // n_head_kv  # consecutive query heads share one KV head
    n_kv = start_pos + n_tok
    for h in prange(n_head):
        kvh = h // group
        scores = np.empty(n_kv + 16, dtype=np.float32)
        qh = np.empty(hd, dtype=np.float32)
        key = np.empty(hd, dtype=np.uint16)
        lanes = np.empty(64, dtype=np.float32)
        acc = np.empty((64, hd), dtype=np.float32)
        for t in range(n_tok):
            last = start_pos + t  # causal: a token sees itself and what came before
            for d in range(hd):
                qh[d] = round_f16(q[t, h, d])
            best = -np.inf
            for j in range(last + 1):
                key[:] = k_tiles[j // KEY_TILE, kvh, :, j % KEY_TILE]
                if width == ENGINE_SUMS:
                    s = np.float32(0.0)
                    for d in range(hd):
                        s = fma32(qh[d], _half(key[d]), s)
                elif width == LLAMA_ONE_TOKEN_SUMS:
                    s = _dot64(qh, key, lanes)
                else:
                    s = _dot16(qh, key, lanes)
                s = s * scale
                scores[j] = s
                if s > best:
                    best = s
            # exp in lanes of 16, each group of 16 summed as _mm512_reduce_add_ps does,
            # the groups in double
            n_grp = (last + 16) // 16
            for j in range(last + 1, n_grp * 16):
                scores[j] = np.float32(0.0)
            total = 0.0  # float64
            for c in range(n_grp):
                o = c * 16
                for j in range(o, min(o + 16, last + 1)):
                    scores[j] = ggml_expf(scores[j] - best)
                total += np.float64(_reduce16(scores, o))
            inv = np.float32(1.0 / total)
            # weights rounded to half; position j adds into accumulator j % width (llama.cpp's
            # padded cache rows being whole steps of 64 for vec_dot_f16)
            acc[:width, :] = 0.0
            for j in range(last + 1):
                p = round_f16(scores[j] * inv)
                a = acc[j % width]
                vj = v_cache[j, kvh]
                for d in range(hd):
                    a[d] = fma32(p, _half(vj[d]), a[d])
            if width == ENGINE_SUMS:
                out[t, h, :] = acc[0]
                continue
            if width == LLAMA_ONE_TOKEN_SUMS:
                for l in range(16):
                    for d in range(hd):
                        acc[l, d] = (acc[l, d] + acc[32 + l, d]) + (acc[16 + l, d] + acc[48 + l, d])
            for d in range(hd):
                out[t, h, d] = _reduce16(acc[:, d], 0)
