"""GGUF v3 writer: metadata, tensor infos, tensor data streamed in chunks; atomic on disk.

    w = GGUFWriter("model.gguf")
    w.add_metadata("general.architecture", "llama")
    w.add_metadata("llama.block_count", 32)                     # int >= 0 -> u32
    w.add_metadata("tokenizer.ggml.token_type", types, element_type="i32")
    w.add_tensor_info("token_embd.weight", GGMLType.Q4_K, (4096, 32000))   # ggml order: ne0 first
    ...
    w.write([emb_chunks, ...])   # one source per tensor, in the order of add_tensor_info

A tensor's data is bytes, a numpy array (its raw bytes, C order), an iterable of such
chunks (a generator: the whole tensor never needs to be in memory), or a zero-argument
callable returning any of these (called when that tensor's turn comes). Sources can also
be given to `add_tensor_info(..., data=...)` and `write()` called with no argument.

The file is written to a hidden temporary file in the target folder, flushed, fsynced and
then renamed onto the output name with `os.replace`: a run that fails or is interrupted
leaves no file under the output name (and removes its temporary file, unless the process
is killed outright).

Layout: ggml's GGUF specification (docs/gguf.md in the ggml repository). Value types are exact: llama.cpp checks
them (a u32 hyperparameter written as i32 is refused), so give `type=` where inference
(below) would pick the wrong one.
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..atomic_file import default_mode, fsync_folder
from ..errors import CodeupError
from ..ggml_types import TYPE_TRAITS, GGMLType
from .string_array import StringArray

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32
MAX_NAME_BYTES = 63  # llama.cpp's gguf.cpp refuses names of GGML_MAX_NAME (64) bytes or more
MAX_DIMS = 4


class GGUFValueType(IntEnum):
    U8 = 0
    I8 = 1
    U16 = 2
    I16 = 3
    U32 = 4
    I32 = 5
    F32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    U64 = 10
    I64 = 11
    F64 = 12


# Little-endian numpy dtype of each fixed-size value type.
_DTYPES: dict[GGUFValueType, np.dtype] = {
    GGUFValueType.U8: np.dtype("u1"),
    GGUFValueType.I8: np.dtype("i1"),
    GGUFValueType.U16: np.dtype("<u2"),
    GGUFValueType.I16: np.dtype("<i2"),
    GGUFValueType.U32: np.dtype("<u4"),
    GGUFValueType.I32: np.dtype("<i4"),
    GGUFValueType.F32: np.dtype("<f4"),
    GGUFValueType.BOOL: np.dtype("u1"),
    GGUFValueType.U64: np.dtype("<u8"),
    GGUFValueType.I64: np.dtype("<i8"),
    GGUFValueType.F64: np.dtype("<f8"),
}
_KIND_TO_TYPE = {  # numpy dtype (kind, itemsize) -> value type
    ("u", 1): GGUFValueType.U8, ("i", 1): GGUFValueType.I8,
    ("u", 2): GGUFValueType.U16, ("i", 2): GGUFValueType.I16,
    ("u", 4): GGUFValueType.U32, ("i", 4): GGUFValueType.I32,
    ("u", 8): GGUFValueType.U64, ("i", 8): GGUFValueType.I64,
    ("f", 4): GGUFValueType.F32, ("f", 8): GGUFValueType.F64,
    ("b", 1): GGUFValueType.BOOL,
}
_TYPE_NAMES = {
    "u8": GGUFValueType.U8, "i8": GGUFValueType.I8, "u16": GGUFValueType.U16,
    "i16": GGUFValueType.I16, "u32": GGUFValueType.U32, "i32": GGUFValueType.I32,
    "f32": GGUFValueType.F32, "bool": GGUFValueType.BOOL, "string": GGUFValueType.STRING,
    "str": GGUFValueType.STRING, "array": GGUFValueType.ARRAY, "u64": GGUFValueType.U64,
    "i64": GGUFValueType.I64, "f64": GGUFValueType.F64,
}
_INT_RANGES = {
    GGUFValueType.U8: (0, 1 << 8), GGUFValueType.I8: (-(1 << 7), 1 << 7),
    GGUFValueType.U16: (0, 1 << 16), GGUFValueType.I16: (-(1 << 15), 1 << 15),
    GGUFValueType.U32: (0, 1 << 32), GGUFValueType.I32: (-(1 << 31), 1 << 31),
    GGUFValueType.U64: (0, 1 << 64), GGUFValueType.I64: (-(1 << 63), 1 << 63),
}
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class GGUFWriteError(CodeupError):
    """The output file could not be written (permissions, disk full, ...)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}")


