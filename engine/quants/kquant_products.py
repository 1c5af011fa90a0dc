"""W·x for every k-quant type (Q2_K ... Q6_K) with x as Q8_K blocks: llama.cpp's
ggml_vec_dot_qX_K_q8_K, with 8-bit integer dot products (_int8.dpbusd).

One kernel for the five types: each type module supplies `_decode_q8_k(blk)` (one block
made ready for any number of tokens: a flat tuple d, "dmin", four 64-value weight vectors,
four lane-scale vectors, the minimum-term vector) and the kernel plugs it in at compile
time through `overload`s keyed by the type of its first argument, a `KQuant` tag whose
numba type names the ggml type, so each type still gets its own compiled code. (A literal
int argument would do the same, but numba's `literally` made the kernel 100x slower.) The dot of one decoded block with one token's block of
activations is the same for every type, except Q3_K's (its offset is taken out in integers).

Rows: in runs of 16 per parallel task. For a handful of tokens (generation), one row at a
time; for batches, two rows at once sharing each activation load (30% faster at 64 tokens;
at one token it keeps twice the registers live and runs at half speed).

numba's on-disk cache checks this file only: after editing a type's _decode_q8_k, delete
engine/quants/__pycache__ (as for _common.py and _int8.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import NativeValue, models, overload, register_model, typeof_impl, unbox

from ..ggml_types import GGMLType
from . import q2_k, q3_k, q4_k, q5_k, q6_k
from ._common import MATH_FAST
from ._int8 import accumulate_q8_k, dpbusd, finish_q8_k, i32x16_add, i32x16_load, i32x16_mul, i32x16_zero, u8x64_load

# ggml type -> its module (block decoding) and block size in bytes
_TYPES = {
    int(GGMLType.Q2_K): (q2_k, 84),
    int(GGMLType.Q3_K): (q3_k, 110),
    int(GGMLType.Q4_K): (q4_k, 144),
    int(GGMLType.Q5_K): (q5_k, 176),
    int(GGMLType.Q6_K): (q6_k, 210),
}
TYPES: frozenset[GGMLType] = frozenset(GGMLType(t) for t in _TYPES)


class KQuant:
    """The kernel's first argument: which k-quant type, as a compile-time type."""

    def __init__(self, ggml_type: int) -> None:
        self.ggml_type = int(ggml_type)


class KQuantType(types.Type):
    def __init__(self, ggml_type: int) -> None:
        self.ggml_type = ggml_type
        super().__init__(name=f"KQuant({ggml_type})")


@typeof_impl.register(KQuant)
def _typeof_kquant(val, c):
    return KQuantType(val.ggml_type)


@register_model(KQuantType)
class _KQuantModel(models.OpaqueModel):
    pass


@unbox(KQuantType)
def _unbox_kquant(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())


TAGS = {t: KQuant(t) for t in _TYPES}

# From this many tokens on, rows go in pairs (see above). Measured on a 4096 x 11008 Q4_K
# matrix, one thread: 8 tokens 7.8 ms single / 8.1 ms pairs, 16 tokens 18.2 / 13.6 ms.
PAIR_MIN_TOKENS = 12


@njit(inline="always")
def dot_q8_k(dec, x0, x1, x2, x3, bsums):
    """(sum_c sc_c * (q_c . x_c) per lane, mins * bsums): one decoded block against one
    token's 256 activations (four 64-byte vectors) and its sixteen 16-value sums."""
    zero = i32x16_zero()
    s = i32x16_mul(dpbusd(zero, dec[2], x0), dec[6])
    s = i32x16_add(s, i32x16_mul(dpbusd(zero, dec[3], x1), dec[7]))
    s = i32x16_add(s, i32x16_mul(dpbusd(zero, dec[4], x2), dec[8]))
    s = i32x16_add(s, i32x16_mul(dpbusd(zero, dec[5], x3), dec[9]))
    return s, i32x16_mul(dec[10], bsums)


