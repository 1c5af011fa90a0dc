"""A checkpoint tensor that is read only when asked: its dtype, numpy shape and bytes in a
mapped file (safetensors, or a stored entry of a PyTorch zip)."""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np

from ..errors import ModelFileError
from ..quantize.files import InputMap

# Checkpoint dtype names -> numpy dtypes (bf16 as its uint16 bits).
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})


class MappedFile(InputMap):
    """A checkpoint file mapped read-only; pages of a tensor are handed back once used
    (InputMap.release), so that converting a file larger than memory keeps a small resident set."""

    def __init__(self, path) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:
            raise ModelFileError(path, f"cannot map the file: {getattr(e, 'strerror', None) or e}") from None
        self.size = len(self.mm)


@dataclass
class LazyTensor:
    """One checkpoint tensor. `shape` and `strides` (in elements) are numpy's."""

    name: str
    dtype: str  # a key of DTYPES
    shape: tuple[int, ...]
    file: MappedFile
    offset: int  # absolute byte offset of element 0
    strides: tuple[int, ...] | None = None  # None: C-contiguous

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.n_elements * DTYPES[self.dtype].itemsize

    @property
    def contiguous(self) -> bool:
        if self.strides is None:
            return True
        expected, step = [], 1
        for d in reversed(self.shape):
            expected.append(step)
            step *= d
        return all(s == e for s, e, d in zip(self.strides, reversed(expected), self.shape) if d > 1)

    def _span(self) -> int:
        """Bytes from element 0 to one past the last element the strides reach."""
        if self.n_elements == 0:
            return 0
        if self.contiguous:
            return self.nbytes
        last = sum((d - 1) * s for d, s in zip(self.shape, self.strides))
        return (last + 1) * DTYPES[self.dtype].itemsize

    def check_bounds(self) -> None:
        span = self._span()
        if self.offset < 0 or self.offset + span > self.file.size:
            raise ModelFileError(self.file.path, f"tensor {self.name} lies beyond the end of the file (truncated?)")

    def array(self) -> np.ndarray:
        """A read-only numpy view of the tensor in the mapped file (bf16: uint16 bits)."""
        self.check_bounds()
        dt = DTYPES[self.dtype]
        if self.contiguous:
            flat = np.frombuffer(self.file.mm, dtype=dt, count=self.n_elements, offset=self.offset)
            return flat.reshape(self.shape)
        base = np.frombuffer(self.file.mm, dtype=dt, count=self._span() // dt.itemsize, offset=self.offset)
        return np.lib.stride_tricks.as_strided(base, self.shape, tuple(s * dt.itemsize for s in self.strides), writeable=False)

    def release(self) -> None:
        self.file.release(self.offset, self._span())


def to_float32(values: np.ndarray, dtype: str) -> np.ndarray:
    """Checkpoint values widened (exactly) or narrowed (f64, nearest) to float32."""
    if dtype == "BF16":
        return (values.astype(np.uint32) << np.uint32(16)).view(np.float32)
    if dtype == "F32":
        return np.array(values, dtype=np.float32)  # a copy: the map is read-only
    return values.astype(np.float32)


class GeneratedTensor:
    """A tensor the converter computes (llama.cpp's generated ones, e.g. rope_freqs)."""

    def __init__(self, name: str, values: np.ndarray) -> None:
        self.name, self.values = name, np.ascontiguousarray(values, dtype=np.float32)
        self.dtype, self.shape = "F32", self.values.shape
        self.n_elements, self.nbytes = self.values.size, self.values.nbytes

    def array(self) -> np.ndarray:
        return self.values

    def release(self) -> None:
        pass


class StackedTensor:
    """Tensors of one shape stacked along a new first axis (MoE experts), read part by part."""

    def __init__(self, name: str, parts: list) -> None:
        self.name, self.part_list = name, parts
        self.dtype = parts[0].dtype
        self.shape = (len(parts),) + tuple(parts[0].shape)
        self.n_elements = sum(p.n_elements for p in parts)
        self.nbytes = sum(p.nbytes for p in parts)

    def parts(self) -> list:
        return self.part_list
