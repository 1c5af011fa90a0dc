"""Arrays of strings left in the mapped file until someone reads them.

A vocabulary of short strings costs 8 to 12 bytes a string in the file but ~60 as Python
objects: read eagerly, a hostile file of millions of 2-byte strings would cost 7-8x its
size before any sanity check could refuse it. A `StringArray` walks the array once to
find where it ends (checking every length against the file) and keeps only the position
of every 32nd string; the strings are built when a consumer reads them (the tokenizer,
which needs them all, reads them in one pass and the list is kept).
"""

from __future__ import annotations

import mmap
import struct
from array import array
from typing import Callable, Iterator, Sequence, overload

import numpy as np

from .byte_cursor import ByteCursor

# Positions kept: one per MARK_EVERY strings, so random access walks at most 31 strings.
MARK_EVERY = 32
_LENGTHS = {4: struct.Struct("<I"), 8: struct.Struct("<Q")}


def _utf8(_index: int, raw: bytes) -> str:
    # Values keep their bytes (a vocabulary may hold a broken piece).
    return str(raw, "utf-8", "surrogateescape")


def read_uints(u8: np.ndarray, positions: np.ndarray, width: int) -> np.ndarray:
    """The little-endian unsigned numbers of `width` bytes at `positions` of the byte array
    `u8`, as int64 (they are lengths and positions inside the file: below 2^63)."""
    out = np.zeros(len(positions), dtype=np.int64)
    for j in range(width):
        out |= u8[positions + j].astype(np.int64) << (8 * j)
    return out


