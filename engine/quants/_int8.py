"""Explicit integer vectors for the 8-bit dot-product kernels (k-quants and Q8_0 with 8-bit
activations, as llama.cpp computes them).

llama.cpp never multiplies quantized weights by float activations: it rounds the activation
row to 8-bit integers (Q8_K, Q8_0) and takes integer dot products, 64 byte pairs per
instruction on AVX-512 VNNI (`vpdpbusd`). numba's auto-vectorizer does not produce those
from scalar loops, so these intrinsics say it directly. Two vector types:

    U8x64   64 bytes (LLVM <64 x i8>): weights as unsigned 0..255, activations as int8
    I32x16  sixteen int32 lanes (LLVM <16 x i32>)

    a = u8x64_load(arr, i)            # arr[i:i+64] of a uint8 or int8 array
    a = q4x64_load(arr, i)            # 32 bytes of packed nibbles -> 64 values 0..15:
                                      #   the 32 low nibbles, then the 32 high nibbles
    a = q6x64_load(ql, i, qh, j, part)  # 64 six-bit values of a Q6_K half-block (q6_k.py)
    a = q2x64_load(arr, i, part)      # 64 two-bit values of a Q2_K chunk (q2_k.py)
    a = q3x64_load(qs, i, hm, j, c)   # Q3_K chunk c as q + 4 (0..7) (q3_k.py)
    a = q5x64_load(qs, i, qh, j, c)   # Q5_K chunk c (0..31) (q5_k.py)
    v = i32x16_word_bytes_quads(w)    # byte k of a 32-bit word in lanes 4k..4k+3
    v = i32x16_word_bytes16(w0, w1, w2, w3)  # lane 4k + b = byte b of word k
    v = dpbusd(acc, a, b)             # v[l] = acc[l] + sum_{k<4} a[4l+k] (u8) * b[4l+k] (s8)
    v = i32x16_load(arr, i), i32x16_store(arr, i, v)   # int32 arrays
    v = i32x16_splat8(p, q)           # lanes 0-7 = p, lanes 8-15 = q
    i32x16_add(a, b), i32x16_mul(a, b), i32x16_zero()
    f = i32x16_to_f32(v)              # an _simd.F32x16, each lane converted exactly
    s = f32x16_sum(f)                 # horizontal sum of an F32x16 (pairwise tree)

and for the 32-value block types (16 rows, one lane each):

    transpose_words16(arr, offs, o, n, dst)  # word k of 16 rows' blocks -> dst[16k:16k+16]
    a = u8x64_splat_word(arr, i)      # the 4 bytes at arr[i:] in every lane
    a = i32x16_nibbles(v, high)       # each lane's 4 low (or high) nibbles as bytes
    v = i32x16_bit_bytes(bits, first) # bits first.. of each lane as 16 * bit per byte (Q5)
    a = i32x16_flip_signs(v)          # int8 bytes as q + 128 (Q8_0)

`dpbusd` is one `vpdpbusd` where the CPU has AVX-512 VNNI; elsewhere it is written in plain
LLVM vector operations (widen, multiply, add groups of four), which every target compiles;
the result is the same integers. numba's on-disk cache is keyed by the CPU's name and
features, so a cached kernel built for one path is never loaded on a CPU needing the other.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ._simd import _V16, f32x16, vadd, vload, vstore

_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_U8X64 = ir.VectorType(_I8, 64)
_U8X32 = ir.VectorType(_I8, 32)
_I32X16 = ir.VectorType(_I32, 16)


def _host_has_vnni() -> bool:
    try:
        feats = llvm.get_host_cpu_features()
    except RuntimeError:  # features unknown: the portable path is always correct
        return False
    return bool(feats.get("avx512vnni")) and bool(feats.get("avx512bw"))


HAS_VNNI = _host_has_vnni()


class U8x64Type(types.Type):
    def __init__(self) -> None:
        super().__init__(name="U8x64")


class I32x16Type(types.Type):
    def __init__(self) -> None:
        super().__init__(name="I32x16")


u8x64 = U8x64Type()
i32x16 = I32x16Type()


@register_model(U8x64Type)
class _U8x64Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _U8X64)


@register_model(I32x16Type)
class _I32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _I32X16)


def _is_byte_array(a) -> bool:
    return isinstance(a, types.Array) and a.ndim == 1 and a.dtype in (types.uint8, types.int8)


def _is_i32_array(a) -> bool:
    return isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.int32


def _ptr(context, builder, arrty, arr, idx, idxty, elem_ir):
    a = context.make_array(arrty)(context, builder, arr)
    idx = context.cast(builder, idx, idxty, types.int64)
    return builder.bitcast(builder.gep(a.data, [idx]), elem_ir.as_pointer())


def _const_vec(ty, values):
    return ir.Constant(ty, [ir.Constant(ty.element, v) for v in values])


@intrinsic
def u8x64_load(typingctx, arr, idx):
    if not (_is_byte_array(arr) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _U8X64), align=1)

    return u8x64(arr, idx), codegen


@intrinsic
def u8x64_store(typingctx, arr, idx, v):
    """The 64 bytes of v to arr from element idx on (a byte array, or int32 words: a block's
    values kept decoded for a batch, read back with i32x16_load and i32x16_bytes)."""
    if not ((_is_byte_array(arr) or _is_i32_array(arr)) and isinstance(idx, types.Integer) and v == u8x64):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _U8X64), align=1)
        return context.get_dummy_value()

    return types.none(arr, idx, v), codegen


def _concat32(builder, lo, hi):
    return builder.shuffle_vector(lo, hi, _const_vec(ir.VectorType(_I32, 64), range(64)))


@intrinsic
def q4x64_load(typingctx, arr, idx):
    """32 packed bytes at arr[idx:] -> their 32 low nibbles then their 32 high nibbles."""
    if not (_is_byte_array(arr) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        b = builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _U8X32), align=1)
        lo = builder.and_(b, _const_vec(_U8X32, [15] * 32))
        hi = builder.lshr(b, _const_vec(_U8X32, [4] * 32))
        return _concat32(builder, lo, hi)

    return u8x64(arr, idx), codegen


@intrinsic
def q6x64_load(typingctx, ql, i, qh, j, part):
    """Sixty-four 6-bit values (0..63) of a Q6_K half-block: 64 bytes of low bits at ql[i:],
    32 bytes of high bits at qh[j:]. part 0: elements 0..63 of the half-block (low nibbles
    of ql[i:i+64], high bits 0-1 then 2-3 of qh); part 1: elements 64..127 (high nibbles,
    high bits 4-5 then 6-7)."""
    if not (_is_byte_array(ql) and _is_byte_array(qh) and isinstance(i, types.Integer)
            and isinstance(j, types.Integer) and isinstance(part, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        lq = builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _U8X64), align=1)
        hq = builder.load(_ptr(context, builder, sig.args[2], args[2], args[3], sig.args[3], _U8X32), align=1)
        p = context.cast(builder, args[4], sig.args[4], types.int64)
        p8 = builder.trunc(p, _I8)
        # low 4 bits: ql & 15 (part 0) or ql >> 4 (part 1)
        sh_l = builder.mul(p8, ir.Constant(_I8, 4))
        low = builder.and_(builder.lshr(lq, _splat(builder, sh_l, 64)), _const_vec(_U8X64, [15] * 64))
        # high 2 bits: qh >> (4 part) for the first 32, qh >> (4 part + 2) for the next 32
        sh_h = builder.mul(p8, ir.Constant(_I8, 4))
        h0 = builder.lshr(hq, _splat(builder, sh_h, 32))
        h1 = builder.lshr(hq, _splat(builder, builder.add(sh_h, ir.Constant(_I8, 2)), 32))
        high = builder.and_(_concat32(builder, h0, h1), _const_vec(_U8X64, [3] * 64))
        return builder.or_(low, builder.shl(high, _const_vec(_U8X64, [4] * 64)))

    return u8x64(ql, i, qh, j, part), codegen


@intrinsic
def transpose_words16(typingctx, arr, offs, o, n_words, dst):
    """dst[16 k + r] = the 32-bit word at arr[offs[r] + o + 4 k], for 16 rows r and
    k < n_words (a literal, 1 to 8): sixteen rows' blocks turned so that word k of every row
    is one <16 x i32> vector (llama.cpp's "repacked" layout, made on the fly)."""
    ok = (_is_byte_array(arr) and isinstance(offs, types.Array) and isinstance(offs.dtype, types.Integer)
          and isinstance(o, types.Integer) and isinstance(n_words, types.IntegerLiteral) and _is_i32_array(dst))
    if not ok:
        return None
    nw = n_words.literal_value

    def codegen(context, builder, sig, args):
        arr_v, offs_v, o_v, _, dst_v = args
        o64 = context.cast(builder, o_v, sig.args[2], types.int64)
        offs_a = context.make_array(sig.args[1])(context, builder, offs_v)
        a = context.make_array(sig.args[0])(context, builder, arr_v)
        width = 1 << (nw - 1).bit_length()  # words per row, padded to a power of two
        rows = []
        for r in range(16):
            off = builder.load(builder.gep(offs_a.data, [ir.Constant(_I64, r)]))
            off = context.cast(builder, off, sig.args[1].dtype, types.int64)
            p = builder.bitcast(builder.gep(a.data, [builder.add(off, o64)]), ir.VectorType(_I32, nw).as_pointer())
            row = builder.load(p, align=1)
            if width != nw:  # the padding words are never stored
                row = builder.shuffle_vector(row, ir.Constant(row.type, ir.Undefined),
                                             _const_vec(ir.VectorType(_I32, width), [min(k, nw - 1) for k in range(width)]))
            rows.append(row)
        # vector i holds rows i, i + width, i + 2 width, ...: lane h width + k = word k of
        # row i + h width (concatenations: loads into halves and quarters)
        per = 16 // width
        vecs = []
        for i in range(width):
            parts = [rows[i + width * h] for h in range(per)]
            while len(parts) > 1:
                n = parts[0].type.count
                both = _const_vec(ir.VectorType(_I32, 2 * n), range(2 * n))
                parts = [builder.shuffle_vector(parts[j], parts[j + 1], both) for j in range(0, len(parts), 2)]
            vecs.append(parts[0])
        # swap the vector index's bits with the word's lane bits, one bit a stage (a
        # butterfly of two-source shuffles): then vector k holds word k, lane r row r
        bit = 1
        while bit < width:
            lo_mask = _const_vec(_I32X16, [l if not l & bit else 16 + (l ^ bit) for l in range(16)])
            hi_mask = _const_vec(_I32X16, [(l ^ bit) if not l & bit else 16 + l for l in range(16)])
            nxt = list(vecs)
            for j in range(width):
                if j & bit:
                    continue
                nxt[j] = builder.shuffle_vector(vecs[j], vecs[j | bit], lo_mask)
                nxt[j | bit] = builder.shuffle_vector(vecs[j], vecs[j | bit], hi_mask)
            vecs = nxt
            bit <<= 1
        d = context.make_array(sig.args[4])(context, builder, dst_v)
        for k in range(nw):
            p = builder.bitcast(builder.gep(d.data, [ir.Constant(_I64, 16 * k)]), _I32X16.as_pointer())
            builder.store(vecs[k], p, align=4)
        return context.get_dummy_value()

    return types.none(arr, offs, o, n_words, dst), codegen


@intrinsic
def u8x64_splat_word(typingctx, arr, idx):
    """The four bytes at arr[idx:] in every 32-bit lane."""
    if not (_is_byte_array(arr) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        word = builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _I32), align=1)
        return builder.bitcast(_splat(builder, word, 16), _U8X64)

    return u8x64(arr, idx), codegen


