"""W·x for the block types of 32 values (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with x as 8-bit
blocks of 32 (activations.py: Q8_1 for the types with a block minimum, else Q8_0), in the
arithmetic of llama.cpp's AVX2/AVX-512 kernels, bit for bit (Q4_1: in the summation order
that asks for it, summation_order.py).

The row-group scaffolding is written once here; each type module supplies its block code,
plugged in at compile time through `overload`s keyed by a `TypeTag` first argument (as
kquant_products.py does), so each type still gets its own compiled code:
- `BLOCK_BYTES`, `TURNED_WORDS` (int32 words one turned block takes: 16 rows' worth);
- `turn_block(w, rowoff, o, words)`: the 16 rows' blocks at byte o (rowoff: the rows'
  starts) turned word-wise, word k of row r at words[16 k + r], so that one `dpbusd` gives
  the integer sums of four values of all 16 rows (llama.cpp's "repacked" layout);
- `block_values(words, o)`: the turned block at words[o:] as eight vectors of four
  unsigned values per row (values 4l..4l+3 in vector l);
- `Q_OFFSET`: what the unsigned values exceed the stored level by (q - Q_OFFSET), taken
  out as Q_OFFSET times the activations' sums; `HAS_MIN` where w = d q + m.

Two orders of float operations:
- block sums (Q4_0, Q8_0, as llama.cpp's repacked Q4_0 kernels take them; Q4_1 in the
  engine's order): per row and block the exact integer sum S, then acc = fma(S, d_w d_y, acc),
  block after block, plus, for Q4_1, the minimum term below.
- lane sums (Q5_0, Q5_1, and Q4_1 in llama.cpp's order: ggml_vec_dot_q4_1_q8_1 and its kin):
  eight float lanes per output, lane l taking values 4l..4l+3: acc_l = fma(d_w d_y, S_l, acc_l)
  block after block, then ((acc4 + acc0) + (acc6 + acc2)) + ((acc5 + acc1) + (acc7 + acc3))
  plus, for the types with a minimum, sum_b m_b s_b taken block by block from 0 with separate
  multiply and add.
A lane sum costs a conversion and a fused multiply-add per lane where a block sum costs one
of each per block: eight of each instead of one for the same 8 dpbusd (SmolLM2's 30 layers
of Q4_1 matrices, 2 threads: each token beyond the first of a batch 0.61 -> 0.35 ms).
Either way one lane per row for 16 rows, and a token's operations are those of the token
alone, whatever its batch (batch invariance).

numba's on-disk cache checks this file only: after editing a type's block code, delete
engine/quants/__pycache__ (as for _common.py and _int8.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ..ggml_types import GGMLType
from ..summation_order import LLAMA_CPP
from . import q4_0, q4_1, q5_0, q5_1, q8_0
from ._common import MATH_EXACT, TypeTag, TypeTagType, compiled_call
from ._int8 import (
    dpbusd,
    i32x16_bytes,
    i32x16_load,
    i32x16_splat,
    i32x16_to_f32,
    i32x16_zero,
    int8_group_sums,
    prefetch,
    prefetch_next_group,
    rows16_offsets,
    store_rows16,
    store_tile4,
    sum_lanes8,
    u8x64_splat_word,
    u8x64_store,
)
from ._simd import vadd, vfma, vload, vload_f16, vload_half_pairs16, vmul, vsplat, vstore

# Each type's row-group body: the order of its float operations (above) and, for the lane
# sums, where the running lanes live. Q4_1 in llama.cpp's order holds a tile of LANE_TILE
# tokens' lanes in registers over the group's pre-turned blocks; Q5_0 and Q5_1, whose values
# cost more to decode than a nibble mask, decode each block once: for a batch the group's
# blocks into a buffer of values that each tile of tokens reads with its lanes in registers,
# for one or two tokens block by block with the lanes in memory.
_BODIES = {int(GGMLType.Q4_0): "block_sums", int(GGMLType.Q8_0): "block_sums",
           int(GGMLType.Q4_1): "block_sums", int(GGMLType.Q5_0): "lanes_decoded",
           int(GGMLType.Q5_1): "lanes_decoded"}
# Where llama.cpp's order (summation_order.LLAMA_CPP) is not the engine's: its own body.
_LLAMA_CPP_BODIES = {int(GGMLType.Q4_1): "lanes_in_registers"}
_MODULES = {int(GGMLType.Q4_0): q4_0, int(GGMLType.Q4_1): q4_1, int(GGMLType.Q5_0): q5_0,
            int(GGMLType.Q5_1): q5_1, int(GGMLType.Q8_0): q8_0}
TAGS = {t: TypeTag(t) for t in _MODULES}
_LLAMA_CPP_TAGS = {t: TypeTag(t, LLAMA_CPP) for t in _LLAMA_CPP_BODIES}


def tag_for(ggml_type, order: str) -> TypeTag:
    """The kernels' first argument for a type summed in `order` (summation_order.py)."""
    t = int(ggml_type)
    return _LLAMA_CPP_TAGS.get(t, TAGS[t]) if order == LLAMA_CPP else TAGS[t]


