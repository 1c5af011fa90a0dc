"""Weights in llama.cpp's packed formats: dequantization and fused matrix products.

One numba kernel module per ggml type (`q4_0.py`, `q6_k.py`, ...), each with
- `dequantize_block(src, o, dst, e)`: one block to float32, bit for bit what gguf-py (and
  llama.cpp's `dequantize_row_*`) produce, plugged into row_kernels.dequantize_rows;
- the block code of the 8-bit products the forward pass runs, bit for bit llama.cpp's,
  which block32_products.py (32-value types) and kquant_products.py (k-quants) plug into
  their kernels;
- `BLOCK_ELEMS`, `BLOCK_BYTES`, and `WEIGHT_DTYPE` where the kernels read the data as other
  than bytes (uint8): row_kernels.WEIGHT_DTYPES.
F32 / F16 / BF16 have the float kernel row_kernels.matmul (with their `value_fast`); the float
product of a block type (`matmul` below, for tests and benchmarks) dequantizes a chunk of
rows at a time and multiplies in float32.
This module checks shapes and types and picks the kernel; kernels see flat arrays and ints.

    w = QuantMatrix.from_model_file(mf, "blk.0.attn_q.weight")
    y = matmul(w, x)                  # x float32 (n_tokens, w.n_in) -> (n_tokens, w.n_out)
    e = dequantize_rows(w, token_ids) # (len(token_ids), w.n_in): an embedding lookup
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from .. import summation_order
from ..errors import ModelFileError, UsageError
from ..ggml_types import GGMLType, ggml_type_name
from . import block32_products, kquant_products, row_kernels
from ._common import compiled_call
from .activations import quantize_q8_0, quantize_q8_1, quantize_q8_k

__all__ = [
    "SUPPORTED_TYPES",
    "QuantMatrix",
    "UnsupportedTypeError",
    "dequantize",
    "dequantize_rows",
    "matmul",
    "matmul_q8_1",
    "matmul_q8_0",
    "matmul_q8_k",
]

# The kernel module of each type: the type table is data.
KERNELS: dict[GGMLType, ModuleType] = row_kernels.MODULES

SUPPORTED_TYPES: frozenset[GGMLType] = frozenset(KERNELS)

# How `QuantMatrix.data` holds each plain type (tensor_view's dtypes); block types are uint8.
_DATA_DTYPES = {
    GGMLType.F32: np.dtype(np.float32),
    GGMLType.F16: np.dtype(np.float16),
    GGMLType.BF16: np.dtype(np.uint16),
}


class UnsupportedTypeError(UsageError):
    """A tensor type the engine has no kernel for."""


def _unsupported(ggml_type) -> str:
    names = ", ".join(t.name for t in sorted(SUPPORTED_TYPES))
    return f"tensor type {ggml_type_name(int(ggml_type))} is not supported (supported: {names})"


def _kernels(ggml_type) -> ModuleType:
    try:
        return KERNELS[GGMLType(int(ggml_type))]
    except (ValueError, KeyError):
        raise UnsupportedTypeError(_unsupported(ggml_type)) from None


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view, so that numba compiles one specialisation whether the caller's
    array is a mapped file (read-only) or a writable buffer."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _flat_for_kernel(data: np.ndarray, dtype: np.dtype) -> np.ndarray:
    flat = data.reshape(-1)
    if flat.dtype != dtype:
        flat = flat.view(dtype)
    if not flat.flags.aligned:
        flat = flat.copy()
    return _readonly(flat)


# ---- matrices held turned ----
# A matrix read into memory (engine/resident_weights.py) may be held with each block of 16
# rows laid out as its 8-bit kernel reads it: the k-quants (kquant_products) and the 32-value
# type with lane sums, Q4_1 (block32_products). One module per type family says how.
def _turner(ggml_type) -> ModuleType | None:
    for module in (kquant_products, block32_products):
        if GGMLType(int(ggml_type)) in module.TURNED_TYPES:
            return module
    return None


def can_turn(ggml_type, n_out: int) -> bool:
    """Whether a matrix of this type and row count can be held turned."""
    module = _turner(ggml_type)
    return module is not None and module.can_turn(ggml_type, n_out)


def turn_in_place(ggml_type, data: np.ndarray, n_out: int, n_in: int) -> None:
    """data (a matrix's ggml bytes, writable, contiguous) turned in place; without the GIL."""
    module = _turner(ggml_type)
    flat = data.reshape(-1).view(np.uint8)
    module.turn_rows16(module.TAGS[int(ggml_type)], flat, flat.view(np.uint16), flat.view(np.int32), n_out, n_in)


def unturn(ggml_type, data: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """The ggml bytes (n_out, row bytes) of a matrix held turned."""
    return _turner(ggml_type).unturn(ggml_type, data, n_out, n_in)


def _rows_flat(w: "QuantMatrix") -> np.ndarray:
    """w's data in ggml's row order as the row kernels read it (a turned matrix unturned)."""
    return _flat_for_kernel(w.ggml_data, row_kernels.WEIGHT_DTYPES[w.ggml_type]) if w.turned else w.flat


@dataclass(frozen=True, eq=False)
class QuantMatrix:
    """A 2-D weight as stored: `n_out` rows of `n_in` elements.

    `data` is zero-copy where it comes from a file: uint8 (n_out, row_bytes) for block
    types, float32 / float16 / uint16 (bf16 bits) (n_out, n_in) for F32 / F16 / BF16.
    """

    ggml_type: GGMLType
    n_in: int
    n_out: int
    data: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        kern = _kernels(self.ggml_type)
        object.__setattr__(self, "ggml_type", GGMLType(int(self.ggml_type)))
        object.__setattr__(self, "n_in", int(self.n_in))
        object.__setattr__(self, "n_out", int(self.n_out))
        if self.n_in <= 0 or self.n_out <= 0 or self.n_in % kern.BLOCK_ELEMS:
            raise UsageError(
                f"a {self.ggml_type.name} matrix needs a positive row length that is a multiple "
                f"of {kern.BLOCK_ELEMS}, not {self.n_in} (and at least one row, not {self.n_out})"
            )
        want = (self.n_out, self.row_bytes if self.ggml_type not in _DATA_DTYPES else self.n_in)
        dtype = _DATA_DTYPES.get(self.ggml_type, np.dtype(np.uint8))
        if self.data.dtype != dtype or tuple(self.data.shape) != want:
            raise UsageError(
                f"{self.ggml_type.name} matrix data must be {dtype} {want}, "
                f"not {self.data.dtype} {tuple(self.data.shape)}"
            )
        if not self.data.flags.c_contiguous:
            raise UsageError(f"{self.ggml_type.name} matrix data must be C-contiguous")

    @property
    def flat(self) -> np.ndarray:
        """The data as the kernels read it: flat, read-only, WEIGHT_DTYPE (made once)."""
        f = self.__dict__.get("_flat")
        if f is None:
            f = _flat_for_kernel(self.data, row_kernels.WEIGHT_DTYPES[self.ggml_type])
            object.__setattr__(self, "_flat", f)
        return f

    @property
    def turned(self) -> bool:
        """Whether `data` holds the matrix turned sixteen rows at a time for its kernel
        (turn_in_place) rather than in ggml's row order."""
        return self.__dict__.get("_turned", False)

    @property
    def ggml_data(self) -> np.ndarray:
        """The data in ggml's row order (a copy where the matrix is held turned): for the
        code that reads rows rather than the 8-bit kernel."""
        if not self.turned:
            return self.data
        return unturn(self.ggml_type, self.data, self.n_out, self.n_in)

    def move_to(self, data: np.ndarray, turned: bool = False) -> None:
        """Read the weights from `data` from now on: the same bytes elsewhere (a copy in the
        process's memory, engine/resident_weights.py), in ggml's order or, with `turned`, as
        turn_in_place leaves them (for the types and sizes `can_turn` allows).
        A kernel call already running keeps the array it was given; the next one takes the new."""
        if data.dtype != self.data.dtype or data.shape != self.data.shape or not data.flags.c_contiguous:
            raise UsageError(f"moving a {self.ggml_type.name} matrix needs {self.data.dtype} {self.data.shape} data")
        if turned and not can_turn(self.ggml_type, self.n_out):
            raise UsageError(f"a {self.ggml_type.name} matrix of {self.n_out} rows cannot be held turned")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "_turned", bool(turned))
        self.__dict__.pop("_flat", None)
        self.__dict__.pop("_kernel_calls", None)  # bound to the old array

    @property
    def row_bytes(self) -> int:
        kern = KERNELS[self.ggml_type]
        return self.n_in // kern.BLOCK_ELEMS * kern.BLOCK_BYTES

    @property
    def nbytes(self) -> int:
        return self.n_out * self.row_bytes

    @classmethod
    def from_model_file(cls, model_file, tensor_name: str) -> "QuantMatrix":
        """The named 2-D tensor of an open `ModelFile` (ggml shape (n_in, n_out)), zero-copy."""
        t = model_file.tensors.get(tensor_name)
        if t is None:
            raise ModelFileError(model_file.path, f"tensor {tensor_name} is missing")
        if t.ggml_type not in SUPPORTED_TYPES:
            raise ModelFileError(model_file.path, f"{tensor_name}: {_unsupported(t.ggml_type)}")
        shape = tuple(t.shape)
        if len(shape) < 2 or any(d != 1 for d in shape[2:]):
            raise ModelFileError(
                model_file.path, f"{tensor_name}: a matrix needs 2 dimensions, the file has {list(shape)}"
            )
        n_in, n_out = int(shape[0]), int(shape[1])
        data = model_file.tensor_view(tensor_name).reshape(n_out, -1)
        try:
            return cls(t.ggml_type, n_in, n_out, data)
        except UsageError as e:
            raise ModelFileError(model_file.path, f"{tensor_name}: {e}") from None


def matmul(w: QuantMatrix, x: np.ndarray, out: np.ndarray | None = None, x_sums: np.ndarray | None = None) -> np.ndarray:
    """out[t, r] = sum_k W[r, k] * x[t, k] for x (n_tokens, n_in): float32 (n_tokens, n_out).

    A 1-D x (one token) gives a 1-D result. `out`, when given, must be float32 C-contiguous
    of the result's shape; it is filled and returned. `x_sums` (Q4_1 and Q5_1 only, else
    ignored): float32 (n_tokens, n_in // 32), the block sums of x to use in the weights'
    minimum term, as llama.cpp's Q8_1 activations carry them (activations.py).
    F32 / F16 / BF16 weights go to their float kernels (the forward pass's product for those
    types); block types are dequantized a chunk of rows at a time and multiplied in float32.
    """
    x = np.asarray(x)
    one = x.ndim == 1
    x2 = x.reshape(1, -1) if one else x
    if x2.ndim != 2 or x2.shape[1] != w.n_in:
        raise UsageError(f"matmul: x must be (n_tokens, {w.n_in}), not {x.shape}")
    n_tok = x2.shape[0]
    shape = (w.n_out,) if one else (n_tok, w.n_out)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.dtype != np.float32 or out.shape != shape or not out.flags.c_contiguous or not out.flags.writeable:
        raise UsageError(f"matmul: out must be a writable C-contiguous float32 array of shape {shape}")
    if n_tok == 0:
        return out
    xf = np.ascontiguousarray(x2, dtype=np.float32)
    out2 = out.reshape(n_tok, w.n_out)
    if w.ggml_type in _DATA_DTYPES:
        row_kernels.matmul(row_kernels.TAGS[w.ggml_type], w.flat, w.n_out, w.n_in, _readonly(xf.reshape(-1)), n_tok, out.reshape(-1))
    else:
        _dequantized_matmul(w, xf, out2)
    if x_sums is not None and w.ggml_type in _MIN_OFFSET:
        nb = w.n_in // 32
        xs = np.ascontiguousarray(x_sums, dtype=np.float32).reshape(-1)
        if xs.size != n_tok * nb:
            raise UsageError(f"matmul: x_sums must hold {n_tok * nb} block sums, not {xs.size}")
        # sum((d q + m) x) = d sum(q x) + m sum(x): swap each block's sum(x) for the given one
        o = _MIN_OFFSET[w.ggml_type]
        mins = np.ascontiguousarray(w.ggml_data.reshape(w.n_out, nb, -1)[:, :, o : o + 2]).view(np.float16)
        delta = xs.reshape(n_tok, nb) - xf.reshape(n_tok, nb, 32).sum(axis=2, dtype=np.float32)
        out2 += delta @ mins.reshape(w.n_out, nb).astype(np.float32).T
    return out


# Rows a block type's float product dequantizes at a time (a float32 buffer of that many rows).
_ROW_CHUNK = 256
# Byte offset of the half block minimum m in the types with w = d q + m (matmul's x_sums).
_MIN_OFFSET = {GGMLType.Q4_1: 2, GGMLType.Q5_1: 2}


def _dequantized_matmul(w: QuantMatrix, x: np.ndarray, out: np.ndarray) -> None:
    """out (n_tok, n_out) = x (n_tok, n_in) W^T for a block type: a chunk of rows dequantized
    by the type's dequantize_rows, then one float32 matrix-vector product per token, so that
    a token's result does not depend on the batch it came in."""
    kern, tag = KERNELS[w.ggml_type], row_kernels.TAGS[w.ggml_type]
    wf = _rows_flat(w)
    row_items = w.row_bytes // wf.itemsize
    n_blocks = w.n_in // kern.BLOCK_ELEMS
    buf = np.empty((min(_ROW_CHUNK, w.n_out), w.n_in), dtype=np.float32)
    for r0 in range(0, w.n_out, _ROW_CHUNK):
        r1 = min(r0 + _ROW_CHUNK, w.n_out)
        rows = buf[: r1 - r0]
        row_kernels.dequantize_rows(tag, wf, row_items, _readonly(np.arange(r0, r1, dtype=np.int64)), n_blocks, rows.reshape(-1))
        for t in range(x.shape[0]):
            np.matmul(rows, x[t], out=out[t, r0:r1])


def matmul_q8_1(w: QuantMatrix, xq: np.ndarray, xd: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """W·x for x given as Q8_1 blocks (activations.quantize_q8_1: values (float32 or int8),
    scales, sums), with llama.cpp's own arithmetic; for the types with a block minimum
    (HAS_Q8_1_KERNEL: block32_products.py). xq (n_tokens, n_in) -> float32 (n_tokens, n_out).
    One kernel for any number of tokens: a token's result does not depend on its batch."""
    n_tok = xq.shape[0]
    nb = w.n_in // 32
    if xq.shape != (n_tok, w.n_in) or xd.size != n_tok * nb or xs.size != n_tok * nb:
        raise UsageError(f"matmul_q8_1: shapes {xq.shape}, {xd.shape}, {xs.shape} do not fit a {w.n_in}-wide matrix")
    if w.ggml_type not in HAS_Q8_1_KERNEL:
        raise UsageError(f"matmul_q8_1: no 8-bit kernel for {w.ggml_type.name}")
    f32 = lambda a: _readonly(np.ascontiguousarray(a, dtype=np.float32).reshape(-1))
    return matmul_rounded(w, (_bytes(xq), f32(xd), f32(xs)), n_tok)


HAS_Q8_1_KERNEL = block32_products.Q8_1_TYPES


def matmul_q8_k(w: QuantMatrix, xq: np.ndarray, xd: np.ndarray, xbs: np.ndarray) -> np.ndarray:
    """W·x for x given as Q8_K blocks (activations.quantize_q8_k: int8 values (n_tokens,
    n_in), float scales per 256, int32 sums per 16), with integer dot products as llama.cpp
    takes them; for the k-quant types (HAS_Q8_K_KERNEL: kquant_products.py)."""
    if w.ggml_type not in HAS_Q8_K_KERNEL:
        raise UsageError(f"matmul_q8_k: no 8-bit kernel for {w.ggml_type.name}")
    n_tok = xq.shape[0]
    if xq.shape != (n_tok, w.n_in) or xd.size != n_tok * (w.n_in // 256) or xbs.size != n_tok * (w.n_in // 16):
        raise UsageError(f"matmul_q8_k: shapes {xq.shape}, {xd.shape}, {xbs.shape} do not fit a {w.n_in}-wide matrix")
    d = _readonly(np.ascontiguousarray(xd, dtype=np.float32).reshape(-1))
    bs = _readonly(np.ascontiguousarray(xbs, dtype=np.int32).reshape(-1))
    return matmul_rounded(w, (_bytes(xq), d, bs), n_tok)


HAS_Q8_K_KERNEL = kquant_products.TYPES


def matmul_q8_0(w: QuantMatrix, xq: np.ndarray, xd: np.ndarray) -> np.ndarray:
    """W·x for x given as Q8_0 blocks (activations.quantize_q8_0: int8 values (n_tokens,
    n_in), half scales per 32), with integer dot products as llama.cpp takes them; for the
    other 32-value block types (HAS_Q8_0_KERNEL: block32_products.py)."""
    n_tok = xq.shape[0]
    if xq.shape != (n_tok, w.n_in) or xd.size != n_tok * (w.n_in // 32):
        raise UsageError(f"matmul_q8_0: shapes {xq.shape}, {xd.shape} do not fit a {w.n_in}-wide matrix")
    if w.ggml_type not in HAS_Q8_0_KERNEL:
        raise UsageError(f"matmul_q8_0: no 8-bit kernel for {w.ggml_type.name}")
    d = _readonly(np.ascontiguousarray(xd, dtype=np.float32).reshape(-1))
    return matmul_rounded(w, (_bytes(xq), d), n_tok)


def _bytes(xq: np.ndarray) -> np.ndarray:
    """int8 activation values as the kernels read them: flat, read-only bytes."""
    return _readonly(np.ascontiguousarray(xq, dtype=np.int8).reshape(-1).view(np.uint8))


HAS_Q8_0_KERNEL = block32_products.Q8_0_TYPES


def dequantize_rows(w: QuantMatrix, rows) -> np.ndarray:
    """Rows `rows` of W as float32 (len(rows), n_in): the embedding lookup."""
    kern = KERNELS[w.ggml_type]
    idx = np.ascontiguousarray(rows, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= w.n_out):
        raise UsageError(f"dequantize_rows: row ids must be in [0, {w.n_out}), got {idx.min()}..{idx.max()}")
    out = np.empty((idx.size, w.n_in), dtype=np.float32)
    if idx.size:
        wf = _rows_flat(w)
        row_items = w.row_bytes // wf.itemsize
        row_kernels.dequantize_rows(row_kernels.TAGS[w.ggml_type], wf, row_items, _readonly(idx), w.n_in // kern.BLOCK_ELEMS, out.reshape(-1))
    return out


def dequantize(raw: np.ndarray, ggml_type, n_elements: int) -> np.ndarray:
    """The first `n_elements` values held in `raw` (bytes as stored, any shape; or a typed
    F32/F16/BF16 array) as a flat float32 array, bit-identical to gguf-py's dequantize."""
    kern = _kernels(ggml_type)
    n_elements = int(n_elements)
    if n_elements < 0 or n_elements % kern.BLOCK_ELEMS:
        raise UsageError(
            f"dequantize: {ggml_type_name(int(ggml_type))} holds whole blocks of "
            f"{kern.BLOCK_ELEMS} values; {n_elements} is not a multiple"
        )
    n_blocks = n_elements // kern.BLOCK_ELEMS
    need = n_blocks * kern.BLOCK_BYTES
    data = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    if data.size < need:
        raise UsageError(f"dequantize: {n_elements} values need {need} bytes, the buffer has {data.size}")
    out = np.empty(n_elements, dtype=np.float32)
    if n_blocks:
        wf = _flat_for_kernel(data[:need], row_kernels.WEIGHT_DTYPES[GGMLType(int(ggml_type))])
        rows = _readonly(np.zeros(1, dtype=np.int64))
        row_kernels.dequantize_rows(row_kernels.TAGS[GGMLType(int(ggml_type))], wf, wf.size, rows, n_blocks, out)
    return out


# ---- the forward pass's projections: activations rounded once per kind, kernels called
# directly (a generated token makes ~200 of these calls; the checked wrappers above cost
# several microseconds each in Python) ----

def activation_kind(ggml_type) -> str:
    """How x is rounded for a weight type's dot products: "q8_1" (llama.cpp's exact
    arithmetic), "q8_k" or "q8_0" (8-bit integer dot products), else "float"."""
    if ggml_type in HAS_Q8_1_KERNEL:
        return "q8_1"
    if ggml_type in HAS_Q8_K_KERNEL:
        return "q8_k"
    if ggml_type in HAS_Q8_0_KERNEL:
        return "q8_0"
    return "float"


def rounded_activations(kind: str, x: np.ndarray) -> tuple:
    """x (n_tokens, n_in) float32, C-contiguous, rounded for `kind` as the 8-bit kernels
    take it: flat read-only parts (values as bytes, scales, sums)."""
    if kind == "q8_1":
        q, d, s = quantize_q8_1(x, values=np.int8)
        return _bytes(q), _readonly(d.reshape(-1)), _readonly(s.reshape(-1))
    if kind == "q8_k":
        q, d, bs = quantize_q8_k(x)
        return _bytes(q), _readonly(d.reshape(-1)), _readonly(bs.reshape(-1))
    q, d = quantize_q8_0(x)
    return _bytes(q), _readonly(d.reshape(-1))


def matmul_rounded(w: QuantMatrix, parts: tuple, n_tok: int) -> np.ndarray:
    """W·x (n_tok, n_out) for x given as rounded_activations(activation_kind(w.ggml_type), x):
    the 8-bit kernel of w's type, without argument checks (matmul_q8_1 / matmul_q8_k /
    matmul_q8_0 check, then call this)."""
    out = np.empty((n_tok, w.n_out), dtype=np.float32)
    if n_tok:
        calls = w.__dict__.setdefault("_kernel_calls", {})  # the matrix is frozen, its cache not
        order = summation_order.current()
        call = calls.get(order)
        if call is None:  # bound once per matrix and order: a token makes ~200 of these calls
            call = calls[order] = _kernel_call(w, order)
        call(parts, n_tok, out.reshape(-1))
    return out


def _kernel_call(w: QuantMatrix, order: str):
    flat, n_out, n_in = w.flat, w.n_out, w.n_in
    if w.turned:  # each block of 16 rows one stream, nothing to turn per product
        if _turner(w.ggml_type) is block32_products:
            return block32_products.bound_turned_kernel(w.ggml_type, flat, n_out, n_in, order)
        call = compiled_call(kquant_products.matmul_q8_k_turned, kquant_products.TAGS[int(w.ggml_type)],
                             flat.view(np.uint16), flat.view(np.int32), n_out, n_in)
        return lambda p, n_tok, out: call(p[0], p[1], p[2], n_tok, out)
    if activation_kind(w.ggml_type) == "q8_k":
        kernel, tag = kquant_products.kernel_for(w.ggml_type), kquant_products.TAGS[int(w.ggml_type)]
        call = compiled_call(kernel, tag, flat, n_out, n_in)
        return lambda p, n_tok, out: call(p[0], p[1], p[2], n_tok, out)
    return block32_products.bound_kernel(w.ggml_type, flat, n_out, n_in, order)
