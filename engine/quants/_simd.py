"""Explicit 16-lane float32 vectors for numba kernels (LLVM `<16 x float>`, one AVX-512 register).

LLVM's auto-vectorizer does not vectorize loops that store into several numba arrays (it
cannot prove they do not alias), and without fastmath it may not re-associate reductions;
the exact kernels (whose order of float operations must stay llama.cpp's) need both stores
and a fixed order. These intrinsics say exactly which lane-wise operation happens, so the
order of float operations per lane is the one written, and the code is vector code:

    v = vload(a, i)          # a[i:i+16] of a 1-D float32 array (no bounds check)
    vstore(a, i, v)          # a[i:i+16] = v
    v = vload_u8(b, i)       # b[i:i+16] of a 1-D uint8 array, as float32
    v = vload_f16(h, i)      # h[i:i+16] of a 1-D uint16 array of half bits, as float32
    v = vsplat(x)            # x in every lane
    vadd(a, b), vsub(a, b), vmul(a, b), vdiv(a, b), vfma(a, b, c) = a*b+c rounded once, vfloor(a)
    vtranspose16(src, i, stride, dst, j, dstride)  # 16 rows of 16 lanes, transposed

Each operation is one IEEE operation per lane (no fast-math flags), so results are what
the same scalar code computes lane by lane. The callers keep indices in range themselves.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_F32 = ir.FloatType()
_V16 = ir.VectorType(_F32, 16)


class F32x16Type(types.Type):
    def __init__(self) -> None:
        super().__init__(name="F32x16")


f32x16 = F32x16Type()


@register_model(F32x16Type)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _V16)


def _ptr(context, builder, arrty, arr, idx, elem_ir):
    """Pointer to element `idx` of a 1-D array, as `elem_ir`*."""
    a = context.make_array(arrty)(context, builder, arr)
    p = builder.gep(a.data, [idx])
    return builder.bitcast(p, elem_ir.as_pointer())


def _is_f32_array(a):
    return isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == 1


@intrinsic
def vload(typingctx, arr, idx):
    if not (_is_f32_array(arr) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        p = _ptr(context, builder, sig.args[0], args[0], args[1], _V16)
        return builder.load(p, align=4)

    return f32x16(arr, idx), codegen


@intrinsic
def vstore(typingctx, arr, idx, v):
    if not (_is_f32_array(arr) and isinstance(idx, types.Integer) and v == f32x16):
        return None

    def codegen(context, builder, sig, args):
        p = _ptr(context, builder, sig.args[0], args[0], args[1], _V16)
        builder.store(args[2], p, align=4)
        return context.get_dummy_value()

    return types.none(arr, idx, v), codegen


@intrinsic
def vload_u8(typingctx, arr, idx):
    """16 bytes (uint8 array) from arr[idx], each converted to float32 exactly."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.ndim == 1 and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        vb = ir.VectorType(ir.IntType(8), 16)
        p = _ptr(context, builder, sig.args[0], args[0], args[1], vb)
        b = builder.load(p, align=1)
        return builder.uitofp(b, _V16)

    return f32x16(arr, idx), codegen


