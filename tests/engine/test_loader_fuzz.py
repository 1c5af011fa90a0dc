"""Mutation fuzzing of the readers: seeded byte flips, truncations, insertions, deletions and
extreme integers over the fixture files, 10,000 cases in all. Every case must end in success
or ModelFileError — never another exception, a hang or a huge allocation. Every case is
parsed (what `codeup info` does); every FULL_LOAD_EVERY-th case that parses is also loaded
the way `load_model` does it (weights checked and wrapped, tokenizer built, a text
encoded), or for a vocabulary-only file its tokenizer built and used."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from tests.helpers.paths import fixtures_or_skip

from codeup_tui.engine import ModelFileError
from codeup_tui.engine.formats import read_model_buffer
from codeup_tui.engine.llama import SUPPORTED_ARCHITECTURES
from codeup_tui.engine.model import Model
from codeup_tui.engine.tokenizer import build_tokenizer

# (fixture, cases): 10,000 in all, weighted to the cheap-to-parse files and to both readers.
FUZZ_PLAN = [
    (("tiny-llama", "tiny-llama-Q4_K_M.gguf"), 3000),
    (("tiny-llama", "tiny-llama-Q8_0.gguf"), 1200),
    (("archs", "tiny-qwen3moe-Q4_K_M.gguf"), 1000),
    (("vocab", "ggml-vocab-deepseek-coder.gguf"), 200),
    (("ggml-v3", "ggml-llama-Q4_0.ggmlv3.bin"), 2400),
    (("ggml-v3", "ggml-llama-Q6_K.ggmlv3.bin"), 2200),
]
FULL_LOAD_EVERY = 8
MAX_CASE_CPU_S = 2.0
HEADER_BYTES = 40  # GGUF magic, version and counts; GGML magic, version and 7 hyperparameters
EXTREMES = [0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**32, 2**40, 2**62, 2**63, 2**64 - 1]


def header_end(data: bytes) -> int:
    """Roughly where metadata ends: mutations are aimed there, where the parsing happens."""
    mf = read_model_buffer(data, "orig")
    return min((t.offset for t in mf.tensors.values()), default=len(data))


def mutate(data: bytes, hot: int, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)

    def pos(width: int = 1) -> int:
        # Mostly the metadata, sometimes the fixed header where the counts are (GGUF tensor
        # and key counts, GGML hyperparameters), sometimes anywhere.
        where = rng.random()
        limit = HEADER_BYTES if where < 0.1 else hot if where < 0.85 else len(buf)
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
    return buf  # a bytearray: the readers take any buffer, and a copy costs time


def use_fully(mf) -> None:
    """What a user does with a file that opened: load it as a model (or, for a vocabulary
    alone or an architecture the engine does not run, build its tokenizer) and encode a text."""
    if mf.tensors and mf.architecture in SUPPORTED_ARCHITECTURES:
        model = Model(mf, n_ctx=8, n_threads=1)
        tokenizer = model.tokenizer
    else:
        tokenizer = build_tokenizer(mf.tokenizer)
    ids = tokenizer.encode("def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)")
    tokenizer.decode(ids)


@pytest.mark.parametrize("parts,cases", FUZZ_PLAN, ids=[p[1] for p, _ in FUZZ_PLAN])
def test_mutated_files_give_success_or_our_error(parts, cases):
    data = fixtures_or_skip(*parts).read_bytes()
    hot = header_end(data)
    rng = np.random.default_rng(20261127)
    outcomes = {"ok": 0, "error": 0, "loaded": 0, "load_error": 0}
    for case in range(cases):
        mutated = mutate(data, hot, rng)
        started = time.process_time()
        try:
            mf = read_model_buffer(mutated, "fuzz")
        except ModelFileError as e:
            assert "\n" not in str(e), f"case {case}: multi-line error"
            # CPU time, not wall time: a loaded machine does not make this flaky. Parsing
            # any of these files takes milliseconds; a count that drives work runs for minutes.
            assert time.process_time() - started < MAX_CASE_CPU_S, f"case {case}: {e}"
            outcomes["error"] += 1
            continue
        except Exception as e:  # pragma: no cover - this is the failure being looked for
            pytest.fail(f"case {case}: {type(e).__name__}: {e}")
        # A file that opens must hand out every tensor's bytes without reaching outside it.
        for name, t in mf.tensors.items():
            assert t.offset + t.nbytes <= len(mutated)
            assert mf.tensor_bytes_view(name).size == t.nbytes
        outcomes["ok"] += 1
        if outcomes["ok"] % FULL_LOAD_EVERY == 0:
            try:
                use_fully(mf)
                outcomes["loaded"] += 1
            except ModelFileError as e:
                assert "\n" not in str(e), f"case {case}: multi-line error"
                outcomes["load_error"] += 1
            except Exception as e:  # pragma: no cover - the failure being looked for
                pytest.fail(f"case {case} (full load): {type(e).__name__}: {e}")
    # Both outcomes must occur, or the mutations are not exercising the reader.
    assert outcomes["ok"] > cases // 20 and outcomes["error"] > cases // 5, outcomes
    assert outcomes["loaded"] > 0, outcomes
