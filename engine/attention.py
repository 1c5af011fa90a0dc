"""Causal grouped-query attention over the KV cache, in numba, with llama.cpp's roundings.

llama.cpp (without flash attention) keeps keys and values in half precision, and its two
matrix products with them take half operands: the query is rounded to half for Q·K, and the
softmax weights are rounded to half for the weighted sum of values. Between them, ggml's
soft_max: scores scaled in float32, exp by ggml's own vector expf (ggml_math.ggml_expf) of
score - max, summed in double per 16 lanes, then multiplied by (float)(1/sum). This kernel
does the same; the caller stores keys and values already rounded to half (KVCache). The two
half-precision dot products are summed in one of llama.cpp's two orders: a single token's
(ggml_vec_dot_f16: 4 x 16 lanes) or a batch's (llamafile's tinyBLAS: 16 lanes). llama.cpp
itself switches between them by batch size, so its logits for a token depend on how many
tokens were evaluated with it (the default model's differ by up to about 2 from position 17
on). This engine sums every token in the single-token order by default, in a batch or not
(summation_order.ENGINE): a token's logits are then the same bits however the prompt was
split, regenerating at temperature 0 repeats the answer, drafted tokens checked in one batch get
the logits they would get one at a time, and a generated token (llama.cpp's one token at a
time) is summed as llama.cpp sums it; prompt positions past the 16th then differ from
llama.cpp's batched ones in the last bits. `summation_order.summation_order(LLAMA_CPP)`
switches to llama.cpp's own batch-dependent choice, which reproduces its batched prompt
logits bit for bit (how the parity tests check the batch order). Both operands of every product are
halves, so each product is exact in float32 and a fused multiply-add (ggml's and tinyBLAS's
FMA macros) rounds as a multiply then an add does: the kernels fuse, one vector operation
instead of two. Heads run in parallel.
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
from .quants._int8 import f32x16_row_sums, f32x16_sum, prefetch
from .quants._simd import vadd, vfma, vload, vload_f16, vmax, vmul, vround_f16, vsplat, vstore, vsub


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


def attention(q, k_cache, v_cache, start_pos, scale, out):
    """q: (n_tok, n_head, hd) float32 for positions start_pos..start_pos+n_tok-1;
    k_cache, v_cache: (n_ctx, n_head_kv, hd) uint16, the half-precision bits of the keys
    and values of positions 0..start_pos+n_tok-1; out: (n_tok, n_head, hd) float32."""
    one_token_order = summation_order.current() == summation_order.ENGINE or q.shape[0] == 1
    n_tok, n_head, hd = q.shape
    if one_token_order and hd % 64 == 0 and k_cache.flags.c_contiguous and v_cache.flags.c_contiguous and out.flags.c_contiguous:
        n_head_kv = k_cache.shape[1]
        pb = pair_block(n_tok, n_head // n_head_kv, n_head_kv, numba.get_num_threads())
        _attention_vec(q, k_cache.reshape(-1), v_cache.reshape(-1), n_head_kv, start_pos, scale, out.reshape(-1), pb,
                       len(token_runs(n_tok)))
    else:
        _attention(q, k_cache, v_cache, start_pos, scale, out, one_token_order)


PAIR_BLOCK = 4
"""(token, query head) pairs of one KV head that share each key and value read: four pairs'
lane vectors (16 registers) beside the key's or value's four."""
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
def _row_lanes64(qh, qo, k, o, hd):
    """_dot64 of the rounded query at qh[qo:qo+hd] and the cached key at k[o:o+hd] (hd a
    multiple of 64), in vectors, before its last step: the four 16-lane accumulators are the
    four vectors, combined as ggml_vec_dot_f16 does; f32x16_sum of the result (the halves
    added as _reduce16 adds them) is the dot product."""
    a0 = a1 = a2 = a3 = vsplat(np.float32(0.0))
    for c in range(0, hd, 64):
        a0 = vfma(vload(qh, qo + c), vload_f16(k, o + c), a0)
        a1 = vfma(vload(qh, qo + c + 16), vload_f16(k, o + c + 16), a1)
        a2 = vfma(vload(qh, qo + c + 32), vload_f16(k, o + c + 32), a2)
        a3 = vfma(vload(qh, qo + c + 48), vload_f16(k, o + c + 48), a3)
    return vadd(vadd(a0, a2), vadd(a1, a3))


@njit(inline="always")
def _qk4(a0, a1, a2, a3, qh, qo, k0, k1, k2, k3):
    """A pair's four key lanes after the next 64 elements (its query at qh[qo:])."""
    return (vfma(vload(qh, qo), k0, a0), vfma(vload(qh, qo + 16), k1, a1),
            vfma(vload(qh, qo + 32), k2, a2), vfma(vload(qh, qo + 48), k3, a3))


