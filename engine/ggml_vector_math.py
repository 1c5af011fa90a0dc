"""ggml_math's arithmetic in 16-lane vectors (quants._simd's f32x16): the same operations
per lane, so the same bits as the scalar functions, at vector speed. The softmax and SiLU
take an exp per element; one at a time it was the larger part of attention at depth and
of the feed-forward's activation.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils
from numba.extending import intrinsic

from .ggml_math import _C1, _C2, _C3, _C4, _C5, _LN2_HI, _LN2_LO, _LOG2E, ggml_expf
from .quants._simd import _V16, f32x16, vadd, vdiv, vfma, vload, vmul, vsplat, vstore, vsub
from .threads import by_rows


@intrinsic
def _vscalef(typingctx, j, n):
    """_mm512_scalef_ps(j, n) for 16 lanes as ggml_expf finishes: j * 2**n rounded once (in
    double, where it is exact), or inf / 0 where |n| > 192 (or n is NaN), as ggml_expf."""
    if not (j == f32x16 and n == f32x16):
        return None

    def codegen(context, builder, sig, args):
        jv, nv = args
        i64, v16d = ir.IntType(64), ir.VectorType(ir.DoubleType(), 16)
        v16i = ir.VectorType(i64, 16)
        splat = lambda ty, x: ir.Constant(ty, [x] * 16)
        absn = builder.call(cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16]), "llvm.fabs.v16f32"), [nv])
        inside = builder.fcmp_ordered("<=", absn, splat(_V16, 192.0))
        safe_n = builder.select(inside, nv, splat(_V16, 0.0))
        bits = builder.shl(builder.add(builder.fptosi(safe_n, v16i), splat(v16i, 1023)), splat(v16i, 52))
        scaled = builder.fmul(builder.fpext(jv, v16d), builder.bitcast(bits, v16d))
        outside = builder.select(builder.fcmp_ordered(">", nv, splat(_V16, 0.0)), splat(_V16, math.inf), splat(_V16, 0.0))
        return builder.select(inside, builder.fptrunc(scaled, _V16), outside)

    return f32x16(j, n), codegen


@njit(inline="always")
def ggml_expf16(x):
    """ggml_expf of 16 lanes (an f32x16 from quants._simd), the same operations per lane."""
    r = vsplat(np.float32(12582912.0))
    z = vfma(x, vsplat(_LOG2E), r)
    n = vsub(z, r)
    minus_n = vmul(n, vsplat(np.float32(-1.0)))  # exact negation, as -n
    b = vfma(minus_n, vsplat(_LN2_LO), vfma(minus_n, vsplat(_LN2_HI), x))
    u = vmul(b, b)
    p_hi = vfma(vfma(vsplat(_C5), b, vsplat(_C4)), u, vfma(vsplat(_C3), b, vsplat(_C2)))
    j = vfma(p_hi, u, vfma(vsplat(_C1), b, vsplat(np.float32(1.0))))
    return _vscalef(j, n)


_EXACT = dict(cache=True, fastmath=False, error_model="numpy", boundscheck=False)


@njit(inline="always", fastmath=False, error_model="numpy", boundscheck=False)
def _swiglu_row(g, u, out, t):
    """ggml_math._swiglu of row t, sixteen elements at a time (the tail one at a time)."""
    n = g.shape[1]
    one = vsplat(np.float32(1.0))
    minus = vsplat(np.float32(-1.0))
    gf, uf, of = g.reshape(-1), u.reshape(-1), out.reshape(-1)
    o = t * n
    n16 = n - n % 16
    for i in range(0, n16, 16):
        x = vload(gf, o + i)
        silu = vdiv(x, vadd(one, ggml_expf16(vmul(x, minus))))
        vstore(of, o + i, vmul(silu, vload(uf, o + i)))
    for i in range(n16, n):
        x = g[t, i]
        out[t, i] = (x / (np.float32(1.0) + ggml_expf(-x))) * u[t, i]


@njit(**_EXACT)
def _swiglu_rows(g, u, out):
    for t in range(g.shape[0]):
        _swiglu_row(g, u, out, t)


@njit(parallel=True, **_EXACT)
def _swiglu_rows_batch(g, u, out):
    for t in prange(g.shape[0]):
        _swiglu_row(g, u, out, t)


def swiglu(g: np.ndarray, u: np.ndarray) -> np.ndarray:
    """silu(g) * u, (n_tok, n_ff) float32, as ggml_vec_swiglu_f32 computes it."""
    g = np.ascontiguousarray(g, dtype=np.float32)
    u = np.ascontiguousarray(u, dtype=np.float32)
    out = np.empty_like(g)
    by_rows(len(g), _swiglu_rows, _swiglu_rows_batch)(g, u, out)
    return out
