"""Pieces the block quantizers share: llama.cpp's rounding helpers and scale searches.

Exactness rules (every kernel here reproduces llama.cpp's `quantize_row_*_ref` bit for bit;
the algorithms are in its ggml/src/ggml-quants.c):
- float32 arithmetic in C's order, no fastmath (no reassociation, no fused multiply-add:
  llama.cpp's ggml-quants.c is built without -march flags, so its compiler emits none).
- Every constant is np.float32, and every int that meets a float is converted with
  F32(...) first: numba, like numpy, turns int64 * float32 into float64.
- `nearest_int` is ggml's 1.5 * 2^23 trick (ties to even), bit for bit, even for the
  out-of-range values C feeds it in degenerate blocks.
- Scales are stored as IEEE half rounded to nearest even (GGML_FP32_TO_FP16), and read
  back (GGML_FP16_TO_FP32) where the C code does.
- `error_model="numpy"`: a float division by zero gives inf/nan as in C, never an exception.
- C's float-to-int conversions are x86's (`trunc_i32`): blocks of tiny or infinite weights
  overflow them, and the bytes must still match.
Kernels release the GIL (`nogil`): the caller runs them on several threads, one run of
whole blocks each, which gives the same bytes as one thread.

numba's on-disk cache (`cache=True`) checks only a kernel's own source file: after editing
this module, delete engine/quantize/__pycache__, or the kernels keep the old helpers.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..quants._common import block_shape  # noqa: F401 (each quantizer's block size)
from ..quants._common import half_to_f32_exact as f16_to_f32  # noqa: F401 (used by the quantizers)

KERNEL = dict(cache=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)
HELPER = dict(cache=True, fastmath=False, error_model="numpy", boundscheck=False, inline="always")

F32 = np.float32
FLT_MAX = F32(3.4028234663852886e38)
GROUP_MAX_EPS = np.float32(1e-15)  # ggml-quants.c: a group with max |x| below this is all zero
QK_K = 256


@intrinsic
def f32_bits(typingctx, value):
    """The IEEE bits of a float32, as a uint32."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(value), codegen


@njit(**HELPER)
def nearest_int(fval):
    """ggml's nearest_int: add 1.5 * 2^23 in float32 and read the integer out of the
    mantissa (round half to even for |fval| < 2^22)."""
    val = fval + F32(12582912.0)
    i = np.int64(f32_bits(val))
    return (i & 0x007FFFFF) - 0x00400000


@njit(**HELPER)
def to_int8(v):
    """C's conversion of an int to int8_t (keep the low byte, signed)."""
    return ((v + 128) & 255) - 128


@njit(**HELPER)
def f32_to_f16(f):
    """float32 to IEEE half bits, rounded to nearest even (ggml's GGML_FP32_TO_FP16: inf
    stays inf, NaN becomes a quiet NaN with the sign kept)."""
    bits = np.int64(f32_bits(f))
    sign = (bits >> 16) & 0x8000
    exp = (bits >> 23) & 0xFF
    mant = bits & 0x7FFFFF
    if exp == 0xFF:
        return sign | (0x7E00 if mant else 0x7C00)
    e = exp - 127 + 15
    if e >= 31:
        return sign | 0x7C00
    if e <= 0:  # a half subnormal (or zero)
        if e < -10:
            return sign
        mant |= 0x800000
        shift = 14 - e
        half = mant >> shift
        rem = mant & ((1 << shift) - 1)
        halfway = 1 << (shift - 1)
        if rem > halfway or (rem == halfway and (half & 1)):
            half += 1
        return sign | half
    half = (e << 10) | (mant >> 13)
    rem = mant & 0x1FFF
    if rem > 0x1000 or (rem == 0x1000 and (half & 1)):
        half += 1  # a carry into the exponent is right, up to inf
    return sign | half


@njit(**HELPER)
def round_f16(f):
    """What llama.cpp reads back after storing f as a half: FP16_TO_FP32(FP32_TO_FP16(f))."""
    return f16_to_f32(f32_to_f16(f))


@njit(**HELPER)
def put_f16(out, o, h):
    """Store half bits little-endian at byte o."""
    out[o] = h & 0xFF
    out[o + 1] = (h >> 8) & 0xFF