def _decode(kind, blk):
    raise NotImplementedError  # only inside the kernel, through the overload


def _dot(kind, dec, x0, x1, x2, x3, bsums):
    raise NotImplementedError


def _block_bytes(kind):
    raise NotImplementedError


@overload(_decode, inline="always")
def _decode_for(kind, blk):
    if not isinstance(kind, KQuantType):
        return None
    decode = _TYPES[kind.ggml_type][0]._decode_q8_k
    return lambda kind, blk: decode(blk)


@overload(_dot, inline="always")
def _dot_for(kind, dec, x0, x1, x2, x3, bsums):
    if not isinstance(kind, KQuantType):
        return None
    dot = q3_k.dot_q8_k if kind.ggml_type == int(GGMLType.Q3_K) else dot_q8_k
    return lambda kind, dec, x0, x1, x2, x3, bsums: dot(dec, x0, x1, x2, x3, bsums)


@overload(_block_bytes, inline="always")
def _block_bytes_for(kind):
    if not isinstance(kind, KQuantType):
        return None
    n = _TYPES[kind.ggml_type][1]
    return lambda kind: n


@njit(inline="always")
def _token_block(xq, xbs, t, b, n_in, nb):
    """Token t's activations of block b: four 64-byte vectors and the 16 sums."""
    xo = t * n_in + b * 256
    return (u8x64_load(xq, xo), u8x64_load(xq, xo + 64), u8x64_load(xq, xo + 128), u8x64_load(xq, xo + 192),
            i32x16_load(xbs, (t * nb + b) * 16))


@njit(parallel=True, **MATH_FAST)
def matmul_q8_k(kind, w, n_out, n_in, xq, xd, xbs, n_tok, out):
    """out[t, r] = W[r]·x[t] for a matrix of type `kind` (TAGS[ggml type]), x as Q8_K
    blocks (activations.quantize_q8_k: int8 values as bytes, scales per 256, sums per 16)."""
    bb = _block_bytes(kind)
    nb = n_in // 256
    rb = nb * bb
    pairs = n_tok >= PAIR_MIN_TOKENS
    for g in prange((n_out + 15) // 16):
        acc = np.empty(n_tok * 32, dtype=np.float32)  # token t: row a at 32t, row z at 32t + 16
        step = 2 if pairs else 1
        for p in range((min(16, n_out - g * 16) + step - 1) // step):
            ra = g * 16 + step * p
            acc[:] = 0.0
            if pairs:
                rz = min(ra + 1, n_out - 1)  # an odd last row is paired with itself
                for b in range(nb):
                    da = _decode(kind, w[ra * rb + b * bb : ra * rb + (b + 1) * bb])
                    dz = _decode(kind, w[rz * rb + b * bb : rz * rb + (b + 1) * bb])
                    for t in range(n_tok):
                        x0, x1, x2, x3, bs = _token_block(xq, xbs, t, b, n_in, nb)
                        dx = xd[t * nb + b]
                        s, m = _dot(kind, da, x0, x1, x2, x3, bs)
                        accumulate_q8_k(acc, 32 * t, s, m, da[0], da[1], dx)
                        s, m = _dot(kind, dz, x0, x1, x2, x3, bs)
                        accumulate_q8_k(acc, 32 * t + 16, s, m, dz[0], dz[1], dx)
                for t in range(n_tok):
                    out[t * n_out + rz] = finish_q8_k(acc, 32 * t + 16)
            else:
                for b in range(nb):
                    da = _decode(kind, w[ra * rb + b * bb : ra * rb + (b + 1) * bb])
                    for t in range(n_tok):
                        x0, x1, x2, x3, bs = _token_block(xq, xbs, t, b, n_in, nb)
                        s, m = _dot(kind, da, x0, x1, x2, x3, bs)
                        accumulate_q8_k(acc, 32 * t, s, m, da[0], da[1], xd[t * nb + b])
            for t in range(n_tok):
                out[t * n_out + ra] = finish_q8_k(acc, 32 * t)