@intrinsic
def i32x16_nibbles(typingctx, v, high):
    """Each 32-bit lane's four low (high = 0) or high (high = 1) nibbles, one per byte, as
    64 byte values 0..15."""
    if not (v == i32x16 and isinstance(high, types.IntegerLiteral)):
        return None
    sh = 4 * high.literal_value

    def codegen(context, builder, sig, args):
        x = builder.lshr(args[0], _const_vec(_I32X16, [sh] * 16)) if sh else args[0]
        return builder.bitcast(builder.and_(x, _const_vec(_I32X16, [0x0F0F0F0F] * 16)), _U8X64)

    return u8x64(v, high), codegen


@intrinsic
def i32x16_bit_bytes(typingctx, bits, first):
    """Per 32-bit lane, bytes b = 0..3 set to 16 times bit first + b of the lane of `bits`
    (first a literal): the fifth bit of four consecutive Q5 elements, ready to OR in."""
    if not (bits == i32x16 and isinstance(first, types.IntegerLiteral)):
        return None
    f = first.literal_value

    def codegen(context, builder, sig, args):
        out = ir.Constant(_I32X16, [ir.Constant(_I32, 0)] * 16)
        for b in range(4):
            bit = builder.and_(builder.lshr(args[0], _const_vec(_I32X16, [f + b] * 16)), _const_vec(_I32X16, [1] * 16))
            out = builder.or_(out, builder.shl(bit, _const_vec(_I32X16, [8 * b + 4] * 16)))
        return out

    return i32x16(bits, first), codegen


