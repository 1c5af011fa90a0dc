"""The weights read into memory behind the first answer (engine/resident_weights.py): the
same logits as the mapped file, no second resident copy of the weights, and a copy that
fails or does not fit leaves the weights mapped."""

from __future__ import annotations

import os

import numpy as np
import pytest

from codeup_tui.engine import resident_weights
from codeup_tui.engine.model import load_model
from codeup_tui.engine.quants import can_turn
from tests.helpers.paths import fixtures_or_skip

PROMPT = [1, 450, 996, 1354, 1701, 432, 1204]  # ids every fixture vocabulary has (4,096 and up)


def _inside(model, q) -> bool:
    """Whether matrix q reads the mapped file (not a copy in memory)."""
    mapped = np.frombuffer(model.file._mm, dtype=np.uint8)
    start = mapped.__array_interface__["data"][0]
    at = q.data.__array_interface__["data"][0]
    return start <= at < start + mapped.size


def _matrices(model):
    return [q for group in model.weights.resident_groups() for q in group]


@pytest.mark.parametrize("name", ["tiny-llama/tiny-llama-Q4_K_M.gguf", "archs/tiny-qwen3moe-Q4_K_M.gguf"])
def test_copied_weights_give_the_mapped_files_logits(name):
    path = fixtures_or_skip(*name.split("/"))
    with load_model(path, n_ctx=64, mmap=True) as mapped:
        want = mapped.logits(PROMPT)
        assert mapped.in_memory == "mapped"
        assert all(_inside(mapped, q) for q in _matrices(mapped))
    with load_model(path, n_ctx=64) as model:
        got = model.logits(PROMPT)  # may run while the copy is under way
        model.wait_in_memory()
        assert model.in_memory == "memory"
        assert not any(_inside(model, q) for q in _matrices(model))
        assert all(not q.data.flags.writeable for q in _matrices(model))
        # the matrices of the types with a turned kernel (Q4_K, Q4_0, Q4_1, Q8_0 in groups of
        # 16 rows) are held turned for it (turn_rows16), the others as stored
        assert {q.turned for q in _matrices(model) if q.ggml_type.name == "Q4_K"} == {True}
        assert all(q.turned == can_turn(q.ggml_type, q.n_out) for q in _matrices(model))
        assert any(not q.turned for q in _matrices(model))  # (Q6_K in these files)
        again = model.logits(PROMPT)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(again, want)


def _mapping_rss_kib(path) -> int:
    """Resident KiB of this process's mappings of `path` (/proc/self/smaps)."""
    total, ours = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping's header line
                ours = line.rstrip().endswith(str(path))
            elif ours and first == "Rss:":
                total += int(line.split()[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux's /proc/self/smaps")
def test_the_mapped_pages_of_copied_weights_are_never_touched(default_model_file):
    """Peak memory is the file once, not twice: answering reads the copy, not the map."""
    size_kib = default_model_file.stat().st_size // 1024
    before = _mapping_rss_kib(default_model_file)  # an earlier test's map, not yet let go
    with load_model(default_model_file, n_ctx=128) as model:
        model.eval(list(range(1, 40)))
        model.wait_in_memory()
        model.eval([5])
        # the header, the vocabulary and the looked-up embedding rows: a small part of the file
        assert _mapping_rss_kib(default_model_file) - before < 0.25 * size_kib
    before = _mapping_rss_kib(default_model_file)
    with load_model(default_model_file, n_ctx=128, mmap=True) as mapped:
        mapped.eval(list(range(1, 40)))
        assert _mapping_rss_kib(default_model_file) - before > 0.6 * size_kib  # every weight read from the map


def test_a_read_error_leaves_the_rest_mapped_and_the_answer_right(monkeypatch):
    path = fixtures_or_skip("tiny-llama", "tiny-llama-Q4_0.gguf")
    with load_model(path, n_ctx=64, mmap=True) as mapped:
        want = mapped.logits(PROMPT)

    def failing(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(resident_weights.os, "preadv", failing)
    with load_model(path, n_ctx=64) as model:
        np.testing.assert_array_equal(model.logits(PROMPT), want)  # no wait forever for the copy
        model.wait_in_memory()
        assert model.in_memory == "mapped"
        assert all(_inside(model, q) for q in _matrices(model))


def test_a_model_that_does_not_fit_stays_mapped(monkeypatch):
    path = fixtures_or_skip("tiny-llama", "tiny-llama-Q4_0.gguf")
    monkeypatch.setattr(resident_weights, "available_bytes", lambda: 1 << 20)
    with load_model(path, n_ctx=64) as model:
        assert model.in_memory == "mapped"
        assert model.weights.resident is None


def test_closing_while_the_copy_runs_stops_it(monkeypatch):
    path = fixtures_or_skip("tiny-llama", "tiny-llama-Q4_K_M.gguf")
    monkeypatch.setattr(resident_weights, "CHUNK_BYTES", 4096)  # many small reads: still running at close
    model = load_model(path, n_ctx=64)
    copy = model.weights.resident
    model.close()
    assert copy.done
