"""Scalar float32 arithmetic exactly as llama.cpp's CPU backend does it (x86-64, AVX-512).

The forward pass rounds activations to 8 bits before every quantized matrix product, so a
last-bit difference in a softmax weight or a SiLU value can flip a rounding and move the
logits by far more than the difference itself. These helpers reproduce ggml's own routines
bit for bit:
- `fma32`: a fused multiply-add in float32 (LLVM's llvm.fma.f32, one rounding);
- `ggml_expf`: ggml's vector exp (ggml_v_expf, "adapted from arm limited optimized routine"),
  which ggml uses for the softmax and for SiLU instead of the C library's expf; it differs
  from a correctly rounded exp by up to about 1.5 ulp;
- `round_f16`: float32 to half and back (ggml's FP32_TO_FP16: round to nearest even);
- `swiglu`: ggml_vec_swiglu_f32, silu(g) * u with silu(x) = x / (1 + ggml_expf(-x)).
Kernels that use them must not run with fastmath (it would re-associate the polynomial).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# ggml_v_expf's constants (hex float literals in ggml's source), exact in float32.
_LOG2E = np.float32(float.fromhex("0x1.715476p+0"))
_LN2_HI = np.float32(float.fromhex("0x1.62e4p-1"))
_LN2_LO = np.float32(float.fromhex("0x1.7f7d1cp-20"))
_C5 = np.float32(float.fromhex("0x1.0e4020p-7"))
_C4 = np.float32(float.fromhex("0x1.573e2ep-5"))
_C3 = np.float32(float.fromhex("0x1.555e66p-3"))
_C2 = np.float32(float.fromhex("0x1.fffdb6p-2"))
_C1 = np.float32(float.fromhex("0x1.ffffecp-1"))

_EXACT = dict(cache=True, fastmath=False, error_model="numpy", boundscheck=False)


@intrinsic
def fma32(typingctx, a, b, c):
    """a * b + c in float32 with a single rounding."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [f32, f32, f32]), "llvm.fma.f32")
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def round_f16(typingctx, x):
    """float32 -> half (round to nearest even, as ggml's FP32_TO_FP16) -> float32."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.fptrunc(args[0], ir.HalfType()), ir.FloatType())

    return sig, codegen


@njit(inline="always", **_EXACT)
def ggml_expf(x):
    """ggml_v_expf (AVX-512 version), one lane: float32 in, float32 out."""
    x = np.float32(x)
    r = np.float32(12582912.0)  # 0x1.8p23: adding it rounds to an integer
    z = fma32(x, _LOG2E, r)
    n = z - r
    if not (abs(n) <= np.float32(192.0)):  # huge or NaN: ggml returns inf above, 0 below
        if n > np.float32(0.0):
            return np.float32(np.inf)
        return np.float32(0.0)
    b = fma32(-n, _LN2_LO, fma32(-n, _LN2_HI, x))
    u = b * b
    p_hi = fma32(fma32(_C5, b, _C4), u, fma32(_C3, b, _C2))
    j = fma32(p_hi, u, fma32(_C1, b, np.float32(1.0)))
    # _mm512_scalef_ps(j, n) = j * 2**n, rounded once (exact in float64, then one rounding)
    return np.float32(np.float64(j) * math.ldexp(1.0, int(n)))


@njit(parallel=True, **_EXACT)
def _swiglu(g, u, out):
    n_tok, n = g.shape
    for t in prange(n_tok):
        for i in range(n):
            x = g[t, i]
            out[t, i] = (x / (np.float32(1.0) + ggml_expf(-x))) * u[t, i]


_swiglu_serial = njit(**_EXACT)(_swiglu.py_func)  # one token: no threads


def swiglu(g: np.ndarray, u: np.ndarray) -> np.ndarray:
    """silu(g) * u, (n_tok, n_ff) float32, as ggml_vec_swiglu_f32 computes it."""
    out = np.empty_like(g)
    (_swiglu if g.shape[0] > 1 else _swiglu_serial)(g, u, out)
    return out