def _body(kind) -> str:
    """The row-group body of a kernel's TypeTagType (at compile time)."""
    if kind.order == LLAMA_CPP and kind.ggml_type in _LLAMA_CPP_BODIES:
        return _LLAMA_CPP_BODIES[kind.ggml_type]
    return _BODIES[kind.ggml_type]


# Which activations each type takes: Q8_1 (values, scales, block sums) where the weights
# have a minimum, else Q8_0 (values, scales).
Q8_1_TYPES: frozenset[GGMLType] = frozenset(GGMLType(t) for t, m in _MODULES.items() if getattr(m, "HAS_MIN", False))
Q8_0_TYPES: frozenset[GGMLType] = frozenset(GGMLType(t) for t in _MODULES) - Q8_1_TYPES


def _layout(kind):
    raise NotImplementedError  # only inside the kernels, through the overloads


def _turn(kind, w, rowoff, o, words):
    raise NotImplementedError


def _values(kind, words, o):
    raise NotImplementedError


def _offset_sums(kind, xq):
    raise NotImplementedError


def _sum_start(kind, sums, i):
    raise NotImplementedError


def _min_step(kind, m, mw, xs, i):
    raise NotImplementedError


def _row_group(kind, w, g, rowoff, rb, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out):
    raise NotImplementedError


@overload(_layout, inline="always")
def _layout_for(kind):
    """(bytes of a block, words of a turned block, Q_OFFSET)."""
    if not isinstance(kind, TypeTagType):
        return None
    m = _MODULES[kind.ggml_type]
    bb, tw, off = m.BLOCK_BYTES, m.TURNED_WORDS, m.Q_OFFSET
    return lambda kind: (bb, tw, off)


@overload(_turn, inline="always")
def _turn_for(kind, w, rowoff, o, words):
    if not isinstance(kind, TypeTagType):
        return None
    turn = _MODULES[kind.ggml_type].turn_block
    return lambda kind, w, rowoff, o, words: turn(w, rowoff, o, words)


@overload(_values, inline="always")
def _values_for(kind, words, o):
    if not isinstance(kind, TypeTagType):
        return None
    values = _MODULES[kind.ggml_type].block_values
    return lambda kind, words, o: values(words, o)


@overload(_offset_sums, inline="always")
def _offset_sums_for(kind, xq):
    """The sums of the activations that Q_OFFSET multiplies: per block (block sums) or per
    lane of four; none where the values are the levels themselves (Q_OFFSET 0)."""
    if not isinstance(kind, TypeTagType):
        return None
    group = 32 if _body(kind) == "block_sums" else 4
    if _MODULES[kind.ggml_type].Q_OFFSET:
        return lambda kind, xq: int8_group_sums(xq, group)
    return lambda kind, xq: np.zeros(0, dtype=np.int32)


@overload(_sum_start, inline="always")
def _sum_start_for(kind, sums, i):
    """A lane's integer sum before its values go in: -Q_OFFSET times its activations' sum."""
    if not isinstance(kind, TypeTagType):
        return None
    off = _MODULES[kind.ggml_type].Q_OFFSET
    if off:
        return lambda kind, sums, i: i32x16_splat(-off * sums[i])
    return lambda kind, sums, i: i32x16_zero()


