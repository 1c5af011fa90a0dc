"""A bounds-checked cursor over the bytes of a mapped model file.

Every read checks the bytes it needs against what is left before touching them, so a
truncated or lying file ends in a `ModelFileError`, never in an IndexError, a struct error
or an allocation sized by an untrusted count.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import ModelFileError

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")


class ByteCursor:
    def __init__(self, buf, path: str, pos: int = 0) -> None:
        self.buf = buf
        self.path = path
        self.size = len(buf)
        self.pos = pos

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def fail(self, problem: str) -> ModelFileError:
        return ModelFileError(self.path, problem)

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.fail(
                f"truncated or corrupt: {what} at byte {self.pos} needs {n} bytes, "
                f"but the file has {max(self.size - self.pos, 0)} left"
            )

    def require_count(self, count: int, min_item_size: int, what: str) -> None:
        """Refuse a count of items that could not possibly fit in the rest of the file."""
        if count * min_item_size > self.size - self.pos:
            raise self.fail(
                f"corrupt: {what} count {count} at byte {self.pos} cannot fit in the "
                f"{max(self.size - self.pos, 0)} bytes left"
            )

    def _unpack(self, st: struct.Struct, what: str):
        self.need(st.size, what)
        (value,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return value

    def u8(self, what: str) -> int:
        return self._unpack(_U8, what)

    def u32(self, what: str) -> int:
        return self._unpack(_U32, what)

    def i32(self, what: str) -> int:
        return self._unpack(_I32, what)

    def u64(self, what: str) -> int:
        return self._unpack(_U64, what)

    def f32(self, what: str) -> float:
        return self._unpack(_F32, what)

    def raw(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return data

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        """`count` little-endian numbers of `dtype`, copied out of the file (metadata only)."""
        nbytes = count * dtype.itemsize
        self.need(nbytes, what)
        arr = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
        self.pos += nbytes
        return arr

    def skip_to_alignment(self, alignment: int) -> None:
        self.pos += (-self.pos) % alignment