@intrinsic
def vload_f16(typingctx, arr, idx):
    """16 IEEE halves (their uint16 bits) from arr[idx], each converted to float32 exactly
    (vcvtph2ps; a signalling NaN comes back quieted)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint16 and arr.ndim == 1 and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        vh = ir.VectorType(ir.HalfType(), 16)
        p = _ptr(context, builder, sig.args[0], args[0], args[1], vh)
        return builder.fpext(builder.load(p, align=2), _V16)

    return f32x16(arr, idx), codegen


@intrinsic
def vsplat(typingctx, x):
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if v.type != _F32:
            v = builder.fptrunc(v, _F32)
        undef = ir.Constant(_V16, ir.Undefined)
        one = builder.insert_element(undef, v, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(ir.IntType(32), 16), [0] * 16))

    return f32x16(x), codegen


def _binary(op):
    @intrinsic
    def f(typingctx, a, b):
        if not (a == f32x16 and b == f32x16):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, op)(args[0], args[1])

        return f32x16(a, b), codegen

    return f


vadd = _binary("fadd")
vsub = _binary("fsub")
vmul = _binary("fmul")
vdiv = _binary("fdiv")


@intrinsic
def vmax(typingctx, a, b):
    """Per lane: b where b > a, else a (`if b > a: a = b`: a NaN in b never wins)."""
    if not (a == f32x16 and b == f32x16):
        return None

    def codegen(context, builder, sig, args):
        return builder.select(builder.fcmp_ordered(">", args[1], args[0]), args[1], args[0])

    return f32x16(a, b), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a * b + c per lane with one rounding (llvm.fma.v16f32)."""
    if not (a == f32x16 and b == f32x16 and c == f32x16):
        return None

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16] * 3), "llvm.fma.v16f32")
        return builder.call(fn, args)

    return f32x16(a, b, c), codegen


@intrinsic
def vfloor(typingctx, a):
    if a != f32x16:
        return None

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16, [_V16]), "llvm.floor.v16f32")
        return builder.call(fn, args)

    return f32x16(a), codegen


def _transpose_masks():
    """Swapping bit k of the row index with bit k of the lane index, k = 0..3, transposes a
    16 x 16 block; each swap is two-source shuffles of row pairs (r, r | 2**k)."""
    out = []
    for k in range(4):
        s = 1 << k
        lo = [c if not c & s else 16 + c - s for c in range(16)]
        hi = [c + s if not c & s else 16 + c for c in range(16)]
        out.append((s, lo, hi))
    return out


_MASKS = _transpose_masks()


@intrinsic
def vtranspose16(typingctx, src, i, stride, dst, j, dstride):
    """dst[j + c*dstride + r] = src[i + r*stride + c] for r, c < 16."""
    if not (_is_f32_array(src) and _is_f32_array(dst)):
        return None

    def codegen(context, builder, sig, args):
        s_arr, s_i, s_st, d_arr, d_j, d_st = args
        i64 = ir.IntType(64)
        s_i, s_st, d_j, d_st = (context.cast(builder, v, t, types.int64) for v, t in zip(
            (s_i, s_st, d_j, d_st), (sig.args[1], sig.args[2], sig.args[4], sig.args[5])))
        rows = []
        for r in range(16):
            idx = builder.add(s_i, builder.mul(s_st, ir.Constant(i64, r)))
            rows.append(builder.load(_ptr(context, builder, sig.args[0], s_arr, idx, _V16), align=4))
        for s, lo, hi in _MASKS:
            m_lo = ir.Constant(ir.VectorType(ir.IntType(32), 16), lo)
            m_hi = ir.Constant(ir.VectorType(ir.IntType(32), 16), hi)
            new = list(rows)
            for r in range(16):
                if r & s:
                    continue
                a, b = rows[r], rows[r | s]
                new[r] = builder.shuffle_vector(a, b, m_lo)
                new[r | s] = builder.shuffle_vector(a, b, m_hi)
            rows = new
        for c in range(16):
            idx = builder.add(d_j, builder.mul(d_st, ir.Constant(i64, c)))
            builder.store(rows[c], _ptr(context, builder, sig.args[3], d_arr, idx, _V16), align=4)
        return context.get_dummy_value()

    return types.none(src, i, stride, dst, j, dstride), codegen