@overload(_min_step, inline="always")
def _min_step_for(kind, m, mw, xs, i):
    """The minimum term after one more block: m + mw * s (the block's activation sum)."""
    if not isinstance(kind, TypeTagType):
        return None
    if getattr(_MODULES[kind.ggml_type], "HAS_MIN", False):
        return lambda kind, m, mw, xs, i: vadd(m, vmul(mw, vsplat(xs[i])))
    return lambda kind, m, mw, xs, i: m


def _block_total(kind, acc, msum):
    raise NotImplementedError


@overload(_block_total, inline="always")
def _block_total_for(kind, acc, msum):
    """A block-sum row's result: acc, plus the minimum term where the type has one."""
    if not isinstance(kind, TypeTagType):
        return None
    if getattr(_MODULES[kind.ggml_type], "HAS_MIN", False):
        return lambda kind, acc, msum: vadd(acc, msum)
    return lambda kind, acc, msum: acc


@njit(inline="always")
def _turn_block(kind, w, rowoff, g, rb, bb, b, dm, words):
    """Block b of row group g: its 16 rows' d to dm[0:16] (and their m, or two bytes that
    are not, to dm[16:32]), their values turned to words."""
    prefetch_next_group(w, g, rb, b, bb)
    vload_half_pairs16(w, rowoff, b * bb, dm)
    _turn(kind, w, rowoff, b * bb, words)


@njit(inline="always")
def _turn_group(kind, w, rowoff, g, rb, bb, tw, nb):
    """All nb blocks of row group g turned once, for a batch to read: block b's words at
    words[tw b:], its d and m at dm[32 b:]."""
    words = np.empty(tw * nb, dtype=np.int32)
    dm = np.empty(32 * nb, dtype=np.float32)
    for b in range(nb):
        _turn_block(kind, w, rowoff, g, rb, bb, b, dm[32 * b : 32 * b + 32], words[tw * b : tw * b + tw])
    return words, dm


# ---- block sums ----

@njit(inline="always")
def _block_step(kind, v, dw, acc, xq, xd, ysum, t, b, n_in, nb):
    """acc after block b of token t: fma(S, d_w d_y, acc), S the exact integer sum."""
    xo = t * n_in + b * 32
    s = _sum_start(kind, ysum, t * nb + b)
    s = dpbusd(s, v[0], u8x64_splat_word(xq, xo))
    s = dpbusd(s, v[1], u8x64_splat_word(xq, xo + 4))
    s = dpbusd(s, v[2], u8x64_splat_word(xq, xo + 8))
    s = dpbusd(s, v[3], u8x64_splat_word(xq, xo + 12))
    s = dpbusd(s, v[4], u8x64_splat_word(xq, xo + 16))
    s = dpbusd(s, v[5], u8x64_splat_word(xq, xo + 20))
    s = dpbusd(s, v[6], u8x64_splat_word(xq, xo + 24))
    s = dpbusd(s, v[7], u8x64_splat_word(xq, xo + 28))
    return vfma(i32x16_to_f32(s), vmul(dw, vsplat(xd[t * nb + b])), acc)


# Batches of more than 2 tokens turn the group's blocks once and go through them TILE tokens
# at a time, a tile's running lanes in registers (1.1-1.35x at 4-64 tokens); 1-2 tokens turn
# each block as they go (a separate pass over the turned blocks cost 10% at 1-2 tokens).
TILE = 4