class StringArray(Sequence[str]):
    """`count` strings stored one after another from byte `start` of `buf`, each as a
    little-endian length (`width` bytes), its bytes and `trailer` more bytes (the f32
    score of a GGML vocabulary entry).

    `decode(index, raw)` turns a string's bytes into its text (GGML vocabularies are
    rewritten the way GGUF stores them). Behaves as a read-only sequence of str and
    compares equal to a list or tuple of the same strings.
    """

    __slots__ = ("_buf", "start", "end", "_count", "_width", "_trailer", "_decode", "_marks", "_items")

    def __init__(self, buf, start: int, end: int, count: int, width: int, trailer: int,
                 marks: array, decode: Callable[[int, bytes], str] = _utf8) -> None:
        self._buf = buf
        self.start = start  # byte of the first string's length
        self.end = end  # byte after the last string (and its trailer)
        self._count = count
        self._width = width
        self._trailer = trailer
        self._marks = marks
        self._decode = decode
        self._items: list[str] | None = None

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def scan(cls, cur: ByteCursor, count: int, width: int, what: Callable[[int], str], *, trailer: int = 0,
             decode: Callable[[int, bytes], str] = _utf8) -> "StringArray":
        """Walk `count` strings from the cursor (which is left after them), checking that
        each lies inside the file; raises the cursor's one-line error if one does not.
        `what(i)` names string i in that error ("token 7", "element 7 of key")."""
        # A view, not the map itself: unpacking from it is faster, and it keeps the map
        # alive after ModelFile.close(), as the tensor views do, so a vocabulary can still
        # be read from a closed model file.
        buf, size, start = memoryview(cur.buf), cur.size, cur.pos
        unpack = _LENGTHS[width].unpack_from
        step = width + trailer
        marks = array("q")
        mark = marks.append
        pos = start
        try:
            # One tight loop, no Python object kept per string: 10^5 strings in milliseconds.
            for first in range(0, count, MARK_EVERY):
                mark(pos)
                for _ in range(min(MARK_EVERY, count - first)):
                    pos += unpack(buf, pos)[0] + step
        except (struct.error, OverflowError):
            pos = size + 1  # a length ran past the end: found again below
        if pos > size:
            cls._fail(cur, marks, count, width, trailer, what)
        cur.pos = pos
        return cls(buf, start, pos, count, width, trailer, marks, decode)

    @staticmethod
    def _fail(cur: ByteCursor, marks: array, count: int, width: int, trailer: int, what: Callable[[int], str]) -> None:
        # Walk again, carefully, from the last position known to be good.
        unpack = _LENGTHS[width].unpack_from
        index = (len(marks) - 1) * MARK_EVERY
        pos = marks[-1]
        for i in range(index, count):
            cur.pos = pos
            cur.need(width, "length of " + what(i))
            n = unpack(cur.buf, pos)[0]
            cur.pos = pos + width
            cur.need(n + trailer, what(i))
            pos += width + n + trailer
        raise AssertionError("StringArray.scan: a string ran past the end, but none does")

    # ---- reading ---------------------------------------------------------------------------
    def raw(self, index: int) -> bytes:
        """The stored bytes of string `index` (before `decode`)."""
        i = range(self._count)[index]  # IndexError and negative indexes as a list has them
        unpack = _LENGTHS[self._width].unpack_from
        buf, width, step = self._buf, self._width, self._width + self._trailer
        pos = self._marks[i // MARK_EVERY]
        for _ in range(i % MARK_EVERY):
            pos += unpack(buf, pos)[0] + step
        n = unpack(buf, pos)[0]
        return bytes(buf[pos + width : pos + width + n])

    def walk(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Where the strings lie, in numpy: one step per position after a mark, each giving
        (indices, byte where each string's text starts, its length) for one string of every
        MARK_EVERY. Reads the whole array in MARK_EVERY vectorised steps, with no Python
        object per string and memory of a few bytes per MARK_EVERY strings."""
        if not self._count:
            return
        u8 = np.frombuffer(self._buf, dtype=np.uint8)
        width, step_bytes = self._width, self._width + self._trailer
        pos = np.frombuffer(self._marks, dtype=np.int64).copy()
        first = np.arange(len(pos), dtype=np.int64) * MARK_EVERY
        last_chunk = self._count - int(first[-1])  # strings in the last chunk (1..MARK_EVERY)
        for step in range(MARK_EVERY):
            live = len(pos) if step < last_chunk else len(pos) - 1
            if live == 0:
                break
            p = pos[:live]
            length = read_uints(u8, p, width)
            yield first[:live] + step, p + width, length
            pos[:live] = p + length + step_bytes

    def gguf_bytes(self) -> bytes | None:
        """The strings as a GGUF v2/v3 array stores them (u64 length, UTF-8 bytes), when
        that is how they are stored here; None otherwise (GGUF v1, GGML)."""
        if self._width != 8 or self._trailer or self._decode is not _utf8:
            return None
        return bytes(self._buf[self.start : self.end])

    def tolist(self) -> list[str]:
        """Every string (built once, then kept)."""
        if self._items is None:
            # One tight loop: the tokenizer reads 10^5 strings here.
            unpack = _LENGTHS[self._width].unpack_from
            buf, width, trailer, decode = self._buf, self._width, self._trailer, self._decode
            # Slices of the mapped file itself are bytes, which decode faster than views.
            text = buf.obj if isinstance(buf.obj, (mmap.mmap, bytes)) else buf
            items: list[str] = []
            append = items.append
            pos = self.start
            if decode is _utf8:
                for _ in range(self._count):
                    n = unpack(buf, pos)[0]
                    pos += width
                    append(str(text[pos : pos + n], "utf-8", "surrogateescape"))
                    pos += n + trailer
            else:
                for i in range(self._count):
                    n = unpack(buf, pos)[0]
                    pos += width
                    append(decode(i, text[pos : pos + n]))
                    pos += n + trailer
            self._items = items
        return self._items

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index):
        if self._items is not None:
            return self._items[index]
        if isinstance(index, slice):
            return [self[i] for i in range(self._count)[index]]
        i = range(self._count)[index]
        return self._decode(i, self.raw(i))

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())

    def __reversed__(self) -> Iterator[str]:
        return reversed(self.tolist())

    # Searching reads every string anyway: once, through the list, not one walk each.
    def __contains__(self, value) -> bool:
        return value in self.tolist()

    def index(self, value, start: int = 0, stop: int | None = None) -> int:
        items = self.tolist()
        return items.index(value, start, len(items) if stop is None else stop)

    def count(self, value) -> int:
        return self.tolist().count(value)

    def __eq__(self, other) -> bool:
        if isinstance(other, (StringArray, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a sequence compared by value, like a list

    def __repr__(self) -> str:
        head = ", ".join(repr(self[i]) for i in range(min(self._count, 3)))
        more = ", ..." if self._count > 3 else ""
        return f"<StringArray of {self._count} strings: [{head}{more}]>"
