"""The row loops every type shares, written once and specialised per type at compile time.

Each type module supplies its block code: `dequantize_block(src, o, dst, e)` (the block at
src[o:] to dst[e : e + BLOCK_ELEMS]) and, for F32 / F16 / BF16, `value_fast(v)` (one
weight as float32). The kernels below take a `TypeTag` (TAGS[ggml type]) as their first
argument and plug that code in through `overload`s, as kquant_products.py does for the
k-quants' 8-bit products.

numba's on-disk cache checks this file only: after editing a type's block code, delete
engine/quants/__pycache__ (as for _common.py and _int8.py).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
from numba import njit, prange
from numba.extending import overload

from ..ggml_types import GGMLType
from . import bf16, f16, f32, q2_k, q3_k, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0
from ._common import MATH_EXACT, MATH_FAST, TypeTag, TypeTagType, group_of_rows

# The kernel module of each type, named after it: the type table is data (quants.KERNELS).
MODULES: dict[GGMLType, ModuleType] = {
    GGMLType[m.__name__.rpartition(".")[2].upper()]: m
    for m in (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k)
}
TAGS = {t: TypeTag(t) for t in MODULES}
# The element type the kernels read a type's data as: a module's WEIGHT_DTYPE where it has
# one (Q8_0's signed bytes, the float types), else the packed bytes as uint8.
WEIGHT_DTYPES: dict[GGMLType, np.dtype] = {t: getattr(m, "WEIGHT_DTYPE", np.dtype(np.uint8)) for t, m in MODULES.items()}


def _dequantize_block(kind, src, o, dst, e):
    raise NotImplementedError  # only inside the kernels, through the overloads


def _block_shape(kind):
    raise NotImplementedError


def _value_fast(kind, v):
    raise NotImplementedError


@overload(_dequantize_block, inline="always")
def _dequantize_block_for(kind, src, o, dst, e):
    if not isinstance(kind, TypeTagType):
        return None
    block = MODULES[GGMLType(kind.ggml_type)].dequantize_block
    return lambda kind, src, o, dst, e: block(src, o, dst, e)


@overload(_block_shape, inline="always")
def _block_shape_for(kind):
    """(values, array items) of one block: items of the array the kernels read (WEIGHT_DTYPES)."""
    if not isinstance(kind, TypeTagType):
        return None
    t = GGMLType(kind.ggml_type)
    elems, items = MODULES[t].BLOCK_ELEMS, MODULES[t].BLOCK_BYTES // WEIGHT_DTYPES[t].itemsize
    return lambda kind: (elems, items)


@overload(_value_fast, inline="always")
def _value_fast_for(kind, v):
    if not isinstance(kind, TypeTagType):
        return None
    value = MODULES[GGMLType(kind.ggml_type)].value_fast
    return lambda kind, v: value(v)


@njit(**MATH_EXACT)
def dequantize_rows(kind, w, row_items, rows, n_blocks, out):
    """Rows `rows` of W (`row_items` items of w each) to float32, n_blocks blocks per row."""
    elems, items = _block_shape(kind)
    n = n_blocks * elems
    for i in range(rows.size):
        r = rows[i]
        src = w[r * row_items : r * row_items + n_blocks * items]
        dst = out[i * n : (i + 1) * n]
        for b in range(n_blocks):
            _dequantize_block(kind, src, b * items, dst, b * elems)


@njit(parallel=True, **MATH_FAST)
def matmul(kind, w, n_out, n_in, x, n_tok, out):
    """out[t, r] = sum_k W[r, k] x[t, k] for F32 / F16 / BF16 weights (one value per item),
    float32 accumulation, four rows at a time (_common.py's conventions)."""
    for g in prange((n_out + 3) // 4):
        r0, r1, r2, r3 = group_of_rows(g, n_out)
        w0 = w[r0 * n_in : (r0 + 1) * n_in]
        w1 = w[r1 * n_in : (r1 + 1) * n_in]
        w2 = w[r2 * n_in : (r2 + 1) * n_in]
        w3 = w[r3 * n_in : (r3 + 1) * n_in]
        for t in range(n_tok):
            xt = x[t * n_in : (t + 1) * n_in]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for k in range(n_in):
                xv = xt[k]
                a0 += _value_fast(kind, w0[k]) * xv
                a1 += _value_fast(kind, w1[k]) * xv
                a2 += _value_fast(kind, w2[k]) * xv
                a3 += _value_fast(kind, w3[k]) * xv
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = a0
            ot[r1] = a1
            ot[r2] = a2
            ot[r3] = a3