@njit(inline="always")
def _group_block_sums(kind, w, g, rowoff, rb, nb, n_in, n_out, xq, xd, xs, ysum, n_tok, out):
    bb, tw, _ = _layout(kind)
    z = vsplat(np.float32(0.0))
    res = np.empty(16, dtype=np.float32)
    if n_tok <= 2:
        words = np.empty(tw, dtype=np.int32)
        dm = np.empty(32, dtype=np.float32)
        a0 = a1 = m0 = m1 = z
        for b in range(nb):
            _turn_block(kind, w, rowoff, g, rb, bb, b, dm, words)
            dw = vload(dm, 0)
            mw = vload(dm, 16)
            v = _values(kind, words, 0)
            a0 = _block_step(kind, v, dw, a0, xq, xd, ysum, 0, b, n_in, nb)
            m0 = _min_step(kind, m0, mw, xs, b)
            if n_tok > 1:
                a1 = _block_step(kind, v, dw, a1, xq, xd, ysum, 1, b, n_in, nb)
                m1 = _min_step(kind, m1, mw, xs, nb + b)
        a0, a1 = _block_total(kind, a0, m0), _block_total(kind, a1, m1)
        store_tile4(out, 0, n_tok, a0, a1, a1, a1, g, n_out, res)
    else:
        words, dm = _turn_group(kind, w, rowoff, g, rb, bb, tw, nb)
        _block_tiles(kind, words, 0, tw, dm, 0, 32, -1, g, nb, n_in, n_out, xq, xd, xs, ysum, n_tok, out)


def _block_scales(dm, o):
    raise NotImplementedError


@overload(_block_scales, inline="always")
def _block_scales_for(dm, o):
    """A block's 16 d and 16 m (or whatever follows the d where the type has no m) at dm[o:]:
    floats (a group turned by _turn_group) or halves (a matrix held turned)."""
    if dm.dtype == types.float32:
        return lambda dm, o: (vload(dm, o), vload(dm, o + 16))
    return lambda dm, o: (vload_f16(dm, o), vload_f16(dm, o + 16))


@njit(inline="always")
def _block_tiles(kind, words, wo, w_stride, dm, do, d_stride, ahead, g, nb, n_in, n_out, xq, xd, xs, ysum, n_tok, out):
    """Each tile of TILE tokens over the group's prepared blocks in block-sum order, the
    tile's sums in registers: block b's turned words at words[wo + w_stride b:], its d and m
    at dm[do + d_stride b:]. With ahead >= 0 the first tile asks for the words at
    words[ahead + w_stride b:] (the next group's) as it goes."""
    z = vsplat(np.float32(0.0))
    res = np.empty(16, dtype=np.float32)
    for t0 in range(0, n_tok, TILE):
        nt = min(TILE, n_tok - t0)
        a0 = a1 = a2 = a3 = m0 = m1 = m2 = m3 = z
        for b in range(nb):
            if t0 == 0 and ahead >= 0:
                for line in range(0, w_stride, 16):
                    prefetch(words, ahead + w_stride * b + line)
            dw, mw = _block_scales(dm, do + d_stride * b)
            v = _values(kind, words, wo + w_stride * b)
            i = t0 * nb + b
            a0 = _block_step(kind, v, dw, a0, xq, xd, ysum, t0, b, n_in, nb)
            m0 = _min_step(kind, m0, mw, xs, i)
            if nt > 1:
                a1 = _block_step(kind, v, dw, a1, xq, xd, ysum, t0 + 1, b, n_in, nb)
                m1 = _min_step(kind, m1, mw, xs, i + nb)
            if nt > 2:
                a2 = _block_step(kind, v, dw, a2, xq, xd, ysum, t0 + 2, b, n_in, nb)
                m2 = _min_step(kind, m2, mw, xs, i + 2 * nb)
            if nt > 3:
                a3 = _block_step(kind, v, dw, a3, xq, xd, ysum, t0 + 3, b, n_in, nb)
                m3 = _min_step(kind, m3, mw, xs, i + 3 * nb)
        store_tile4(out, t0, nt, _block_total(kind, a0, m0), _block_total(kind, a1, m1),
                    _block_total(kind, a2, m2), _block_total(kind, a3, m3), g, n_out, res)


# ---- lane sums ----