@njit(inline="always")
def _key_lanes(qh, hd, k, o, n_pairs):
    """_row_lanes64 of up to four pairs' queries (qh[p hd:]) with one key, read once."""
    z = vsplat(np.float32(-0.0))  # x*y + -0.0 is x*y: the first step of 64 is its products alone
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = e0 = e1 = e2 = e3 = z
    for c in range(0, hd, 64):
        k0 = vload_f16(k, o + c)
        k1 = vload_f16(k, o + c + 16)
        k2 = vload_f16(k, o + c + 32)
        k3 = vload_f16(k, o + c + 48)
        a0, a1, a2, a3 = _qk4(a0, a1, a2, a3, qh, c, k0, k1, k2, k3)
        if n_pairs > 1:
            b0, b1, b2, b3 = _qk4(b0, b1, b2, b3, qh, hd + c, k0, k1, k2, k3)
        if n_pairs > 2:
            c0, c1, c2, c3 = _qk4(c0, c1, c2, c3, qh, 2 * hd + c, k0, k1, k2, k3)
        if n_pairs > 3:
            e0, e1, e2, e3 = _qk4(e0, e1, e2, e3, qh, 3 * hd + c, k0, k1, k2, k3)
    return (vadd(vadd(a0, a2), vadd(a1, a3)), vadd(vadd(b0, b2), vadd(b1, b3)),
            vadd(vadd(c0, c2), vadd(c1, c3)), vadd(vadd(e0, e2), vadd(e1, e3)))


@njit(inline="always")
def _lanes64(q0, q1, q2, q3, k0, k1, k2, k3):
    """_row_lanes64 of one query (q0..q3) and one key (k0..k3) of 64 elements: one step of 64,
    whose four accumulators start from nothing (-0.0 + x is x), combined as (0 + 2) + (1 + 3).
    The products are exact (halves), so q2*k2 added to q0*k0 in one fused step is the same
    sum: five operations instead of seven."""
    return vadd(vfma(q2, k2, vmul(q0, k0)), vfma(q3, k3, vmul(q1, k1)))


@njit(inline="always")
def _key_lanes64(qa0, qa1, qa2, qa3, qb0, qb1, qb2, qb3, qc0, qc1, qc2, qc3, qe0, qe1, qe2, qe3,
                 k, o, n_pairs):
    """_key_lanes for hd 64 with the four pairs' queries in registers (loaded once per work
    unit, not once per position: the scores' pass 10 -> 7.5 cycles a pair and position, Zen 4)."""
    k0 = vload_f16(k, o)
    k1 = vload_f16(k, o + 16)
    k2 = vload_f16(k, o + 32)
    k3 = vload_f16(k, o + 48)
    l0 = _lanes64(qa0, qa1, qa2, qa3, k0, k1, k2, k3)
    l1 = _lanes64(qb0, qb1, qb2, qb3, k0, k1, k2, k3) if n_pairs > 1 else l0
    l2 = _lanes64(qc0, qc1, qc2, qc3, k0, k1, k2, k3) if n_pairs > 2 else l0
    l3 = _lanes64(qe0, qe1, qe2, qe3, k0, k1, k2, k3) if n_pairs > 3 else l0
    return l0, l1, l2, l3


@njit(inline="always")
def _weigh4(a0, a1, a2, a3, w, v0, v1, v2, v3):
    """A pair's four accumulator vectors after adding weight w times a value's 64 elements."""
    return vfma(w, v0, a0), vfma(w, v1, a1), vfma(w, v2, a2), vfma(w, v3, a3)


