"""Mutation fuzzing of the readers: seeded byte flips, truncations, insertions, deletions and
extreme integers over the fixture files. Every case must end in success or ModelFileError —
never another exception, a hang or a huge allocation."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from conftest import fixtures_or_skip

from engine import ModelFileError
from engine.formats import read_model_buffer

CASES_PER_FILE = 1100
EXTREMES = [0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**32, 2**40, 2**62, 2**63, 2**64 - 1]


def header_end(data: bytes) -> int:
    """Roughly where metadata ends: mutations are aimed there, where the parsing happens."""
    mf = read_model_buffer(data, "orig")
    return min(t.offset for t in mf.tensors.values())


def mutate(data: bytes, hot: int, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)

    def pos(width: int = 1) -> int:
        limit = hot if rng.random() < 0.85 else len(buf)
        return int(rng.integers(0, max(limit - width, 1)))

    kind = int(rng.integers(0, 6))
    if kind == 0:  # flip bytes
        for _ in range(int(rng.integers(1, 5))):
            buf[pos()] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # random bytes
        for _ in range(int(rng.integers(1, 4))):
            buf[pos()] = int(rng.integers(0, 256))
    elif kind == 2:  # truncate
        del buf[pos():]
    elif kind == 3:  # insert
        at = pos()
        buf[at:at] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
    elif kind == 4:  # delete a range
        at = pos()
        del buf[at : at + int(rng.integers(1, 9))]
    else:  # an extreme integer over a count or length field
        at = pos(8)
        value = EXTREMES[int(rng.integers(0, len(EXTREMES)))]
        if rng.random() < 0.5:
            buf[at : at + 4] = struct.pack("<I", value & 0xFFFFFFFF)
        else:
            buf[at : at + 8] = struct.pack("<Q", value & (2**64 - 1))
    return bytes(buf)


@pytest.mark.parametrize(
    "parts",
    [("tiny-llama", "tiny-llama-Q4_K_M.gguf"), ("ggml-v3", "ggml-llama-Q4_0.ggmlv3.bin")],
    ids=["gguf", "ggml-v3"],
)
def test_mutated_files_give_success_or_our_error(parts):
    data = fixtures_or_skip(*parts).read_bytes()
    hot = header_end(data)
    rng = np.random.default_rng(20261127)
    outcomes = {"ok": 0, "error": 0}
    for case in range(CASES_PER_FILE):
        mutated = mutate(data, hot, rng)
        try:
            mf = read_model_buffer(mutated, "fuzz")
        except ModelFileError as e:
            assert "\n" not in str(e), f"case {case}: multi-line error"
            outcomes["error"] += 1
            continue
        except Exception as e:  # pragma: no cover - this is the failure being looked for
            pytest.fail(f"case {case}: {type(e).__name__}: {e}")
        # A file that opens must hand out every tensor's bytes without reaching outside it.
        for name, t in mf.tensors.items():
            assert t.offset + t.nbytes <= len(mutated)
            assert mf.tensor_bytes_view(name).size == t.nbytes
        outcomes["ok"] += 1
    # Both outcomes must occur, or the mutations are not exercising the reader.
    assert outcomes["ok"] > 50 and outcomes["error"] > 200, outcomes