@intrinsic
def i32x16_flip_signs(typingctx, v):
    """Each byte of each lane with its top bit flipped: int8 q as the unsigned byte q + 128."""
    if v != i32x16:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(builder.xor(args[0], _const_vec(_I32X16, [-0x7F7F7F80] * 16)), _U8X64)

    return u8x64(v), codegen


@intrinsic
def i32x16_splat(typingctx, x):
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return _splat(builder, builder.trunc(context.cast(builder, args[0], sig.args[0], types.int64), _I32), 16)

    return i32x16(x), codegen


@intrinsic
def u8x64_or(typingctx, a, b):
    if not (a == u8x64 and b == i32x16):
        return None

    def codegen(context, builder, sig, args):
        return builder.or_(args[0], builder.bitcast(args[1], _U8X64))

    return u8x64(a, b), codegen


def _splat(builder, scalar, n):
    ty = ir.VectorType(scalar.type, n)
    one = builder.insert_element(ir.Constant(ty, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(ty, ir.Undefined), _const_vec(ir.VectorType(_I32, n), [0] * n))


def _dpbusd_portable(builder, acc, a, b):
    wide = ir.VectorType(_I32, 64)
    prod = builder.mul(builder.zext(a, wide), builder.sext(b, wide))
    total = acc
    for k in range(4):
        part = builder.shuffle_vector(prod, ir.Constant(wide, ir.Undefined), _const_vec(ir.VectorType(_I32, 16), range(k, 64, 4)))
        total = builder.add(total, part)
    return total


def _dpbusd_vnni(builder, acc, a, b):
    if llvm.llvm_version_info >= (20,):
        opty = _U8X64
    else:  # before LLVM 20 the intrinsic took the bytes as <16 x i32>
        opty = _I32X16
        a, b = builder.bitcast(a, opty), builder.bitcast(b, opty)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_I32X16, [_I32X16, opty, opty]), "llvm.x86.avx512.vpdpbusd.512"
    )
    return builder.call(fn, [acc, a, b])


@intrinsic
def dpbusd(typingctx, acc, a, b):
    if not (acc == i32x16 and a == u8x64 and b == u8x64):
        return None

    def codegen(context, builder, sig, args):
        impl = _dpbusd_vnni if HAS_VNNI else _dpbusd_portable
        return impl(builder, *args)

    return i32x16(acc, a, b), codegen


_I16 = ir.IntType(16)
_I16X32 = ir.VectorType(_I16, 32)


def _maddubs_dpwssd_portable(builder, acc, a, b, sc):
    wide = ir.VectorType(_I32, 64)
    prod = builder.mul(builder.zext(a, wide), builder.sext(b, wide))  # |.| < 2**15 * 2
    s16 = builder.sext(builder.bitcast(sc, _I16X32), ir.VectorType(_I32, 32))
    total = acc
    for k in range(4):  # byte 4l + k of lane l, times the 16-bit half k // 2 of sc's lane l
        part = builder.shuffle_vector(prod, ir.Constant(wide, ir.Undefined), _const_vec(ir.VectorType(_I32, 16), range(k, 64, 4)))
        half = builder.shuffle_vector(s16, ir.Constant(ir.VectorType(_I32, 32), ir.Undefined), _const_vec(ir.VectorType(_I32, 16), range(k // 2, 32, 2)))
        total = builder.add(total, builder.mul(part, half))
    return total


def _maddubs_dpwssd_vnni(builder, acc, a, b, sc):
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_I16X32, [_U8X64, _U8X64]), "llvm.x86.avx512.pmaddubs.w.512"
    )
    pairs = builder.call(fn, [a, b])
    if llvm.llvm_version_info >= (21,):
        opty = _I16X32
    else:  # before LLVM 21 the intrinsic took the words as <16 x i32>
        opty = _I32X16
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_I32X16, [_I32X16, opty, opty]), "llvm.x86.avx512.vpdpwssd.512"
    )
    return builder.call(fn, [acc, builder.bitcast(pairs, opty), builder.bitcast(sc, opty)])