def value_type(t: GGUFValueType | int | str) -> GGUFValueType:
    """A value type from its enum, id or name ("u32", "f32", "string", "array", ...)."""
    if isinstance(t, str):
        try:
            return _TYPE_NAMES[t.lower()]
        except KeyError:
            raise ValueError(f"unknown GGUF value type {t!r} (known: {', '.join(_TYPE_NAMES)})") from None
    return GGUFValueType(int(t))


def _ggml_type(t: GGMLType | int | str) -> GGMLType:
    if isinstance(t, str):
        try:
            return GGMLType[t.upper()]
        except KeyError:
            raise ValueError(f"unknown ggml type {t!r}") from None
    return GGMLType(int(t))


def infer_value_type(value: Any) -> GGUFValueType:
    """bool -> bool; int -> u32 if it fits, else i32, i64, u64; float -> f32; str/bytes ->
    string; list, tuple, 1-D numpy array -> array; numpy scalars -> their own type."""
    if isinstance(value, (bool, np.bool_)):
        return GGUFValueType.BOOL
    if isinstance(value, np.generic) and value.dtype.kind in "uif":
        return _KIND_TO_TYPE[(value.dtype.kind, value.dtype.itemsize)]
    if isinstance(value, int):
        for t in (GGUFValueType.U32, GGUFValueType.I32, GGUFValueType.I64, GGUFValueType.U64):
            lo, hi = _INT_RANGES[t]
            if lo <= value < hi:
                return t
        raise ValueError(f"integer {value} does not fit in 64 bits")
    if isinstance(value, float):
        return GGUFValueType.F32
    if isinstance(value, (str, bytes, bytearray)):
        return GGUFValueType.STRING
    if isinstance(value, (list, tuple, np.ndarray, StringArray)):
        return GGUFValueType.ARRAY
    raise TypeError(f"cannot store a {type(value).__name__} as GGUF metadata")


def _infer_element_type(values) -> GGUFValueType:
    if isinstance(values, StringArray):
        return GGUFValueType.STRING
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"metadata arrays must be one-dimensional, not of shape {values.shape}")
        if values.dtype.kind in "US":
            return GGUFValueType.STRING
        key = (values.dtype.kind, values.dtype.itemsize)
        if key not in _KIND_TO_TYPE:
            raise TypeError(f"cannot store a numpy {values.dtype} array as GGUF metadata")
        return _KIND_TO_TYPE[key]
    if len(values) == 0:
        raise ValueError("the element type of an empty array cannot be inferred: give element_type=")
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return GGUFValueType.BOOL
    if all(isinstance(v, (str, bytes, bytearray)) for v in values):
        return GGUFValueType.STRING
    if all(isinstance(v, (list, tuple, np.ndarray, StringArray)) for v in values):
        return GGUFValueType.ARRAY
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
        lo, hi = min(values), max(values)
        for t in (GGUFValueType.I32, GGUFValueType.I64, GGUFValueType.U64):
            a, b = _INT_RANGES[t]
            if a <= lo and hi < b:
                return t
        raise ValueError("array integers do not fit in 64 bits")
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in values):
        return GGUFValueType.F32
    raise TypeError("cannot infer one element type for a mixed array: give element_type=")