@njit(inline="always")
def _token_lanes(kind, v, d, a, xq, xo, sums, ys):
    """Lane vectors a (a tuple of 8) after one block of one token: a[l] = fma(d, S_l, a[l])
    with S_l the integer sum of values 4l..4l+3 (v: the block's 8 value vectors; sums[ys + l]:
    the activation sums Q_OFFSET multiplies)."""
    return (
        vfma(d, i32x16_to_f32(dpbusd(_sum_start(kind, sums, ys), v[0], u8x64_splat_word(xq, xo))), a[0]),
        vfma(d, i32x16_to_f32(dpbusd(_sum_start(kind, sums, ys + 1), v[1], u8x64_splat_word(xq, xo + 4))), a[1]),
        vfma(d, i32x16_to_f32(dpbusd(_sum_start(kind, sums, ys + 2), v[2], u8x64_splat_word(xq, xo + 8))), a[2]),
        vfma(d, i32x16_to_f32(dpbusd(_sum_start(kind, sums, ys + 3), v[3], u8x64_splat_word(xq, xo + 12))), a[3]),
        vfma(d, i32x16_to_f32(dpbusd(_sum_start(kind, sums, ys + 4), v[4], u8x64_splat_word(xq, xo + 16))), a[4]),
        vfma(d, i32x16_to_f32(dpbusd(_sum_start(kind, sums, ys + 5), v[5], u8x64_splat_word(xq, xo + 20))), a[5]),
        vfma(d, i32x16_to_f32(dpbusd(_sum_start(kind, sums, ys + 6), v[6], u8x64_splat_word(xq, xo + 24))), a[6]),
        vfma(d, i32x16_to_f32(dpbusd(_sum_start(kind, sums, ys + 7), v[7], u8x64_splat_word(xq, xo + 28))), a[7]),
    )


@njit(inline="always")
def _lanes_total(a, msum):
    """ggml's hsum_float_8 of the eight lane vectors, plus the minimum term (as sum_lanes8)."""
    return vadd(vadd(vadd(vadd(a[4], a[0]), vadd(a[6], a[2])), vadd(vadd(a[5], a[1]), vadd(a[7], a[3]))), msum)


@njit(inline="always")
def _group_lanes_in_memory(kind, w, g, rowoff, rb, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out):
    """Block by block, each decoded once for every token, whose lanes are in acc."""
    bb, tw, _ = _layout(kind)
    res = np.empty(16, dtype=np.float32)
    words = np.empty(tw, dtype=np.int32)
    dm = np.empty(32, dtype=np.float32)
    acc = np.zeros(n_tok * 128, dtype=np.float32)  # acc[128 t + 16 l + r]: lane l
    msum = np.zeros(n_tok * 16, dtype=np.float32)
    for b in range(nb):
        _turn_block(kind, w, rowoff, g, rb, bb, b, dm, words)
        dw = vload(dm, 0)
        mw = vload(dm, 16)
        v = _values(kind, words, 0)
        for t in range(n_tok):
            xo = t * n_in + b * 32
            d = vmul(dw, vsplat(xd[t * nb + b]))
            a = 128 * t
            for l in range(8):  # lane by lane from memory, as _token_lanes in registers
                s_l = dpbusd(_sum_start(kind, sums, (t * nb + b) * 8 + l), v[l], u8x64_splat_word(xq, xo + 4 * l))
                vstore(acc, a + 16 * l, vfma(d, i32x16_to_f32(s_l), vload(acc, a + 16 * l)))
            vstore(msum, 16 * t, _min_step(kind, vload(msum, 16 * t), mw, xs, t * nb + b))
    for t in range(n_tok):
        store_rows16(out, t * n_out, sum_lanes8(acc, 128 * t, vload(msum, 16 * t)), g, n_out, res)


# Tokens per inner step of _group_lanes_in_registers: a token's eight lane vectors and its
# minimum-term sum stay in registers over the row group's blocks (nine of the 32 vector
# registers per token).
LANE_TILE = 2