@njit(inline="always")
def _store4(acc, o, a0, a1, a2, a3):
    vstore(acc, o, a0)
    vstore(acc, o + 16, a1)
    vstore(acc, o + 32, a2)
    vstore(acc, o + 48, a3)


@njit(inline="always")
def _combined(acc, l, d, hd):
    """Elements d..d+15 of accumulator l after ggml's (l + 32 + l) + (16 + l + 48 + l)."""
    return vadd(vadd(vload(acc, l * hd + d), vload(acc, (32 + l) * hd + d)),
                vadd(vload(acc, (16 + l) * hd + d), vload(acc, (48 + l) * hd + d)))


# Positions ahead whose keys or values are asked for while one is used: a head's rows in the
# cache are strided (a row holds every KV head), a pattern the hardware prefetcher follows
# late (SmolLM2, 2,000 positions, one token, 30 layers' caches out of cache: 10.3 -> 8.6 ms
# at 2 threads).
PREFETCH_POSITIONS = 64


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _attention_vec(q, k_flat, v_flat, n_head_kv, start_pos, scale, out_flat, pb, n_runs):
    """_attention in the single-token order for head sizes that are whole steps of 64, the
    same float operations in the same order for every (token, head) pair, in 16-lane vectors:
    k_flat, v_flat are the caches (n_ctx, n_head_kv, hd) flattened, out_flat the output
    (n_tok, n_head, hd) flattened.

    A work unit takes up to `pb` pairs of one KV head (its query heads for one of `n_runs`
    runs of tokens, token_runs), so each key and value is read and converted once for all
    of them. The weighted sum of values keeps ggml's 64 accumulators (accumulator l sums
    positions l, l + 64, ... in turn) but sums each accumulator in registers, one after
    another, instead of adding every position to one of 64 rows in memory."""
    n_tok, n_head, hd = q.shape
    group = n_head // n_head_kv
    row = n_head_kv * hd  # one position's keys (or values) of every KV head
    # Units: a run of tokens, a KV head, a block of pb of its pairs (token-major).
    # Runs are ordered so that any contiguous half of the units (what prange hands each of two
    # threads) holds as many early (short) runs as late (long) ones.
    n_blocks = (group * ((n_tok + n_runs - 1) // n_runs) + pb - 1) // pb
    n_ctx_seen = start_pos + n_tok
    stride = n_ctx_seen + 16  # a pair's scores
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
        qh = np.zeros(4 * hd, dtype=np.float32)  # pairs beyond n_pairs: read, never used
        for p in range(n_pairs):
            ts[p] = t_lo + (p_lo + p) // group
            hs[p] = kvh * group + (p_lo + p) % group
            lasts[p] = start_pos + ts[p]
            for d in range(hd):
                qh[p * hd + d] = round_f16(q[ts[p], hs[p], d])
        last_max = lasts[n_pairs - 1]  # pairs are token-major: the last is the latest
        scores = np.empty(4 * stride, dtype=np.float32)
        dots = np.empty(4 * 256, dtype=np.float32)  # sixteen positions' lane vectors, per pair
        bests = np.empty(64, dtype=np.float32)
        acc = np.empty(4 * 64 * hd, dtype=np.float32)  # pair p's accumulator l at acc[(64 p + l) hd:]
        vscale = vsplat(scale)
        ninf = vsplat(np.float32(-np.inf))
        for p in range(4):
            vstore(bests, 16 * p, ninf)
        # scores: sixteen positions at a time, their dot products' lane vectors finished
        # together (f32x16_row_sums: the same bits as one f32x16_sum each, a third of the work)
        n_full_max = (last_max + 1) // 16 * 16
        # hd 64: the pairs' queries held in registers over the positions (qh is 4 x 64 long)
        qa0, qa1, qa2, qa3 = vload(qh, 0), vload(qh, 16), vload(qh, 32), vload(qh, 48)
        qb0, qb1, qb2, qb3 = vload(qh, 64), vload(qh, 80), vload(qh, 96), vload(qh, 112)
        qc0, qc1, qc2, qc3 = vload(qh, 128), vload(qh, 144), vload(qh, 160), vload(qh, 176)
        qe0, qe1, qe2, qe3 = vload(qh, 192), vload(qh, 208), vload(qh, 224), vload(qh, 240)
        for j0 in range(0, n_full_max, 16):
            if blk == 0:  # a KV head's first unit brings its keys and values to L2 for the rest
                for r in range(16):
                    ahead = (j0 + r + PREFETCH_POSITIONS) * row + kvh * hd
                    for c in range(0, hd, 32):
                        prefetch(k_flat, ahead + c)
                        if n_pairs > 1:
                            prefetch(v_flat, ahead + c)  # read out of order after the softmax: in cache by then
            for r in range(16):
                if hd == 64:
                    l0, l1, l2, l3 = _key_lanes64(qa0, qa1, qa2, qa3, qb0, qb1, qb2, qb3, qc0, qc1, qc2, qc3,
                                                  qe0, qe1, qe2, qe3, k_flat, (j0 + r) * row + kvh * hd, n_pairs)
                else:
                    l0, l1, l2, l3 = _key_lanes(qh, hd, k_flat, (j0 + r) * row + kvh * hd, n_pairs)
                vstore(dots, 16 * r, l0)
                vstore(dots, 256 + 16 * r, l1)
                vstore(dots, 512 + 16 * r, l2)
                vstore(dots, 768 + 16 * r, l3)
            for p in range(n_pairs):
                if j0 + 16 <= (lasts[p] + 1) // 16 * 16:
                    s16 = vmul(f32x16_row_sums(dots, 256 * p), vscale)
                    vstore(scores, p * stride + j0, s16)
                    vstore(bests, 16 * p, vmax(vload(bests, 16 * p), s16))
        # per pair: the positions after its last whole sixteen, then the softmax
        for p in range(n_pairs):
            so = p * stride
            last = lasts[p]
            n_full = (last + 1) // 16 * 16
            best = -np.inf
            for r in range(16):
                if bests[16 * p + r] > best:
                    best = bests[16 * p + r]
            for j in range(n_full, last + 1):
                s = f32x16_sum(_row_lanes64(qh, p * hd, k_flat, j * row + kvh * hd, hd)) * scale
                scores[so + j] = s
                if s > best:
                    best = s
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
            for c in range(n_grp):  # the weights rounded to half, sixteen at a time
                vstore(scores, so + c * 16, vround_f16(vmul(vload(scores, so + c * 16), vinv)))
        # the weighted sum of values: accumulator l of every pair, 64 elements at a time
        z = vsplat(np.float32(0.0))
        l0_, l1_, l2_, l3_ = lasts[0], lasts[1], lasts[2], lasts[3]
        if n_pairs == 1:
            # Nothing shares the values' read: the positions in order, each added to its
            # accumulator row in memory (the rows stay in L1 while the values stream in; the
            # accumulator-at-a-time order reads them out of order: 7B at 2,000 positions,
            # one token, 1.14 against 1.37 ms a layer). The same additions in the same order.
            for i in range(0, 64 * hd, 16):
                vstore(acc, i, z)
            for j in range(l0_ + 1):
                w = vsplat(scores[j])
                a = (j & 63) * hd
                vo = j * row + kvh * hd
                for c in range(0, hd, 32):
                    prefetch(v_flat, vo + PREFETCH_POSITIONS * row + c)
                for d in range(0, hd, 16):
                    vstore(acc, a + d, vfma(w, vload_f16(v_flat, vo + d), vload(acc, a + d)))
        for dc in range(0, hd if n_pairs > 1 else 0, 64):
            for l in range(64):
                a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = e0 = e1 = e2 = e3 = z
                for j in range(l, last_max + 1, 64):
                    vo = j * row + kvh * hd + dc
                    if blk == 0:  # position j + 1: the next accumulator's (later units find it in L2)
                        prefetch(v_flat, vo + row)
                        prefetch(v_flat, vo + row + 32)
                    v0 = vload_f16(v_flat, vo)
                    v1 = vload_f16(v_flat, vo + 16)
                    v2 = vload_f16(v_flat, vo + 32)
                    v3 = vload_f16(v_flat, vo + 48)
                    if j <= l0_:
                        a0, a1, a2, a3 = _weigh4(a0, a1, a2, a3, vsplat(scores[j]), v0, v1, v2, v3)
                    if n_pairs > 1 and j <= l1_:
                        b0, b1, b2, b3 = _weigh4(b0, b1, b2, b3, vsplat(scores[stride + j]), v0, v1, v2, v3)
                    if n_pairs > 2 and j <= l2_:
                        c0, c1, c2, c3 = _weigh4(c0, c1, c2, c3, vsplat(scores[2 * stride + j]), v0, v1, v2, v3)
                    if n_pairs > 3 and j <= l3_:
                        e0, e1, e2, e3 = _weigh4(e0, e1, e2, e3, vsplat(scores[3 * stride + j]), v0, v1, v2, v3)
                o = l * hd + dc  # pair p's accumulator l at acc[(64 p + l) hd:]
                _store4(acc, o, a0, a1, a2, a3)
                if n_pairs > 1:
                    _store4(acc, o + 64 * hd, b0, b1, b2, b3)
                if n_pairs > 2:
                    _store4(acc, o + 128 * hd, c0, c1, c2, c3)
                if n_pairs > 3:
                    _store4(acc, o + 192 * hd, e0, e1, e2, e3)
        # per pair: accumulators l, 16+l, 32+l, 48+l combined as ggml does, then the sixteen
        # reduced per element as _reduce16 (halves added until one is left), lane-wise over d,
        # in place in the pair's first rows
        for p in range(n_pairs):
            pa = acc[p * 64 * hd : (p + 1) * 64 * hd]
            for d in range(0, hd, 16):
                for l in range(16):
                    vstore(pa, l * hd + d, _combined(pa, l, d, hd))
                width = 8
                while width >= 1:
                    for l in range(width):
                        vstore(pa, l * hd + d, vadd(vload(pa, l * hd + d), vload(pa, (l + width) * hd + d)))
                    width //= 2
                vstore(out_flat, (ts[p] * n_head + hs[p]) * hd + d, vload(pa, d))


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _attention(q, k_cache, v_cache, start_pos, scale, out, one):
    """attention, every token in ggml_vec_dot_f16's order (one) or tinyBLAS's."""
    n_tok, n_head, hd = q.shape
    n_head_kv = k_cache.shape[1]
    group = n_head // n_head_kv  # consecutive query heads share one KV head
    n_kv = start_pos + n_tok
    for h in prange(n_head):
        kvh = h // group
        scores = np.empty(n_kv + 16, dtype=np.float32)
        qh = np.empty(hd, dtype=np.float32)
        lanes = np.empty(64, dtype=np.float32)
        acc = np.empty((64, hd), dtype=np.float32)
        for t in range(n_tok):
            last = start_pos + t  # causal: a token sees itself and what came before
            for d in range(hd):
                qh[d] = round_f16(q[t, h, d])
            best = -np.inf
            for j in range(last + 1):
                if one:
                    s = _dot64(qh, k_cache[j, kvh], lanes) * scale
                else:
                    s = _dot16(qh, k_cache[j, kvh], lanes) * scale
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
            # weights rounded to half; the weighted sum of values in the same order as the
            # scores: tinyBLAS (lane j % 16) or vec_dot_f16 (accumulator j % 64, all of
            # llama.cpp's padded cache row being whole steps of 64)
            width = 64 if one else 16
            acc[:width, :] = 0.0
            for j in range(last + 1):
                p = round_f16(scores[j] * inv)
                a = acc[j % width]
                vj = v_cache[j, kvh]
                for d in range(hd):
                    a[d] = fma32(p, _half(vj[d]), a[d])
            if one:
                for l in range(16):
                    for d in range(hd):
                        acc[l, d] = (acc[l, d] + acc[32 + l, d]) + (acc[16 + l, d] + acc[48 + l, d])
            for d in range(hd):
                out[t, h, d] = _reduce16(acc[:, d], 0)
