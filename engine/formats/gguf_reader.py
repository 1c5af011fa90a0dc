"""GGUF reader (v1, v2, v3; little-endian): metadata, tensor infos, zero-copy tensor data.

Layout: ggml's GGUF specification (docs/gguf.md in the ggml repository). Every count and length in the file is
checked against the bytes that are left before it is used.
Arrays of strings (vocabularies, merges) stay in the file as `StringArray`s until read, so
a file of millions of short strings costs no more than its own size to open.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ggml_types import TYPE_TRAITS, GGMLType, ggml_type_name
from .byte_cursor import ByteCursor
from .string_array import StringArray

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_NAME_BYTES = 64  # GGML_MAX_NAME: llama.cpp refuses longer tensor names
MAX_DIMS = 4
MAX_ARRAY_DEPTH = 8
# Arrays of arrays appear in no llama.cpp model, yet each inner array (or string in one) is
# a Python object costing ~100 bytes for the 12 bytes it takes in the file: bound them in
# total, per file, as well as in depth.
MAX_NESTED_ARRAY_ITEMS = 65_536
# Each metadata pair and tensor info becomes several Python objects (~300 bytes and a few
# microseconds) for as little as 13 or 33 bytes of file. Real models have tens of keys and
# a few thousand tensors at most (unmerged experts included): refuse absurd counts up front.
MAX_METADATA_KEYS = 65_536
MAX_TENSORS = 65_536
_INT64_MAX = (1 << 63) - 1

# GGUF value types -> numpy dtype for the fixed-size ones.
_NUMERIC = {
    0: np.dtype("u1"),
    1: np.dtype("i1"),
    2: np.dtype("<u2"),
    3: np.dtype("<i2"),
    4: np.dtype("<u4"),
    5: np.dtype("<i4"),
    6: np.dtype("<f4"),
    7: np.dtype("u1"),  # bool, one byte
    10: np.dtype("<u8"),
    11: np.dtype("<i8"),
    12: np.dtype("<f8"),
}
_STRING, _ARRAY, _BOOL = 8, 9, 7
_VALUE_TYPE_NAMES = {
    0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool",
    8: "string", 9: "array", 10: "u64", 11: "i64", 12: "f64",
}


class GGUFParser:
    """Parses the header of a mapped GGUF file; `parse()` returns the pieces of a ModelFile."""

    def __init__(self, buf, path: str, *, lazy_strings: bool = False) -> None:
        """`lazy_strings`: arrays of strings come as `StringArray`s that read the buffer when
        used (it must stay open); otherwise as lists of str."""
        self.cur = ByteCursor(buf, path)
        self.lazy_strings = lazy_strings
        self.path = path
        self.version = 0
        self.nested_items_left = MAX_NESTED_ARRAY_ITEMS

    # ---- primitives ----------------------------------------------------------------------
    def _length(self, what: str) -> int:
        # v1 stored every count and length as u32; v2 and v3 as u64.
        return self.cur.u32(what) if self.version == 1 else self.cur.u64(what)

    def _string(self, what: str, *, strict: bool) -> str:
        n = self._length(f"length of {what}")
        data = self.cur.raw(n, what)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            if strict:
                raise self.cur.fail(f"{what} at byte {self.cur.pos - n} is not valid UTF-8") from None
            # Values keep their bytes (a vocabulary may hold a broken piece); keys never do.
            return data.decode("utf-8", "surrogateescape")

    def _string_array(self, count: int, key: str) -> StringArray | list[str]:
        strings = StringArray.scan(
            self.cur, count, 4 if self.version == 1 else 8, lambda i: f"element {i} of {key}"
        )
        return strings if self.lazy_strings else strings.tolist()

    def _value(self, vtype: int, key: str, depth: int = 0) -> Any:
        cur = self.cur
        if vtype == _STRING:
            return self._string(f"value of {key}", strict=False)
        if vtype == _ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise cur.fail(f"metadata {key}: arrays nested deeper than {MAX_ARRAY_DEPTH}")
            etype = cur.u32(f"element type of {key}")
            count = self._length(f"element count of {key}")
            if etype in _NUMERIC:
                dtype = _NUMERIC[etype]
                cur.require_count(count, dtype.itemsize, f"metadata {key} element")
                if etype == _BOOL:
                    # Compared in place, not copied first: one array the size of the
                    # file's bytes, not two.
                    cur.need(count, f"array {key}")
                    arr = np.frombuffer(cur.buf, dtype=dtype, count=count, offset=cur.pos) != 0
                    cur.pos += count
                    return arr
                return cur.array(dtype, count, f"array {key}")
            if etype == _STRING:
                cur.require_count(count, 4 if self.version == 1 else 8, f"metadata {key} string")
                if depth > 0:
                    self._spend_nested(count, key)
                return self._string_array(count, key)
            if etype == _ARRAY:
                cur.require_count(count, 8 if self.version == 1 else 12, f"metadata {key} array")
                self._spend_nested(count, key)
                return [self._value(_ARRAY, key, depth + 1) for _ in range(count)]
            raise cur.fail(f"metadata {key}: unknown array element type {etype}")
        dtype = _NUMERIC.get(vtype)
        if dtype is None:
            raise cur.fail(f"metadata {key}: unknown value type {vtype}")
        value = cur.array(dtype, 1, f"value of {key}")[0].item()
        return bool(value) if vtype == _BOOL else value

    def _spend_nested(self, count: int, key: str) -> None:
        if count > self.nested_items_left:
            raise self.cur.fail(
                f"metadata {key}: arrays of arrays hold more than {MAX_NESTED_ARRAY_ITEMS} "
                "items in all (no model has any)"
            )
        self.nested_items_left -= count

    # ---- sections --------------------------------------------------------------------------
    def parse(self):
        cur = self.cur
        if cur.size == 0:
            raise cur.fail("the file is empty")
        magic = cur.raw(4, "magic") if cur.size >= 4 else b""
        if magic != GGUF_MAGIC:
            raise cur.fail("not a GGUF file (wrong magic)")
        version = cur.u32("version")
        if version not in (1, 2, 3):
            if version & 0xFFFF == 0 and (version >> 24) in (1, 2, 3):
                raise cur.fail("big-endian GGUF files are not supported")
            raise cur.fail(f"unsupported GGUF version {version} (known: 1, 2, 3)")
        self.version = version
        n_tensors = self._length("tensor count")
        n_kv = self._length("metadata count")
        # A KV pair is at least a key length, a value type and a one-byte value.
        cur.require_count(n_kv, (4 if version == 1 else 8) + 4 + 1, "metadata")
        if n_kv > MAX_METADATA_KEYS:
            raise cur.fail(f"corrupt: metadata count {n_kv} is more than the {MAX_METADATA_KEYS} allowed")

        metadata: dict[str, Any] = {}
        value_types: dict[str, int] = {}
        for _ in range(n_kv):
            key = self._string("metadata key", strict=True)
            vtype = cur.u32(f"value type of {key}")
            if key in metadata:
                raise cur.fail(f"duplicate metadata key {key}")
            metadata[key] = self._value(vtype, key)
            value_types[key] = vtype

        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if (
            value_types.get("general.alignment", 4) != 4
            or not isinstance(alignment, int)
            or alignment <= 0
            or alignment & (alignment - 1)
        ):
            raise cur.fail(f"general.alignment must be a u32 power of two, found {alignment!r}")

        # A tensor info is at least a name length, n_dims, one dim, a type and an offset.
        cur.require_count(n_tensors, (4 if version == 1 else 8) + 4 + 4 + 4 + 8, "tensor")
        if n_tensors > MAX_TENSORS:
            raise cur.fail(f"corrupt: tensor count {n_tensors} is more than the {MAX_TENSORS} any model has")
        infos = [self._tensor_info(i) for i in range(n_tensors)]
        cur.skip_to_alignment(alignment)
        data_start = cur.pos
        return version, metadata, value_types, infos, data_start, alignment

    def _tensor_info(self, index: int):
        cur = self.cur
        name = self._string(f"name of tensor {index}", strict=True)
        if len(name.encode()) > MAX_NAME_BYTES:
            raise cur.fail(f"tensor name {name[:40]!r}... is longer than {MAX_NAME_BYTES} bytes")
        n_dims = cur.u32(f"dimension count of tensor {name}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise cur.fail(f"tensor {name} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        read_dim = cur.u32 if self.version == 1 else cur.u64
        shape = tuple(read_dim(f"dimensions of tensor {name}") for _ in range(n_dims))
        type_id = cur.u32(f"type of tensor {name}")
        offset = cur.u64(f"data offset of tensor {name}")
        try:
            gtype = GGMLType(type_id)
        except ValueError:
            raise cur.fail(f"tensor {name} has unknown ggml type id {type_id}") from None
        n_elements = 1
        for d in shape:
            if d > _INT64_MAX:
                raise cur.fail(f"tensor {name} has an absurd dimension {d}")
            n_elements *= d
        if n_elements > _INT64_MAX:
            raise cur.fail(f"tensor {name} has an absurd element count {n_elements}")
        traits = TYPE_TRAITS[gtype]
        if shape[0] % traits.block_size:
            raise cur.fail(
                f"tensor {name}: row length {shape[0]} is not a multiple of the "
                f"{ggml_type_name(type_id)} block size {traits.block_size}"
            )
        nbytes = n_elements // traits.block_size * traits.type_size
        return name, gtype, shape, offset, nbytes