@njit(inline="always")
def _lane_tiles(kind, blocks, wo, stride, decoded, dm, do, d_stride, ahead, g, nb, n_in, n_out, xq, xd, xs, sums, n_tok,
                out):
    """Each tile of LANE_TILE tokens over the group's prepared blocks, the tile's lanes in
    registers: block b at blocks[wo + stride b:] (turned words, or with `decoded` their eight
    value vectors), its d and m at dm[do + d_stride b:] (_block_scales). With ahead >= 0 the
    first tile asks for blocks[ahead + stride b:] (the next group's) as it goes."""
    z = vsplat(np.float32(0.0))
    res = np.empty(16, dtype=np.float32)
    for t0 in range(0, n_tok, LANE_TILE):
        two = t0 + 1 < n_tok
        a = (z, z, z, z, z, z, z, z)
        c = (z, z, z, z, z, z, z, z)
        ma = z
        mc = z
        for b in range(nb):
            if t0 == 0 and ahead >= 0:
                for line in range(0, stride, 16):
                    prefetch(blocks, ahead + stride * b + line)
            dw, mw = _block_scales(dm, do + d_stride * b)
            o = wo + stride * b
            v = _decoded_values(blocks, o) if decoded else _values(kind, blocks, o)
            a = _token_lanes(kind, v, vmul(dw, vsplat(xd[t0 * nb + b])), a, xq, t0 * n_in + b * 32, sums, (t0 * nb + b) * 8)
            ma = _min_step(kind, ma, mw, xs, t0 * nb + b)
            if two:
                t1 = t0 + 1
                c = _token_lanes(kind, v, vmul(dw, vsplat(xd[t1 * nb + b])), c, xq, t1 * n_in + b * 32, sums, (t1 * nb + b) * 8)
                mc = _min_step(kind, mc, mw, xs, t1 * nb + b)
        store_rows16(out, t0 * n_out, _lanes_total(a, ma), g, n_out, res)
        if two:
            store_rows16(out, (t0 + 1) * n_out, _lanes_total(c, mc), g, n_out, res)


@njit(inline="always")
def _group_lanes_in_registers(kind, w, g, rowoff, rb, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out):
    """The group's blocks turned once, then read by each tile of LANE_TILE tokens."""
    bb, tw, _ = _layout(kind)
    words, dm = _turn_group(kind, w, rowoff, g, rb, bb, tw, nb)
    _lane_tiles(kind, words, 0, tw, False, dm, 0, 32, -1, g, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out)


@njit(inline="always")
def _decode_group(kind, w, rowoff, g, rb, bb, tw, nb):
    """All nb blocks of row group g decoded once: block b's eight value vectors at
    vals[128 b:] (int32 words), its d and m at dm[32 b:] (Q5_0's 18 blocks of 576 values:
    9 KB, in L1)."""
    words = np.empty(tw, dtype=np.int32)
    vals = np.empty(128 * nb, dtype=np.int32)
    dm = np.empty(32 * nb, dtype=np.float32)
    for b in range(nb):
        _turn_block(kind, w, rowoff, g, rb, bb, b, dm[32 * b : 32 * b + 32], words)
        v = _values(kind, words, 0)
        for l in range(8):
            u8x64_store(vals, 128 * b + 16 * l, v[l])
    return vals, dm


@njit(inline="always")
def _decoded_values(vals, o):
    return (i32x16_bytes(i32x16_load(vals, o)), i32x16_bytes(i32x16_load(vals, o + 16)),
            i32x16_bytes(i32x16_load(vals, o + 32)), i32x16_bytes(i32x16_load(vals, o + 48)),
            i32x16_bytes(i32x16_load(vals, o + 64)), i32x16_bytes(i32x16_load(vals, o + 80)),
            i32x16_bytes(i32x16_load(vals, o + 96)), i32x16_bytes(i32x16_load(vals, o + 112)))


@njit(inline="always")
def _group_lanes_decoded(kind, w, g, rowoff, rb, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out):
    """Q5_0, Q5_1: one or two tokens decode each block as they go (_group_lanes_in_memory);
    a batch decodes the group's blocks once, then each tile of LANE_TILE tokens reads the
    values and keeps its lanes in registers: SmolLM2's Q5_0 576 x 1536, 512 tokens, 1.4x."""
    if n_tok <= 2:
        _group_lanes_in_memory(kind, w, g, rowoff, rb, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out)
        return
    bb, tw, _ = _layout(kind)
    vals, dm = _decode_group(kind, w, rowoff, g, rb, bb, tw, nb)
    _lane_tiles(kind, vals, 0, 128, True, dm, 0, 32, -1, g, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out)


_GROUP_BODIES = {"block_sums": _group_block_sums, "lanes_in_registers": _group_lanes_in_registers,
                 "lanes_decoded": _group_lanes_decoded}


@overload(_row_group, inline="always")
def _row_group_for(kind, w, g, rowoff, rb, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out):
    if not isinstance(kind, TypeTagType):
        return None
    body = _GROUP_BODIES[_body(kind)]
    return lambda kind, w, g, rowoff, rb, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out: body(
        kind, w, g, rowoff, rb, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out)