@intrinsic
def dpbusd_scaled(typingctx, acc, a, b, sc2):
    """acc + sc * (sum of the four byte products a * b) per lane, for sc2 = i32x16_dup16(sc)
    (a lane's scale in both 16-bit halves): the same integers as
    i32x16_add(acc, i32x16_mul(dpbusd(zero, a, b), sc)) while each pair of byte products
    fits int16 (a < 128: every k-quant's values), in two cheap instructions (vpmaddubsw,
    vpdpwssd) instead of a dpbusd and a two-uop vpmulld."""
    if not (acc == i32x16 and a == u8x64 and b == u8x64 and sc2 == i32x16):
        return None

    def codegen(context, builder, sig, args):
        impl = _maddubs_dpwssd_vnni if HAS_VNNI else _maddubs_dpwssd_portable
        return impl(builder, *args)

    return i32x16(acc, a, b, sc2), codegen


@intrinsic
def dpbusd_scaled_portable(typingctx, acc, a, b, sc2):
    """dpbusd_scaled without VNNI, whatever the CPU (tests compare the two)."""
    if not (acc == i32x16 and a == u8x64 and b == u8x64 and sc2 == i32x16):
        return None

    def codegen(context, builder, sig, args):
        return _maddubs_dpwssd_portable(builder, *args)

    return i32x16(acc, a, b, sc2), codegen


@intrinsic
def i32x16_dup16(typingctx, v):
    """Each lane's low 16 bits in both of its halves (scales for dpbusd_scaled)."""
    if v != i32x16:
        return None

    def codegen(context, builder, sig, args):
        lo = builder.and_(args[0], _const_vec(_I32X16, [0xFFFF] * 16))
        return builder.or_(lo, builder.shl(args[0], _const_vec(_I32X16, [16] * 16)))

    return i32x16(v), codegen


@intrinsic
def dpbusd_portable(typingctx, acc, a, b):
    """dpbusd without VNNI, whatever the CPU (tests compare the two)."""
    if not (acc == i32x16 and a == u8x64 and b == u8x64):
        return None

    def codegen(context, builder, sig, args):
        return _dpbusd_portable(builder, *args)

    return i32x16(acc, a, b), codegen


@intrinsic
def i32x16_load(typingctx, arr, idx):
    if not (_is_i32_array(arr) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _I32X16), align=4)

    return i32x16(arr, idx), codegen


@intrinsic
def i32x16_store(typingctx, arr, idx, v):
    if not (_is_i32_array(arr) and isinstance(idx, types.Integer) and v == i32x16):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _I32X16), align=4)
        return context.get_dummy_value()

    return types.none(arr, idx, v), codegen


def _lanes_from(context, builder, args, argtys):
    """An <16 x i32> with the scalars spread evenly: len(args) runs of equal lanes."""
    v = ir.Constant(_I32X16, ir.Undefined)
    width = 16 // len(args)
    for k, (x, t) in enumerate(zip(args, argtys)):
        x32 = builder.trunc(context.cast(builder, x, t, types.int64), _I32)
        for lane in range(k * width, (k + 1) * width):
            v = builder.insert_element(v, x32, ir.Constant(_I32, lane))
    return v


