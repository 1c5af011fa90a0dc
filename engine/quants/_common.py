"""Pieces every kernel module shares: bit casts, half-float reads, groups of rows.

Kernel conventions (the block layouts are ggml/src/ggml-common.h's, the dot products
ggml/src/ggml-cpu/'s, in llama.cpp):
- Kernels take flat, C-contiguous, typed arrays and ints; shapes and checks stay in Python.
- Index through slices: a row, then a block (`blk = row[o:o + BLOCK_BYTES]`), then
  `blk[k + l]` with k, l from constant-trip loops. numba wraps negative indices, and where
  LLVM cannot prove an index non-negative (`r * row_bytes + j` with `r` from `min(...)`, or
  even `b * 210 + 64 * h + l`) the wrap-around selects stop the inner loop from vectorizing:
  2.0 against 11.6 GB/s for the same Q4_0 mat-vec, 11.9 against 5.4 ms for Q6_K.
- Float arithmetic in the inner loops, with float32 constants (an int literal turns float32
  arithmetic into float64).
- Four output rows in the same inner loop, sharing each activation load (separate loops
  per row, even inlined, ran 2.4x slower); a group at the end of the matrix repeats its
  last row instead of branching. `prange` runs over these groups; the token loop is inside,
  so each packed byte comes from memory once per call.

numba's on-disk cache (`cache=True`, in __pycache__ or NUMBA_CACHE_DIR) checks only the
kernel's own source file: after editing this module, delete engine/quants/__pycache__
(or touch the kernel modules), or the old inlined helpers stay in the cached kernels.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, typeof, types
from numba.extending import NativeValue, intrinsic, models, register_model, typeof_impl, unbox

from ..ggml_types import TYPE_TRAITS, GGMLType

# Options of every kernel. fastmath only where results need not be bit-exact (matmul);
# the dequantize kernels use MATH_EXACT so that they reproduce numpy/gguf-py bit for bit.
MATH_FAST = dict(cache=True, fastmath=True, error_model="numpy", boundscheck=False)
MATH_EXACT = dict(cache=True, fastmath=False, error_model="numpy", boundscheck=False)



def block_shape(type_name: str) -> tuple[int, int]:
    """(values, bytes) of one block of the ggml type named `type_name` ("Q4_0"): each kernel
    module's BLOCK_ELEMS and BLOCK_BYTES, read from the one table of block sizes
    (ggml_types.TYPE_TRAITS)."""
    traits = TYPE_TRAITS[GGMLType[type_name]]
    return traits.block_size, traits.type_size


class TypeTag:
    """A kernel's first argument that names a ggml type at compile time: its numba type
    carries the type, so `overload`s keyed on it plug each type's block code into one
    kernel and each type still gets its own compiled code (row_kernels.py,
    kquant_products.py). (A literal int argument would do the same, but numba's `literally`
    made the kernels 100x slower.) `order`, where a type's kernel sums in more than one
    order (summation_order.py), names the order too: each its own compiled code."""

    def __init__(self, ggml_type: int, order: str = "") -> None:
        self.ggml_type = int(ggml_type)
        self.order = order
        # made once: numba types a tag on every kernel call (in Python: no fast path knows it)
        self.numba_type = TypeTagType(self.ggml_type, order)


class TypeTagType(types.Type):
    def __init__(self, ggml_type: int, order: str = "") -> None:
        self.ggml_type = ggml_type
        self.order = order
        super().__init__(name=f"TypeTag({ggml_type}, {order})" if order else f"TypeTag({ggml_type})")


@typeof_impl.register(TypeTag)
def _typeof_tag(val, c):
    return val.numba_type


@register_model(TypeTagType)
class _TypeTagModel(models.OpaqueModel):
    pass


@unbox(TypeTagType)
def _unbox_tag(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())


@intrinsic
def u32_as_f32(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if v.type.width > 32:
            v = builder.trunc(v, ir.IntType(32))
        elif v.type.width < 32:
            v = builder.zext(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def half_to_f32_fast(typingctx, bits):
    """IEEE half (low 16 bits of an integer) to float32 by the CPU's own conversion
    (vcvtph2ps). Exact for every value; a signalling NaN comes back quieted, unlike numpy.
    For the matmul kernels, where that cannot matter."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if v.type.width > 16:
            v = builder.trunc(v, ir.IntType(16))
        return builder.fpext(builder.bitcast(v, ir.HalfType()), ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def bf16_to_f32(typingctx, bits):
    """bfloat16 (low 16 bits of an integer) to float32: the bits become the top half."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if v.type.width > 16:
            v = builder.trunc(v, ir.IntType(16))
        w = builder.shl(builder.zext(v, ir.IntType(32)), ir.Constant(ir.IntType(32), 16))
        return builder.bitcast(w, ir.FloatType())

    return types.float32(bits), codegen


@njit(inline="always")
def half_to_f32_exact(h):
    """IEEE half bits to float32, bit-identical to numpy's float16 -> float32 conversion,
    signalling-NaN payloads included (numpy keeps them; the CPU instruction quiets them)."""
    h = np.uint32(h) & np.uint32(0xFFFF)
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    em = h & np.uint32(0x7FFF)
    if em >= np.uint32(0x7C00):  # inf, nan: keep the payload
        return u32_as_f32(sign | np.uint32(0x7F800000) | ((em & np.uint32(0x3FF)) << np.uint32(13)))
    if em >= np.uint32(0x0400):  # normal: rebias the exponent by 127 - 15
        return u32_as_f32(sign | ((em << np.uint32(13)) + np.uint32(112 << 23)))
    v = np.float32(em) * np.float32(2.0**-24)  # zero, subnormal: exact in float32
    return -v if sign else v


@njit(inline="always")
def read_u16(buf, o):
    """The little-endian uint16 at byte `o` of a uint8 (or int8) array."""
    return (np.uint32(buf[o]) & np.uint32(0xFF)) | ((np.uint32(buf[o + 1]) & np.uint32(0xFF)) << np.uint32(8))


@njit(inline="always")
def read_u32(buf, o):
    """The little-endian uint32 at byte `o` of a uint8 array, as an int64."""
    return np.int64(buf[o]) | (np.int64(buf[o + 1]) << 8) | (np.int64(buf[o + 2]) << 16) | (np.int64(buf[o + 3]) << 24)


@njit(inline="always")
def read_f16(buf, o):
    """The little-endian half at byte `o` of a uint8 (or int8) array, exactly as numpy
    converts it (dequantize kernels)."""
    return half_to_f32_exact(read_u16(buf, o))


@njit(inline="always")
def read_f16_fast(buf, o):
    """The little-endian half at byte `o` of a uint8 (or int8) array (matmul kernels)."""
    return half_to_f32_fast(read_u16(buf, o))


@njit(inline="always")
def group_of_rows(g, n_out):
    """The four output rows of row group `g`; the last group repeats row n_out - 1."""
    last = n_out - 1
    return min(g * 4, last), min(g * 4 + 1, last), min(g * 4 + 2, last), min(g * 4 + 3, last)



@njit(inline="always")
def dequantize_block32(src, o, dst, e, m_at, qh_at, qs_at, offset):
    """One block of Q4_0, Q4_1, Q5_0 or Q5_1 (each type's layout given as constants): value
    j < 16 is the low nibble of qs[j], value j + 16 the high one, and where qh_at >= 0 bit j
    of the little-endian u32 qh is bit 4 of value j; w = d * (q - offset), plus m where
    m_at >= 0 (d the half at byte 0, m the half at m_at)."""
    d = read_f16(src, o)
    m = read_f16(src, o + m_at) if m_at >= 0 else np.float32(0.0)
    qh = read_u32(src, o + qh_at) if qh_at >= 0 else np.int64(0)
    for j in range(16):
        q = np.int64(src[o + qs_at + j])
        lo = (q & 15) | (((qh >> j) & 1) << 4)
        hi = (q >> 4) | (((qh >> (j + 16)) & 1) << 4)
        w_lo = d * np.float32(lo - offset)
        w_hi = d * np.float32(hi - offset)
        if m_at >= 0:
            w_lo += m
            w_hi += m
        dst[e + j] = w_lo
        dst[e + 16 + j] = w_hi


def compiled_call(kernel, *fixed):
    """kernel(*fixed, *rest), through its compiled entry point once the first call has
    compiled (or loaded) it: numba's dispatcher types every argument of every call, about
    1.5 us, and a generated token makes ~200 of these calls. The arguments that follow are
    always of the same types (read-only contiguous activations, an int, a fresh output)."""
    entry = None

    def call(*rest):
        nonlocal entry
        if entry is not None:
            return entry(*fixed, *rest)
        result = kernel(*fixed, *rest)
        compiled = kernel.overloads.get(tuple(typeof(a) for a in (*fixed, *rest)))
        if compiled is not None:
            entry = compiled.entry_point
        return result

    return call