@njit(parallel=True, **MATH_EXACT)
def matmul_q8(kind, w, n_out, n_in, xq, xd, xs, n_tok, out):
    """out[t, r] = W[r]·x[t] for a matrix of type `kind` (tag_for(ggml type, order)) with x as 8-bit
    blocks of 32: int8 values as bytes, float scales and, for Q8_1_TYPES, float block sums
    (for the others xs is not read). One kernel for any number of tokens; 16 rows a task."""
    bb, _, _ = _layout(kind)
    nb = n_in // 32
    rb = nb * bb
    sums = _offset_sums(kind, xq)
    for g in prange((n_out + 15) // 16):
        _row_group(kind, w, g, rows16_offsets(g, n_out, rb), rb, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out)


def bound_kernel(ggml_type, w, n_out, n_in, order):
    """The product of a `n_out` x `n_in` matrix of `ggml_type` held in w (flat, as the
    kernels read it), summed in `order` (summation_order.py), as a call (parts, n_tok, out)
    with parts the rounded activations (quants.rounded_activations: values, scales and, for
    Q8_1_TYPES, block sums)."""
    return _taking_parts(ggml_type, compiled_call(matmul_q8, tag_for(ggml_type, order), w, n_out, n_in))


def _taking_parts(ggml_type, call):
    """`call(xq, xd, xs, n_tok, out)` as a call (parts, n_tok, out)."""
    if GGMLType(int(ggml_type)) in Q8_1_TYPES:
        return lambda p, n_tok, out: call(p[0], p[1], p[2], n_tok, out)
    # Q8_0 activations carry no block sums: the scales stand in the slot, unread
    return lambda p, n_tok, out: call(p[0], p[1], p[1], n_tok, out)


# ---- sixteen rows held turned (Q4_0, Q4_1, Q8_0 read into memory: resident_weights.py) ----
# A matrix read into the process's memory can be held with each block of 16 rows already
# turned, in the same bytes: the rows' 16 scales d (and 16 minimums m) as halves, then the
# block's turned words. A product then reads each group of rows as one stream and turns
# nothing, so a token's arithmetic is only its own (the turning was most of a one-token
# product's work: SmolLM2's 576 x 1536, in cache, one thread). Whatever the number of tokens,
# the next group is asked for while this one is multiplied: a verification step of a few
# tokens costs about what one token costs while memory, not arithmetic, is the limit.
# The integers and float operations are those of matmul_q8: the same bits.
TURNED_TYPES: frozenset[GGMLType] = frozenset({GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q8_0})


def _turned_block_words(kind):
    raise NotImplementedError


@overload(_turned_block_words, inline="always")
def _turned_block_words_for(kind):
    """Words of a turned block: its halves (d, then m where the type has one) then its
    values' words; the same bytes as the 16 rows' blocks."""
    if not isinstance(kind, TypeTagType):
        return None
    m = _MODULES[kind.ggml_type]
    halves = 32 if getattr(m, "HAS_MIN", False) else 16
    n = np.int64(halves // 2 + m.TURNED_WORDS)
    assert 4 * n == 16 * m.BLOCK_BYTES
    return lambda kind: n


def can_turn(ggml_type, n_out: int) -> bool:
    return GGMLType(int(ggml_type)) in TURNED_TYPES and n_out % 16 == 0


@njit(nogil=True, **MATH_EXACT)
def turn_rows16(kind, w8, w16, w32, n_out, n_in):
    """The matrix in w8 (its ggml bytes, n_out a multiple of 16; w16, w32 the same memory as
    halves and words) turned in place, a group of 16 rows at a time through a copy of the
    group. Without the GIL: the copy into memory turns while the forward pass runs."""
    bb, _, _ = _layout(kind)
    gw = _turned_block_words(kind)
    halves = 2 * (gw - _layout(kind)[1])  # the 16 d (and 16 m) before the words
    nb = n_in // 32
    rb = nb * bb
    group = np.empty(16 * rb, dtype=np.uint8)
    rowoff = np.arange(16, dtype=np.int64) * rb
    for g in range(n_out // 16):
        group[:] = w8[g * 16 * rb : (g + 1) * 16 * rb]
        for b in range(nb):
            at = (g * nb + b) * gw
            for h in range(halves // 16):  # d of the 16 rows, then m
                for r in range(16):
                    o = rowoff[r] + b * bb + 2 * h
                    w16[2 * at + 16 * h + r] = np.uint16(group[o]) | (np.uint16(group[o + 1]) << np.uint16(8))
            _turn(kind, group, rowoff, b * bb, w32[at + halves // 2 : at + gw])


def unturn(ggml_type, data: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """The ggml bytes (n_out, row bytes) of a matrix held turned (turn_rows16 undone)."""
    m = _MODULES[int(ggml_type)]
    bb, nb = m.BLOCK_BYTES, n_in // 32
    halves = 32 if getattr(m, "HAS_MIN", False) else 16
    blocks = np.ascontiguousarray(data).reshape(-1).view(np.uint8).reshape(n_out // 16, nb, 16 * bb)
    out = np.empty((n_out // 16, 16, nb, bb), dtype=np.uint8)
    h = blocks[:, :, : 2 * halves].reshape(n_out // 16, nb, halves // 16, 16, 2)  # [g, b, which, row, byte]
    for which in range(halves // 16):
        out[:, :, :, 2 * which : 2 * which + 2] = h[:, :, which].transpose(0, 2, 1, 3)
    words = blocks[:, :, 2 * halves :].reshape(n_out // 16, nb, -1, 16, 4)  # [g, b, word k, row, byte]
    qs = words.transpose(0, 3, 1, 2, 4).reshape(n_out // 16, 16, nb, -1)  # the words of a row in order
    out[:, :, :, bb - qs.shape[-1] :] = qs
    return out.reshape(n_out, nb * bb)


def _turned_group(kind, t16, t32, g, gw, halves, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out):
    raise NotImplementedError


@njit(inline="always")
def _turned_block_sums(kind, t16, t32, g, gw, halves, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out):
    at = g * nb * gw  # the group's first block
    _block_tiles(kind, t32, at + halves // 2, gw, t16, 2 * at, 2 * gw, at + nb * gw, g, nb, n_in, n_out,
                 xq, xd, xs, sums, n_tok, out)


@njit(inline="always")
def _turned_lanes(kind, t16, t32, g, gw, halves, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out):
    at = g * nb * gw
    _lane_tiles(kind, t32, at + halves // 2, gw, False, t16, 2 * at, 2 * gw, at + nb * gw, g, nb, n_in, n_out,
                xq, xd, xs, sums, n_tok, out)


@overload(_turned_group, inline="always")
def _turned_group_for(kind, t16, t32, g, gw, halves, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out):
    if not isinstance(kind, TypeTagType):
        return None
    body = _turned_block_sums if _body(kind) == "block_sums" else _turned_lanes
    return lambda kind, t16, t32, g, gw, halves, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out: body(
        kind, t16, t32, g, gw, halves, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out)


@njit(parallel=True, **MATH_EXACT)
def matmul_q8_turned(kind, t16, t32, n_out, n_in, xq, xd, xs, n_tok, out):
    """out[t, r] = W[r]·x[t] for a matrix of type `kind` (tag_for(ggml type, order)) held
    turned (t16, t32: its memory as halves and words): matmul_q8's results, each tile of
    tokens reading the group's blocks as they are, the next group asked for during the
    first tile."""
    gw = _turned_block_words(kind)
    halves = 2 * (gw - _layout(kind)[1])
    nb = n_in // 32
    sums = _offset_sums(kind, xq)
    for g in prange(n_out // 16):
        _turned_group(kind, t16, t32, g, gw, halves, nb, n_in, n_out, xq, xd, xs, sums, n_tok, out)


def bound_turned_kernel(ggml_type, w, n_out, n_in, order):
    """bound_kernel for a matrix held turned (w: its memory, flat)."""
    call = compiled_call(matmul_q8_turned, tag_for(ggml_type, order), w.view(np.uint16), w.view(np.int32), n_out, n_in)
    return _taking_parts(ggml_type, call)