@njit(**HELPER)
def roundf(v):
    """C's roundf: to the nearest integer, half away from zero (a float32)."""
    if not abs(v) < F32(8388608.0):  # 2^23 and beyond (and inf, NaN) are already integral
        return v
    t = np.int64(v)  # truncates toward zero
    diff = v - F32(t)  # exact
    if diff >= F32(0.5):
        t += 1
    elif diff <= F32(-0.5):
        t -= 1
    return F32(t)


@njit(**HELPER)
def trunc_i32(v):
    """C's float-to-integer conversion as x86 performs it (cvttss2si, 32-bit): toward zero,
    and the "integer indefinite" INT32_MIN for NaN and out-of-range values, which blocks of
    tiny (subnormal) or infinite weights do produce."""
    if v >= F32(2147483648.0) or v < F32(-2147483648.0) or v != v:
        return np.int64(-2147483648)
    return np.int64(v)


@njit(**HELPER)
def max_magnitude(x, n):
    """(max |x[i]|, the first x[i] of that magnitude) over i < n: what a symmetric scale is
    taken from."""
    amax = F32(0.0)
    mx = F32(0.0)
    for i in range(n):
        ax = abs(x[i])
        if ax > amax:
            amax = ax
            mx = x[i]
    return amax, mx


@njit(**HELPER)
def put_symmetric_scale(xb, ob, nmax):
    """The 32-value blocks without a minimum (Q4_0, Q5_0): d = the value of largest magnitude
    / -nmax, stored as a half at byte 0. Returns 1 / d (0 for an all-zero block)."""
    d = max_magnitude(xb, 32)[1] / -nmax
    put_f16(ob, 0, f32_to_f16(d))
    return F32(1.0) / d if d != F32(0.0) else F32(0.0)


@njit(**HELPER)
def put_affine_scale(xb, ob, nmax):
    """The 32-value blocks with a minimum (Q4_1, Q5_1): d = (max - min) / nmax and m = min,
    stored as halves at bytes 0 and 2. Returns (min, 1 / d (0 for a constant block))."""
    mn = FLT_MAX
    mx = -FLT_MAX
    for j in range(32):
        v = xb[j]
        if v < mn:
            mn = v
        if v > mx:
            mx = v
    d = (mx - mn) / nmax
    put_f16(ob, 0, f32_to_f16(d))
    put_f16(ob, 2, f32_to_f16(mn))
    return mn, F32(1.0) / d if d != F32(0.0) else F32(0.0)


@njit(**HELPER)
def put_5bit_pair(ob, qs_at, j, q0, q1, qh):
    """Levels q0 (value j) and q1 (value j + 16) of a Q5_0 / Q5_1 block: their low nibbles to
    qs[j], their fifth bits into qh (bits j and j + 16), which is returned."""
    ob[qs_at + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4)
    qh |= ((q0 & 0x10) >> 4) << j
    return qh | (((q1 & 0x10) >> 4) << (j + 16))


@njit(**HELPER)
def put_u32(ob, o, v):
    """Store v little-endian at bytes o..o + 3."""
    for k in range(4):
        ob[o + k] = (v >> (8 * k)) & 0xFF