@intrinsic
def vtranspose_bytes16(typingctx, src, offs, o, dst):
    """dst[16*c + r] = src[offs[r] + o + c] for r, c < 16: sixteen 16-byte rows (at offsets
    offs[r] + o of a uint8 array) transposed into a 256-byte uint8 buffer."""
    ok = all(isinstance(a, types.Array) and a.ndim == 1 for a in (src, offs, dst))
    if not (ok and src.dtype == types.uint8 and dst.dtype == types.uint8 and isinstance(offs.dtype, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        s_arr, offs_arr, o, d_arr = args
        i64 = ir.IntType(64)
        vb = ir.VectorType(ir.IntType(8), 16)
        o = context.cast(builder, o, sig.args[2], types.int64)
        offs_a = context.make_array(sig.args[1])(context, builder, offs_arr)
        rows = []
        for r in range(16):
            off = builder.load(builder.gep(offs_a.data, [ir.Constant(i64, r)]))
            off = context.cast(builder, off, sig.args[1].dtype, types.int64)
            rows.append(builder.load(_ptr(context, builder, sig.args[0], s_arr, builder.add(off, o), vb), align=1))
        for s, lo, hi in _MASKS:
            m_lo = ir.Constant(ir.VectorType(ir.IntType(32), 16), lo)
            m_hi = ir.Constant(ir.VectorType(ir.IntType(32), 16), hi)
            new = list(rows)
            for r in range(16):
                if r & s:
                    continue
                a, b = rows[r], rows[r | s]
                new[r] = builder.shuffle_vector(a, b, m_lo)
                new[r | s] = builder.shuffle_vector(a, b, m_hi)
            rows = new
        for c in range(16):
            builder.store(rows[c], _ptr(context, builder, sig.args[3], d_arr, ir.Constant(i64, 16 * c), vb), align=1)
        return context.get_dummy_value()

    return types.none(src, offs, o, dst), codegen


@intrinsic
def vload_half_pairs16(typingctx, src, offs, o, dst):
    """Two halves at src[offs[r] + o] and src[offs[r] + o + 2] (little-endian) for r < 16,
    as float32: dst[r] = the first, dst[16 + r] = the second (the d and m of 16 rows)."""
    ok = all(isinstance(a, types.Array) and a.ndim == 1 for a in (src, offs, dst))
    if not (ok and src.dtype in (types.uint8, types.int8) and dst.dtype == types.float32 and isinstance(offs.dtype, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        s_arr, offs_arr, o, d_arr = args
        i64, i32 = ir.IntType(64), ir.IntType(32)
        o = context.cast(builder, o, sig.args[2], types.int64)
        offs_a = context.make_array(sig.args[1])(context, builder, offs_arr)
        v = ir.Constant(ir.VectorType(i32, 16), ir.Undefined)
        for r in range(16):
            off = builder.load(builder.gep(offs_a.data, [ir.Constant(i64, r)]))
            off = context.cast(builder, off, sig.args[1].dtype, types.int64)
            word = builder.load(_ptr(context, builder, sig.args[0], s_arr, builder.add(off, o), i32), align=1)
            v = builder.insert_element(v, word, ir.Constant(i32, r))
        h = builder.bitcast(v, ir.VectorType(ir.HalfType(), 32))
        undef = ir.Constant(ir.VectorType(ir.HalfType(), 32), ir.Undefined)
        vi = ir.VectorType(i32, 16)
        first = builder.shuffle_vector(h, undef, ir.Constant(vi, [2 * r for r in range(16)]))
        second = builder.shuffle_vector(h, undef, ir.Constant(vi, [2 * r + 1 for r in range(16)]))
        for k, part in enumerate((first, second)):
            f = builder.fpext(part, _V16)
            builder.store(f, _ptr(context, builder, sig.args[3], d_arr, ir.Constant(i64, 16 * k), _V16), align=4)
        return context.get_dummy_value()

    return types.none(src, offs, o, dst), codegen


@intrinsic
def vround_f16(typingctx, v):
    """Each lane rounded to half precision (round to nearest even, as ggml's FP32_TO_FP16)
    and back: ggml_math.round_f16 of 16 lanes."""
    if v != f32x16:
        return None

    def codegen(context, builder, sig, args):
        return builder.fpext(builder.fptrunc(args[0], ir.VectorType(ir.HalfType(), 16)), _V16)

    return f32x16(v), codegen

