"""The weight matrices read into the process's own memory, behind the first answer.

Why: generating a token streams every weight once, and the kernels stream an anonymous copy
of the matrices faster than the mapped file. 7B Q4_K_M on a 2-core Xeon (AVX-512): reading
the 32 w_gate matrices 10.9 -> 15.4 GB/s (15.8 with huge pages), a generated token 2.74 ->
3.79 tokens/s on two threads and 1.38 -> 1.95 on one. (The file's pages sit in the page
cache wherever they were read into; a fresh anonymous range is laid out for this process.)

How: `load_model` returns with every matrix mapped, as before (a 13B opens in ~0.6 s). A
thread then reads the matrices, layer by layer, with pread into one anonymous buffer (huge
pages asked for) and points each QuantMatrix at its copy (`QuantMatrix.move_to`); the
forward pass waits for a layer's copy before using the layer (`LlamaWeights.wait_resident`),
so the mapped pages of the matrices are never touched and the peak resident memory stays
the file plus the cache, not twice the file. A layer is copied in tens of milliseconds,
less than a prompt spends in it, so only the first token of the first answer may wait.
The Q4_K, Q4_0, Q4_1 and Q8_0 matrices are turned as they are copied, each block of sixteen
rows laid out as its kernel reads it (llama.cpp's "repacked" weights, made here in place of
the copy rather than beside it): a token reads each group of rows as one stream and turns
nothing (7B Q4_K mat-vecs 8.2 -> 11.5 GB/s at one thread, 16.8 -> 22 at two; SmolLM2's Q4_1
layers, 2 threads, Zen 4: one token 5.2 -> 3.7 ms, a verification step of four 7.3 -> 5.0
ms; its Q8_0 output matrix, in cache: one token 0.66 -> 0.48 ms, four 1.05 -> 0.57). Results
do not depend on the copy: the turned kernel forms the same integers and float operations,
bit for bit.

When not: `--mmap` keeps the weights mapped (instant, the page cache shared between
processes); a file that does not fit in the memory available beside the KV cache stays
mapped (the system pages it in and out as llama.cpp's default mmap does); a model made
from a buffer has nothing to copy; a read error ends the copy and leaves the rest mapped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from .memory import anonymous_buffer, available_bytes
from .quants import can_turn, turn_in_place

CHUNK_BYTES = 32 << 20  # per pread: a stop request is honoured within one
HEADROOM_BYTES = 512 << 20  # left to the rest of the process and the system beside the copy


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def start_copy(fd: int, mapped, groups: Sequence[Sequence], other_bytes: int) -> "ResidentCopy | None":
    """The copy of `groups` (lists of QuantMatrix mapped from the file `fd` maps as `mapped`)
    under way, or None where it would not fit beside `other_bytes` (the KV cache) or its
    buffer cannot be had: the weights then stay mapped."""
    plan, nbytes = _plan(mapped, groups)
    if not fits_in_memory(nbytes, other_bytes):
        return None
    try:
        return ResidentCopy(fd, plan, nbytes)
    except OSError:  # no memory for the buffer after all
        return None


def _plan(mapped, groups: Sequence[Sequence]) -> tuple[list[list[tuple[object, int, int]]], int]:
    """Per group, (matrix, file offset, buffer offset) of each matrix read from the map; and
    the buffer's size."""
    base = _address(np.frombuffer(mapped, dtype=np.uint8))
    size = len(mapped)
    plan = []
    at = 0
    for group in groups:
        items = []
        for q in group:
            offset = _address(q.data) - base
            if not 0 <= offset <= size - q.data.nbytes:
                continue  # not from this file (an adapter's, an in-memory copy): nothing to do
            items.append((q, offset, at))
            at += -(-q.data.nbytes // 64) * 64  # each matrix 64-byte aligned, as the kernels' loads like
        plan.append(items)
    return plan, at


class ResidentCopy:
    """Reads the matrices of `plan` (_plan) into one anonymous buffer of `nbytes` in a
    background thread; `wait(i)` returns once group i is copied (or the copy has stopped)."""

    def __init__(self, fd: int, plan: list[list[tuple[object, int, int]]], nbytes: int) -> None:
        self._plan = plan
        self._buffer = anonymous_buffer(nbytes)
        self._fd = os.dup(fd)  # the copy's own handle: the model file may be closed first
        self._ready = [threading.Event() for _ in self._plan]
        self._stop = threading.Event()
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="weights into memory", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        view = memoryview(self._buffer)
        try:
            for i, items in enumerate(self._plan):
                for q, offset, at in items:
                    n = q.data.nbytes
                    done = 0
                    while done < n:
                        if self._stop.is_set():
                            return
                        part = min(CHUNK_BYTES, n - done)
                        got = os.preadv(self._fd, [view[at + done : at + done + part]], offset + done)
                        if got <= 0:
                            raise OSError(f"the model file ended at byte {offset + done} while reading it into memory")
                        done += got
                    copy = np.frombuffer(self._buffer, dtype=q.data.dtype, count=q.data.size, offset=at)
                    turned = can_turn(q.ggml_type, q.n_out)
                    if turned:  # each block of 16 rows made one stream, once
                        turn_in_place(q.ggml_type, copy, q.n_out, q.n_in)
                    copy.flags.writeable = False  # weights, as read-only as the mapped file's
                    q.move_to(copy.reshape(q.data.shape), turned=turned)
                self._ready[i].set()
        except OSError as e:  # the matrices not copied stay mapped: slower, still right
            self.error = e
        finally:
            for event in self._ready:  # nobody waits for a copy that will not come
                event.set()
            os.close(self._fd)

    def wait(self, group: int) -> None:
        if 0 <= group < len(self._ready):
            self._ready[group].wait()

    def wait_all(self) -> None:
        self._thread.join()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop copying (a closed model) and wait for the thread, within one chunk's read."""
        self._stop.set()
        self._thread.join()


def fits_in_memory(nbytes: int, other_bytes: int) -> bool:
    """Whether a copy of `nbytes` fits beside `other_bytes` (the KV cache) in what the system
    has available (unknown: assume it does, as loading a mapped file would)."""
    available = available_bytes()
    return available is None or nbytes + other_bytes + HEADROOM_BYTES <= available