# ---- scale searches (ggml-quants.c, quant_weights == NULL paths) ------------------------------
@njit(cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def make_qx_quants_rmse1(n, nmax, x, L):
    """make_qx_quants(n, nmax, x, L, rmse_type=1, qw=NULL): symmetric levels -nmax..nmax-1
    stored as l + nmax in L (uint8), weights x^2, best of 19 trial scales. Returns the scale."""
    amax, mx = max_magnitude(x, n)
    if amax < GROUP_MAX_EPS:
        for i in range(n):
            L[i] = 0
        return F32(0.0)
    iscale = F32(-nmax) / mx
    sumlx = F32(0.0)
    suml2 = F32(0.0)
    for i in range(n):
        l = max(-nmax, min(nmax - 1, nearest_int(iscale * x[i])))
        L[i] = l + nmax
        w = x[i] * x[i]
        fl = F32(l)
        sumlx += w * x[i] * fl
        suml2 += w * fl * fl
    scale = sumlx / suml2 if suml2 != F32(0.0) else F32(0.0)
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = -(F32(nmax) + F32(0.1) * F32(step)) / mx
        sumlx = F32(0.0)
        suml2 = F32(0.0)
        for i in range(n):
            fl = F32(max(-nmax, min(nmax - 1, nearest_int(iscale * x[i]))))
            w = x[i] * x[i]
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        if suml2 > F32(0.0) and sumlx * sumlx > best * suml2:
            for i in range(n):
                L[i] = nmax + max(-nmax, min(nmax - 1, nearest_int(iscale * x[i])))
            scale = sumlx / suml2
            best = scale * sumlx
    return scale


@njit(cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def make_q3_quants(n, nmax, x, L):
    """make_q3_quants(n, nmax, x, L, do_rmse=true): symmetric levels refined by coordinate
    descent (up to 5 passes); L (int64 scratch) gets l + nmax. Returns the scale."""
    amax, mx = max_magnitude(x, n)
    if amax < GROUP_MAX_EPS:
        for i in range(n):
            L[i] = 0
        return F32(0.0)
    iscale = F32(-nmax) / mx
    sumlx = F32(0.0)
    suml2 = F32(0.0)
    for i in range(n):
        l = max(-nmax, min(nmax - 1, nearest_int(iscale * x[i])))
        L[i] = l
        w = x[i] * x[i]
        fl = F32(l)
        sumlx += w * x[i] * fl
        suml2 += w * fl * fl
    for _ in range(5):
        n_changed = 0
        for i in range(n):
            w = x[i] * x[i]
            fli = F32(L[i])
            slx = sumlx - w * x[i] * fli
            if slx > F32(0.0):
                sl2 = suml2 - w * fli * fli
                new_l = max(-nmax, min(nmax - 1, nearest_int(x[i] * sl2 / slx)))
                if new_l != L[i]:
                    fnl = F32(new_l)
                    slx += w * x[i] * fnl
                    sl2 += w * fnl * fnl
                    if sl2 > F32(0.0) and slx * slx * suml2 > sumlx * sumlx * sl2:
                        L[i] = new_l
                        sumlx = slx
                        suml2 = sl2
                        n_changed += 1
        if n_changed == 0:
            break
    for i in range(n):
        L[i] += nmax
    return sumlx / suml2 if suml2 > F32(0.0) else F32(0.0)


@njit(cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def make_qkx2_quants(n, nmax, x, weights, L, Laux, rmin, rdelta, nstep, use_mad):
    """make_qkx2_quants: asymmetric levels 0..nmax with a min, searched over nstep + 1
    trial scales with weighted least squares. L gets the levels. Returns (scale, -min)."""
    mn = x[0]
    mx = x[0]
    sum_w = weights[0]
    sum_x = sum_w * x[0]
    for i in range(1, n):
        if x[i] < mn:
            mn = x[i]
        if x[i] > mx:
            mx = x[i]
        w = weights[i]
        sum_w += w
        sum_x += w * x[i]
    if mn > F32(0.0):
        mn = F32(0.0)
    if mx == mn:
        for i in range(n):
            L[i] = 0
        return F32(0.0), -mn
    iscale = F32(nmax) / (mx - mn)
    scale = F32(1.0) / iscale
    best_error = F32(0.0)
    for i in range(n):
        l = max(0, min(nmax, nearest_int(iscale * (x[i] - mn))))
        L[i] = l
        diff = scale * F32(l) + mn - x[i]
        diff = abs(diff) if use_mad else diff * diff
        best_error += weights[i] * diff
    if nstep < 1:
        return scale, -mn
    for step in range(nstep + 1):
        iscale = (rmin + rdelta * F32(step) + F32(nmax)) / (mx - mn)
        sum_l = F32(0.0)
        sum_l2 = F32(0.0)
        sum_xl = F32(0.0)
        for i in range(n):
            l = max(0, min(nmax, nearest_int(iscale * (x[i] - mn))))
            Laux[i] = l
            w = weights[i]
            fl = F32(l)
            sum_l += w * fl
            sum_l2 += w * fl * fl
            sum_xl += w * fl * x[i]
        D = sum_w * sum_l2 - sum_l * sum_l
        if D > F32(0.0):
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
            if this_min > F32(0.0):
                this_min = F32(0.0)
                this_scale = sum_xl / sum_l2
            cur_error = F32(0.0)
            for i in range(n):
                diff = this_scale * F32(Laux[i]) + this_min - x[i]
                diff = abs(diff) if use_mad else diff * diff
                cur_error += weights[i] * diff
            if cur_error < best_error:
                for i in range(n):
                    L[i] = Laux[i]
                best_error = cur_error
                scale = this_scale
                mn = this_min
    return scale, -mn