@intrinsic
def i32x16_splat8(typingctx, p, q):
    if not (isinstance(p, types.Integer) and isinstance(q, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return _lanes_from(context, builder, args, sig.args)

    return i32x16(p, q), codegen


def _word_bytes(context, builder, word, wordty, shifts):
    """<16 x i32> whose lane l is byte shifts[l] // 8 of the 32-bit `word` (None: lane 0)."""
    w = builder.trunc(context.cast(builder, word, wordty, types.int64), _I32)
    v = _splat(builder, w, 16)
    sh = _const_vec(_I32X16, [0 if s is None else s for s in shifts])
    mask = _const_vec(_I32X16, [0 if s is None else 255 for s in shifts])
    return builder.and_(builder.lshr(v, sh), mask)


@intrinsic
def i32x16_word_bytes8(typingctx, word, k):
    """Lanes 0-7: byte k of the 32-bit `word`, lanes 8-15: byte k + 1 (k a literal 0..2)."""
    if not (isinstance(word, types.Integer) and isinstance(k, types.IntegerLiteral)):
        return None
    kk = k.literal_value

    def codegen(context, builder, sig, args):
        return _word_bytes(context, builder, args[0], sig.args[0], [8 * kk] * 8 + [8 * kk + 8] * 8)

    return i32x16(word, k), codegen


@intrinsic
def i32x16_word_bytes_pairs(typingctx, w0, w1):
    """Lanes 2j and 2j+1: byte j of w0 (j < 4), byte j - 4 of w1 (j >= 4)."""
    if not (isinstance(w0, types.Integer) and isinstance(w1, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        first = [8 * (l // 2) for l in range(8)]
        a = _word_bytes(context, builder, args[0], sig.args[0], first + [None] * 8)
        b = _word_bytes(context, builder, args[1], sig.args[1], [None] * 8 + first)
        return builder.or_(a, b)

    return i32x16(w0, w1), codegen


@intrinsic
def i32x16_load_s8(typingctx, arr, idx):
    """Sixteen int8 at arr[idx:] (uint8 array, bytes read as signed), widened to int32."""
    if not (_is_byte_array(arr) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        b = builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], ir.VectorType(_I8, 16)), align=1)
        return builder.sext(b, _I32X16)

    return i32x16(arr, idx), codegen


@intrinsic
def i32x16_load_s8_quads(typingctx, arr, idx):
    """Four int8 at arr[idx:], widened to int32, each in four neighbouring lanes."""
    if not (_is_byte_array(arr) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        v4 = ir.VectorType(_I8, 4)
        b = builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], v4), align=1)
        spread = builder.shuffle_vector(b, ir.Constant(v4, ir.Undefined), _const_vec(ir.VectorType(_I32, 16), [l // 4 for l in range(16)]))
        return builder.sext(spread, _I32X16)

    return i32x16(arr, idx), codegen


@intrinsic
def i32x16_zero(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_I32X16, [ir.Constant(_I32, 0)] * 16)

    return i32x16(), codegen


def _i32_binary(op):
    @intrinsic
    def f(typingctx, a, b):
        if not (a == i32x16 and b == i32x16):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, op)(args[0], args[1])

        return i32x16(a, b), codegen

    return f


i32x16_add = _i32_binary("add")
i32x16_sub = _i32_binary("sub")
i32x16_mul = _i32_binary("mul")


@intrinsic
def i32x16_to_f32(typingctx, v):
    if v != i32x16:
        return None

    def codegen(context, builder, sig, args):
        return builder.sitofp(args[0], _V16)

    return f32x16(v), codegen


@intrinsic
def f32x16_sum(typingctx, v):
    """Lanes summed as ((0+8)+(4+12))+... : halves added until one lane is left."""
    if v != f32x16:
        return None

    def codegen(context, builder, sig, args):
        x = args[0]
        n = 16
        while n > 1:
            n //= 2
            lo = builder.shuffle_vector(x, ir.Constant(x.type, ir.Undefined), _const_vec(ir.VectorType(_I32, n), range(n)))
            hi = builder.shuffle_vector(x, ir.Constant(x.type, ir.Undefined), _const_vec(ir.VectorType(_I32, n), range(n, 2 * n)))
            x = builder.fadd(lo, hi)
        return builder.extract_element(x, ir.Constant(_I32, 0))

    return types.float32(v), codegen


@njit(cache=True, error_model="numpy", boundscheck=False)
def int8_group_sums(xq, group):
    """Sums of each run of `group` int8 values of xq (given as its uint8 bytes), as int32:
    what the unsigned form of signed weights (q + offset) must give back (offset * sum)."""
    n = xq.size // group
    out = np.empty(n, dtype=np.int32)
    for i in range(n):
        s = np.int32(0)
        for j in range(i * group, (i + 1) * group):
            v = np.int32(xq[j])
            s += v - 256 if v >= 128 else v
        out[i] = s
    return out


@njit(inline="always")
def rows16_offsets(g, n_out, row_bytes):
    """Byte offsets of the 16 rows of row group g (a group at the end repeats the last row)."""
    offs = np.empty(16, dtype=np.int64)
    for r in range(16):
        offs[r] = min(g * 16 + r, n_out - 1) * row_bytes
    return offs


@njit(inline="always")
def sum_lanes8(acc, a, extra):
    """The eight lane vectors acc[a + 16 l : ...] (one lane per row) summed as ggml's
    hsum_float_8 sums a row's eight lanes, ((4 + 0) + (6 + 2)) + ((5 + 1) + (7 + 3)), plus
    `extra` (a vector)."""
    r0 = vadd(vload(acc, a + 64), vload(acc, a))
    r1 = vadd(vload(acc, a + 80), vload(acc, a + 16))
    r2 = vadd(vload(acc, a + 96), vload(acc, a + 32))
    r3 = vadd(vload(acc, a + 112), vload(acc, a + 48))
    return vadd(vadd(vadd(r0, r2), vadd(r1, r3)), extra)


@njit(inline="always")
def store_rows16(out, o, v, g, n_out, scratch):
    """out[o + 16 g + r] = lane r of v, for the rows of group g that exist."""
    vstore(scratch, 0, v)
    for r in range(min(16, n_out - g * 16)):
        out[o + g * 16 + r] = scratch[r]


@njit(inline="always")
def store_tile4(out, t0, nt, a0, a1, a2, a3, g, n_out, scratch):
    """store_rows16 of the running lanes of tokens t0 .. t0 + nt - 1 (nt <= 4)."""
    store_rows16(out, t0 * n_out, a0, g, n_out, scratch)
    if nt > 1:
        store_rows16(out, (t0 + 1) * n_out, a1, g, n_out, scratch)
    if nt > 2:
        store_rows16(out, (t0 + 2) * n_out, a2, g, n_out, scratch)
    if nt > 3:
        store_rows16(out, (t0 + 3) * n_out, a3, g, n_out, scratch)


# ---- Q2_K, Q3_K, Q5_K: their quant fields as 64-value vectors, their scales as lanes ----

def _byte_fields(builder, b, shift, bits):
    """(b >> shift) & (2**bits - 1) for a vector of bytes and a runtime i8 shift."""
    n = b.type.count
    return builder.and_(builder.lshr(b, _splat(builder, shift, n)), _const_vec(b.type, [(1 << bits) - 1] * n))


def _i8_arg(context, builder, v, ty):
    return builder.trunc(context.cast(builder, v, ty, types.int64), _I8)


def _chunk_high_bits(builder, hb, c8, pos):
    """Bits 2c (first 32 values) and 2c + 1 (next 32) of the 32 bytes hb, moved to bit pos:
    the high bit of chunk c in Q3_K's hmask and Q5_K's qh (one bit per 32-value group)."""
    sh = builder.mul(c8, ir.Constant(_I8, 2))
    h0 = _byte_fields(builder, hb, sh, 1)
    h1 = _byte_fields(builder, hb, builder.add(sh, ir.Constant(_I8, 1)), 1)
    return builder.shl(_concat32(builder, h0, h1), _const_vec(_U8X64, [pos] * 64))


@intrinsic
def q2x64_load(typingctx, arr, idx, part):
    """32 bytes at arr[idx:] -> 64 two-bit values (0..3): bits 4 part..4 part + 1 of each byte,
    then bits 4 part + 2..4 part + 3 (part 0 or 1). Q2_K chunk c (elements 64c..64c + 63) is
    q2x64_load(qs, 32 (c // 2), c % 2)."""
    if not (_is_byte_array(arr) and isinstance(idx, types.Integer) and isinstance(part, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        b = builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _U8X32), align=1)
        sh = builder.mul(_i8_arg(context, builder, args[2], sig.args[2]), ir.Constant(_I8, 4))
        lo = _byte_fields(builder, b, sh, 2)
        hi = _byte_fields(builder, b, builder.add(sh, ir.Constant(_I8, 2)), 2)
        return _concat32(builder, lo, hi)

    return u8x64(arr, idx, part), codegen


@intrinsic
def q3x64_load(typingctx, qs, i, hm, j, c):
    """Q3_K chunk c (0..3, elements 64c..64c + 63) as unsigned 3-bit values q + 4 (0..7): the
    two low bits from the 32 bytes at qs[i:] (bits 4 (c % 2).., as q2x64_load), the high bit
    from bits 2c, 2c + 1 of the 32 hmask bytes at hm[j:]."""
    if not (_is_byte_array(qs) and _is_byte_array(hm) and isinstance(i, types.Integer)
            and isinstance(j, types.Integer) and isinstance(c, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        b = builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _U8X32), align=1)
        hb = builder.load(_ptr(context, builder, sig.args[2], args[2], args[3], sig.args[3], _U8X32), align=1)
        c8 = _i8_arg(context, builder, args[4], sig.args[4])
        sh = builder.mul(builder.and_(c8, ir.Constant(_I8, 1)), ir.Constant(_I8, 4))
        lo = _byte_fields(builder, b, sh, 2)
        hi = _byte_fields(builder, b, builder.add(sh, ir.Constant(_I8, 2)), 2)
        return builder.or_(_concat32(builder, lo, hi), _chunk_high_bits(builder, hb, c8, 2))

    return u8x64(qs, i, hm, j, c), codegen


@intrinsic
def q5x64_load(typingctx, qs, i, qh, j, c):
    """Q5_K chunk c (0..3, elements 64c..64c + 63) as 5-bit values (0..31): the nibbles of
    the 32 bytes at qs[i:] (as q4x64_load) with bit 4 from bits 2c, 2c + 1 of the 32 qh
    bytes at qh[j:]."""
    if not (_is_byte_array(qs) and _is_byte_array(qh) and isinstance(i, types.Integer)
            and isinstance(j, types.Integer) and isinstance(c, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        b = builder.load(_ptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], _U8X32), align=1)
        hb = builder.load(_ptr(context, builder, sig.args[2], args[2], args[3], sig.args[3], _U8X32), align=1)
        c8 = _i8_arg(context, builder, args[4], sig.args[4])
        lo = builder.and_(b, _const_vec(_U8X32, [15] * 32))
        hi = builder.lshr(b, _const_vec(_U8X32, [4] * 32))
        return builder.or_(_concat32(builder, lo, hi), _chunk_high_bits(builder, hb, c8, 4))

    return u8x64(qs, i, qh, j, c), codegen


def _u64_byte_lanes(context, builder, word, wordty, picks):
    """<16 x i32> from the bytes of a 64-bit word: byte j of lane l is byte picks[4 l + j]
    of the word (None: zero). One byte shuffle of the broadcast word (vpshufb), where
    shifting and masking per lane took two to four instructions."""
    w = context.cast(builder, word, wordty, types.int64)
    spread = builder.bitcast(_splat(builder, w, 8), _U8X64)
    mask = _const_vec(ir.VectorType(_I32, 64), [64 if p is None else p for p in picks])
    return builder.bitcast(builder.shuffle_vector(spread, ir.Constant(_U8X64, [ir.Constant(_I8, 0)] * 64), mask), _I32X16)


@intrinsic
def i32x16_scale_bytes_dup16(typingctx, word, first):
    """Lanes 0-7: byte `first` of the 64-bit `word` in both 16-bit halves, lanes 8-15: byte
    first + 1 (first a literal 0..6): i32x16_dup16(i32x16_word_bytes8(...)) in one step."""
    if not (isinstance(word, types.Integer) and isinstance(first, types.IntegerLiteral)):
        return None
    f = first.literal_value

    def codegen(context, builder, sig, args):
        picks = []
        for l in range(16):
            b = f if l < 8 else f + 1
            picks += [b, None, b, None]
        return _u64_byte_lanes(context, builder, args[0], sig.args[0], picks)

    return i32x16(word, first), codegen


@intrinsic
def i32x16_byte_pairs64(typingctx, word):
    """Lanes 2j and 2j + 1: byte j of the 64-bit `word` (i32x16_word_bytes_pairs of its two
    halves, in one step)."""
    if not isinstance(word, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        picks = []
        for l in range(16):
            picks += [l // 2, None, None, None]
        return _u64_byte_lanes(context, builder, args[0], sig.args[0], picks)

    return i32x16(word), codegen


@intrinsic
def i32x16_word_bytes_quads(typingctx, word):
    """Lanes 4k..4k + 3: byte k of the 32-bit `word` (the scales of four sub-blocks of 16
    spread to the dpbusd lanes of their 16 bytes)."""
    if not isinstance(word, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return _word_bytes(context, builder, args[0], sig.args[0], [8 * (l // 4) for l in range(16)])

    return i32x16(word), codegen


@intrinsic
def i32x16_word_bytes16(typingctx, w0, w1, w2, w3):
    """Lane 4k + b: byte b of word k (sixteen bytes given as four 32-bit words, in order)."""
    if not all(isinstance(w, types.Integer) for w in (w0, w1, w2, w3)):
        return None

    def codegen(context, builder, sig, args):
        v = None
        for k in range(4):
            shifts = [None] * 16
            shifts[4 * k : 4 * k + 4] = [0, 8, 16, 24]
            part = _word_bytes(context, builder, args[k], sig.args[k], shifts)
            v = part if v is None else builder.or_(v, part)
        return v

    return i32x16(w0, w1, w2, w3), codegen


__all__ = [
    "HAS_VNNI",
    "dpbusd",
    "dpbusd_portable",
    "dpbusd_scaled",
    "dpbusd_scaled_portable",
    "i32x16_dup16",
    "f32x16_sum",
    "i32x16_add",
    "i32x16_sub",
    "i32x16_shl",
    "i32x16_load_s8",
    "i32x16_load_s8_quads",
    "i32x16_word_bytes_pairs",
    "i32x16_load",
    "i32x16_mul",
    "i32x16_splat8",
    "i32x16_store",
    "i32x16_to_f32",
    "i32x16_word_bytes8",
    "i32x16_zero",
    "q4x64_load",
    "transpose_words16",
    "u8x64_splat_word",
    "i32x16_nibbles",
    "i32x16_bit_bytes",
    "u8x64_or",
    "i32x16_flip_signs",
    "i32x16_splat",
    "int8_group_sums",
    "rows16_offsets",
    "store_rows16",
    "store_tile4",
    "sum_lanes8",
    "q6x64_load",
    "u8x64_load",
    "q2x64_load",
    "q3x64_load",
    "q5x64_load",
    "i32x16_word_bytes_quads",
    "i32x16_scale_bytes_dup16",
    "i32x16_byte_pairs64",
    "i32x16_word_bytes16",
]


@intrinsic
def prefetch(typingctx, arr, idx):
    """Ask for the cache line holding arr[idx] (a 1-D array of any element type) without
    waiting for it (llvm.prefetch: read, into L2). Never faults, whatever the address."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        i64 = context.cast(builder, args[1], sig.args[1], types.int64)
        ptr_ty = ir.IntType(8).as_pointer()
        p = builder.bitcast(builder.gep(a.data, [i64]), ptr_ty)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ptr_ty, _I32, _I32, _I32]), "llvm.prefetch.p0i8")
        # locality 2 (prefetcht1: into L2, not L1): a kernel's activations live in L1, and
        # weights fetched into it push them out (7B Q4_K_M mat-vecs, 2 threads: 16.0 GB/s with
        # locality 3, 20.7 with 2; the 32-block kernels are indifferent)
        builder.call(fn, [p, ir.Constant(_I32, 0), ir.Constant(_I32, 2), ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return types.none(arr, idx), codegen


@njit(inline="always")
def prefetch_next_group(w, g, rb, b, block_bytes):
    """While group g's blocks b go by, ask for block b's share of group g + 1 (its sixteen
    rows are contiguous: 16 rb bytes read in nb slices of 16 blocks' bytes). The kernels read
    sixteen rows at once, more streams than the hardware prefetcher follows: without this a
    core waits for memory between its blocks (SmolLM2's Q4_1 layers, one thread: 7.9 -> 11 GB/s)."""
    ahead = (g + 1) * 16 * rb + b * 16 * block_bytes
    for line in range(0, 16 * block_bytes, 64):
        prefetch(w, ahead + line)


# ---- sixteen rows, one lane each, for the k-quants (kquant_products.matmul_q8_k_rows16) ----
# A row's block is turned word-wise (transpose_words16) so that lane r of a vector holds four
# values of row r; one token's four activations go to every lane (a broadcast load). The
# byte products of a whole sub-block are summed as 16-bit pairs (vpmaddubsw, then plain
# 16-bit adds while they cannot overflow) and the sub-block's scale applied once (vpdpwssd):
# per token a fraction of the multiplies of one row at a time, and no horizontal sums.

def _maddubs_vnni(builder, a, b):
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_I16X32, [_U8X64, _U8X64]), "llvm.x86.avx512.pmaddubs.w.512"
    )
    return builder.call(fn, [a, b])


def _maddubs_portable(builder, a, b):
    """Pairs of u8 * s8 products as int16, without saturation: the callers' pairs are at
    most 2 * 63 * 128, where vpmaddubsw does not saturate either."""
    wide = ir.VectorType(_I16, 64)
    prod = builder.mul(builder.zext(a, wide), builder.sext(b, wide))
    undef = ir.Constant(wide, ir.Undefined)
    even = builder.shuffle_vector(prod, undef, _const_vec(ir.VectorType(_I32, 32), range(0, 64, 2)))
    odd = builder.shuffle_vector(prod, undef, _const_vec(ir.VectorType(_I32, 32), range(1, 64, 2)))
    return builder.add(even, odd)


def _dpwssd_vnni(builder, acc, a, b):
    opty = _I16X32 if llvm.llvm_version_info >= (21,) else _I32X16
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_I32X16, [_I32X16, opty, opty]), "llvm.x86.avx512.vpdpwssd.512"
    )
    return builder.call(fn, [acc, builder.bitcast(a, opty), builder.bitcast(b, opty)])


def _dpwssd_portable(builder, acc, a, b):
    wide = ir.VectorType(_I32, 32)
    prod = builder.mul(builder.sext(builder.bitcast(a, _I16X32), wide), builder.sext(builder.bitcast(b, _I16X32), wide))
    undef = ir.Constant(wide, ir.Undefined)
    even = builder.shuffle_vector(prod, undef, _const_vec(_I32X16, range(0, 32, 2)))
    odd = builder.shuffle_vector(prod, undef, _const_vec(_I32X16, range(1, 32, 2)))
    return builder.add(acc, builder.add(even, odd))


def _make_dpwssd_splat_sum(vnni: bool):
    maddubs = _maddubs_vnni if vnni else _maddubs_portable
    dpwssd = _dpwssd_vnni if vnni else _dpwssd_portable

    @intrinsic
    def dpwssd_splat_sum(typingctx, acc, xq, xo, sc, ws):
        """acc + pairwise 16-bit sc * (sum over k of the byte products of ws[k] with the four
        bytes xq[xo + 4k:] in every lane): lane r gets sc_r times row r's dot product with
        4 len(ws) activations. The 16-bit sums must not overflow (the caller's bound)."""
        ok = (acc == i32x16 and _is_byte_array(xq) and isinstance(xo, types.Integer) and sc == i32x16
              and isinstance(ws, types.UniTuple) and ws.dtype == u8x64)
        if not ok:
            return None
        n = ws.count

        def codegen(context, builder, sig, args):
            acc_v, xq_v, xo_v, sc_v, ws_v = args
            xo64 = context.cast(builder, xo_v, sig.args[2], types.int64)
            s = None
            for k in range(n):
                at = builder.add(xo64, ir.Constant(_I64, 4 * k))
                word = builder.load(_ptr(context, builder, sig.args[1], xq_v, at, types.int64, _I32), align=1)
                p = maddubs(builder, builder.extract_value(ws_v, k), builder.bitcast(_splat(builder, word, 16), _U8X64))
                s = p if s is None else builder.add(s, p)
            return dpwssd(builder, acc_v, s, sc_v)

        return i32x16(acc, xq, xo, sc, ws), codegen

    return dpwssd_splat_sum


def _make_dpwssd_splat(vnni: bool):
    dpwssd = _dpwssd_vnni if vnni else _dpwssd_portable

    @intrinsic
    def dpwssd_splat(typingctx, acc, v, arr, idx):
        """acc + pairwise 16-bit v * (the int32 arr[idx] in every lane)."""
        if not (acc == i32x16 and v == i32x16 and _is_i32_array(arr) and isinstance(idx, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            word = builder.load(_ptr(context, builder, sig.args[2], args[2], args[3], sig.args[3], _I32), align=4)
            return dpwssd(builder, args[0], args[1], _splat(builder, word, 16))

        return i32x16(acc, v, arr, idx), codegen

    return dpwssd_splat


def _make_dpwssd(vnni: bool):
    impl = _dpwssd_vnni if vnni else _dpwssd_portable

    @intrinsic
    def dpwssd(typingctx, acc, a, b):
        """acc + per lane lo16(a) lo16(b) + hi16(a) hi16(b) (signed 16-bit halves)."""
        if not (acc == i32x16 and a == i32x16 and b == i32x16):
            return None

        def codegen(context, builder, sig, args):
            return impl(builder, *args)

        return i32x16(acc, a, b), codegen

    return dpwssd


dpwssd = _make_dpwssd(HAS_VNNI)
dpwssd_portable = _make_dpwssd(False)
dpwssd_splat_sum = _make_dpwssd_splat_sum(HAS_VNNI)
dpwssd_splat_sum_portable = _make_dpwssd_splat_sum(False)  # for the tests, whatever the CPU
dpwssd_splat = _make_dpwssd_splat(HAS_VNNI)
dpwssd_splat_portable = _make_dpwssd_splat(False)


def _i32_with_scalar(op):
    """v op k in every lane, k an integer (a constant once inlined)."""
    @intrinsic
    def f(typingctx, v, k):
        if not (v == i32x16 and isinstance(k, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            kk = builder.trunc(context.cast(builder, args[1], sig.args[1], types.int64), _I32)
            return getattr(builder, op)(args[0], _splat(builder, kk, 16))

        return i32x16(v, k), codegen

    return f


i32x16_lshr = _i32_with_scalar("lshr")  # v >> k (logical)
i32x16_ashr = _i32_with_scalar("ashr")  # v >> k (arithmetic)
i32x16_and = _i32_with_scalar("and_")  # v & m
i32x16_shl = _i32_with_scalar("shl")  # v << k


@intrinsic
def i32x16_bytes(typingctx, v):
    """The 64 bytes of a lane vector, as the weights' side of a byte product."""
    if v != i32x16:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], _U8X64)

    return u8x64(v), codegen
i32x16_or = _i32_binary("or_")


def _row_sums16(context, builder, arrty, arr, o, vec_ir, add):
    """Lane r: vector arr[o + 16 r :] summed, for r < 16, in f32x16_sum's order (halves
    added until one lane is left): at each level a pair of vectors gives one holding both
    halves' sums (two shuffles, one add), 45 instructions for what 16 sums take ~140 in."""
    o64 = context.cast(builder, o, types.intp, types.int64)
    vs = [builder.load(_ptr(context, builder, arrty, arr, builder.add(o64, ir.Constant(_I64, 16 * r)), types.int64, vec_ir), align=4)
          for r in range(16)]
    width = 16  # lanes each row still has in vs
    while len(vs) > 1:
        half = width // 2
        lo = [i for g in range(0, 32, width) for i in range(g, g + half)]
        hi = [i + half for i in lo]
        nxt = []
        for a, b in zip(vs[0::2], vs[1::2]):
            nxt.append(add(builder.shuffle_vector(a, b, _const_vec(_I32X16, lo)),
                           builder.shuffle_vector(a, b, _const_vec(_I32X16, hi))))
        vs, width = nxt, half
    return vs[0]


@intrinsic
def i32x16_row_sums(typingctx, arr, o):
    """Lane r: the sum of the sixteen lanes of the vector arr[o + 16 r : o + 16 r + 16], for
    r < 16 (sixteen rows' partial sums to one lane each: halves of pairs added, four times)."""
    if not (_is_i32_array(arr) and isinstance(o, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        o = context.cast(builder, args[1], sig.args[1], types.intp)
        return _row_sums16(context, builder, sig.args[0], args[0], o, _I32X16, builder.add)

    return i32x16(arr, o), codegen


@intrinsic
def f32x16_row_sums(typingctx, arr, o):
    """Lane r: f32x16_sum of the vector arr[o + 16 r : o + 16 r + 16], for r < 16, the same
    bits (the same pairs added in the same order): sixteen dot products finished at once."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.float32 and arr.ndim == 1
            and isinstance(o, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        o = context.cast(builder, args[1], sig.args[1], types.intp)
        return _row_sums16(context, builder, sig.args[0], args[0], o, _V16, builder.fadd)

    return f32x16(arr, o), codegen