@dataclass(frozen=True)
class TensorSpec:
    """A tensor the writer will store. `shape` is in ggml order (shape[0] is the row)."""

    name: str
    ggml_type: GGMLType
    shape: tuple[int, ...]
    offset: int  # from the start of the data section
    nbytes: int


class GGUFWriter:
    """Writes one GGUF v3 file. Add metadata and tensor infos, then `write()` once."""

    def __init__(self, path: str | os.PathLike, *, alignment: int | None = None) -> None:
        self.path = Path(path)
        self.alignment = DEFAULT_ALIGNMENT
        self._kv: dict[str, bytes] = {}  # key -> encoded value type + value
        self._tensors: list[TensorSpec] = []
        self._sources: dict[str, Any] = {}
        self._names: set[str] = set()
        self._data_size = 0
        self._written = False
        if alignment is not None:
            self.add_metadata("general.alignment", alignment, type=GGUFValueType.U32)

    # ---- metadata ---------------------------------------------------------------------------
    def add_metadata(
        self,
        key: str,
        value: Any,
        type: GGUFValueType | int | str | None = None,  # noqa: A002 - the GGUF word
        element_type: GGUFValueType | int | str | None = None,
    ) -> "GGUFWriter":
        """Add one key. The type is inferred unless given (see `infer_value_type`); arrays
        take `element_type` (inferred from the elements otherwise). Keys are written in the
        order they are added; adding a key twice is an error."""
        self._check_open()
        if not isinstance(key, str) or not key:
            raise ValueError(f"metadata key must be a non-empty string, not {key!r}")
        if key in self._kv:
            raise ValueError(f"metadata key {key} added twice")
        vtype = value_type(type) if type is not None else infer_value_type(value)
        etype = value_type(element_type) if element_type is not None else None
        if etype is not None and vtype != GGUFValueType.ARRAY:
            raise ValueError(f"metadata {key}: element_type is only for arrays")
        if key == "general.alignment":
            if vtype != GGUFValueType.U32 or isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value <= 0 or value & (value - 1) or value >= 1 << 32:
                raise ValueError(f"general.alignment must be a u32 power of two, not {value!r}")
            if self._tensors:
                raise ValueError("set general.alignment before adding tensors")
            self.alignment = int(value)
        try:
            encoded = _U32.pack(vtype) + self._encode(vtype, value, etype)
        except (ValueError, TypeError, OverflowError) as e:
            raise (TypeError if isinstance(e, TypeError) else ValueError)(f"metadata {key}: {e}") from None
        self._kv[key] = encoded
        return self

    def _encode(self, vtype: GGUFValueType, value: Any, etype: GGUFValueType | None = None) -> bytes:
        if vtype == GGUFValueType.STRING:
            return _encode_string(value)
        if vtype == GGUFValueType.ARRAY:
            if not isinstance(value, (list, tuple, np.ndarray, StringArray)):
                raise TypeError(f"an array needs a list, tuple or numpy array, not {type(value).__name__}")
            if etype is None:
                etype = _infer_element_type(value)
            head = _U32.pack(etype) + _U64.pack(len(value))
            if etype == GGUFValueType.STRING:
                stored = value.gguf_bytes() if isinstance(value, StringArray) else None
                if stored is not None:  # read from a GGUF v2/v3 file: already in this form
                    return head + stored
                return head + b"".join(_encode_string(v) for v in value)
            if etype == GGUFValueType.ARRAY:
                # Each element is an array value of its own: element type, count, elements.
                return head + b"".join(self._encode(GGUFValueType.ARRAY, v) for v in value)
            return head + _encode_numbers(etype, value)
        if isinstance(value, (list, tuple, np.ndarray)) and not isinstance(value, np.generic):
            raise TypeError(f"a {vtype.name.lower()} value cannot be a {type(value).__name__}")
        return _encode_numbers(vtype, [value])

    # ---- tensors -----------------------------------------------------------------------------
    def add_tensor_info(
        self,
        name: str,
        ggml_type: GGMLType | int | str,
        shape: Iterable[int],
        data: Any = None,
    ) -> TensorSpec:
        """Declare a tensor (shape in ggml order, row first). `data` optionally gives its
        source now; otherwise pass it to `write()`. Returns where it will lie."""
        self._check_open()
        gtype = _ggml_type(ggml_type)
        shape = tuple(int(d) for d in shape)
        encoded = name.encode("utf-8") if isinstance(name, str) else b""
        if not encoded:
            raise ValueError(f"tensor name must be a non-empty string, not {name!r}")
        if len(encoded) > MAX_NAME_BYTES:
            raise ValueError(f"tensor name {name!r} is longer than {MAX_NAME_BYTES} bytes")
        if name in self._names:
            raise ValueError(f"tensor {name} added twice")
        if not 1 <= len(shape) <= MAX_DIMS or any(d < 1 for d in shape):
            raise ValueError(f"tensor {name}: shape {shape} must have 1 to {MAX_DIMS} positive dimensions")
        traits = TYPE_TRAITS[gtype]
        if shape[0] % traits.block_size:
            raise ValueError(
                f"tensor {name}: row length {shape[0]} is not a multiple of the {gtype.name} block size {traits.block_size}"
            )
        n = 1
        for d in shape:
            n *= d
        nbytes = n // traits.block_size * traits.type_size
        spec = TensorSpec(name, gtype, shape, self._data_size, nbytes)
        self._tensors.append(spec)
        self._names.add(name)
        self._data_size += nbytes + (-nbytes) % self.alignment
        if data is not None:
            self._sources[name] = data
        return spec

    @property
    def tensors(self) -> list[TensorSpec]:
        return list(self._tensors)

    @property
    def tensor_data_bytes(self) -> int:
        """Bytes of tensor data (without padding)."""
        return sum(t.nbytes for t in self._tensors)

    def header_bytes(self) -> bytes:
        """Everything before the data section, padding included."""
        out = bytearray(GGUF_MAGIC)
        out += _U32.pack(GGUF_VERSION) + _U64.pack(len(self._tensors)) + _U64.pack(len(self._kv))
        for key, encoded in self._kv.items():
            out += _encode_string(key) + encoded
        for t in self._tensors:
            out += _encode_string(t.name) + _U32.pack(len(t.shape))
            out += b"".join(_U64.pack(d) for d in t.shape)
            out += _U32.pack(t.ggml_type) + _U64.pack(t.offset)
        out += b"\0" * ((-len(out)) % self.alignment)
        return bytes(out)

    @property
    def file_size(self) -> int:
        """The size of the file `write()` will produce."""
        return len(self.header_bytes()) + self._data_size

    # ---- writing -------------------------------------------------------------------------------
    def write(
        self,
        tensor_data: Iterable[Any] | Mapping[str, Any] | None = None,
        *,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> Path:
        """Write the file: `tensor_data` holds one source per tensor in declaration order, or
        maps names to sources; None uses the sources given to `add_tensor_info`.
        `progress(bytes_done, bytes_total, tensor_name)` is called after every chunk.
        Returns the output path. Raises GGUFWriteError for I/O failures (one line)."""
        self._check_open()
        self._written = True
        sources = self._resolve_sources(tensor_data)
        total = self.tensor_data_bytes
        folder = self.path.parent if str(self.path.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=folder)
        except OSError as e:
            raise GGUFWriteError(self.path, f"cannot create a file in {folder}: {e.strerror or e}") from None
        try:
            os.fchmod(fd, default_mode())  # mkstemp makes 0600; a model file gets the usual mode
            with os.fdopen(fd, "wb") as f:
                f.write(self.header_bytes())
                done = 0
                for spec, source in zip(self._tensors, sources):
                    written = 0
                    for chunk in _chunks(source):
                        view = _as_bytes(chunk)
                        if written + len(view) > spec.nbytes:
                            raise ValueError(f"tensor {spec.name}: the data is longer than its {spec.nbytes} bytes")
                        f.write(view)
                        written += len(view)
                        done += len(view)
                        if progress is not None:
                            progress(done, total, spec.name)
                    if written != spec.nbytes:
                        raise ValueError(f"tensor {spec.name}: got {written} bytes of data, expected {spec.nbytes}")
                    f.write(b"\0" * ((-spec.nbytes) % self.alignment))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(e, OSError):
                raise GGUFWriteError(self.path, f"cannot write: {e.strerror or e}") from None
            raise
        fsync_folder(folder)
        return self.path

    def _resolve_sources(self, tensor_data) -> list[Any]:
        names = [t.name for t in self._tensors]
        if tensor_data is None:
            missing = [n for n in names if n not in self._sources]
            if missing:
                raise ValueError(f"no data for tensor {missing[0]} (give it to add_tensor_info or write)")
            return [self._sources[n] for n in names]
        if isinstance(tensor_data, Mapping):
            missing = [n for n in names if n not in tensor_data]
            extra = [k for k in tensor_data if k not in self._names]
            if missing or extra:
                raise ValueError(f"tensor data: {'no data for ' + missing[0] if missing else 'unknown tensor ' + str(extra[0])}")
            return [tensor_data[n] for n in names]
        return _exactly(tensor_data, len(names))

    def _check_open(self) -> None:
        if self._written:
            raise ValueError("this GGUFWriter has already written its file")


# ---- encoding helpers ------------------------------------------------------------------------
def _encode_string(value: Any) -> bytes:
    if isinstance(value, str):
        # surrogateescape: pieces our reader decoded from invalid UTF-8 get their bytes back.
        data = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, np.str_):
        data = str(value).encode("utf-8")
    else:
        raise TypeError(f"a string value cannot be a {type(value).__name__}")
    return _U64.pack(len(data)) + data


def _encode_numbers(vtype: GGUFValueType, values) -> bytes:
    dtype = _DTYPES.get(vtype)
    if dtype is None:
        raise ValueError(f"{vtype.name} is not a number type")
    if vtype == GGUFValueType.BOOL:
        if not all(isinstance(v, (bool, np.bool_)) for v in values) and not (
            isinstance(values, np.ndarray) and values.dtype.kind == "b"
        ):
            raise TypeError("bool values must be True or False")
        return np.asarray(values, dtype=bool).astype(dtype).tobytes()
    arr = np.asarray(values)
    if dtype.kind in "ui":
        if arr.dtype.kind not in "uib" or (arr.dtype.kind == "b" and arr.size):
            raise TypeError(f"{vtype.name.lower()} values must be integers")
        if arr.size:
            lo, hi = _INT_RANGES[vtype]
            # Compare as Python ints: numpy would wrap u64 against i64 bounds.
            if int(arr.min()) < lo or int(arr.max()) >= hi:
                raise ValueError(f"a value is out of range for {vtype.name.lower()}")
        return arr.astype(dtype).tobytes()
    if arr.dtype.kind not in "uif" or (arr.dtype == object):
        raise TypeError(f"{vtype.name.lower()} values must be numbers")
    return arr.astype(dtype).tobytes()


def _chunks(source) -> Iterable[Any]:
    if callable(source):
        source = source()
    if isinstance(source, (bytes, bytearray, memoryview, np.ndarray)):
        return (source,)
    return source


def _as_bytes(chunk) -> memoryview:
    if isinstance(chunk, np.ndarray):
        chunk = np.ascontiguousarray(chunk)
        return memoryview(chunk.reshape(-1).view(np.uint8))
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return memoryview(chunk).cast("B")
    raise TypeError(f"tensor data chunks must be bytes or numpy arrays, not {type(chunk).__name__}")


def _exactly(items: Iterable[Any], n: int) -> list[Any]:
    out = []
    for item in items:
        if len(out) == n:
            raise ValueError(f"more tensor data sources than the {n} tensors declared")
        out.append(item)
    if len(out) != n:
        raise ValueError(f"{len(out)} tensor data sources for {n} tensors")
    return out
