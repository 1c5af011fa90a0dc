"""Hostile counts in a model file cost bounded work: a clean one-line error within a second
of CPU and well under 100 MB, however large the count claims to be.

Each file is opened in a fresh interpreter that reports its own CPU time and peak-RSS
growth, so other load on the machine cannot make the bounds flaky (CPU time, not wall time)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from conftest import REPO, fixtures_or_skip

MAX_CPU_S = 1.0
MAX_RSS_GROWTH_MB = 100

_OPEN_AND_MEASURE = """
import json, resource, sys, time
from engine import ModelFileError, open_model_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.process_time()
try:
    open_model_file(sys.argv[1])
    outcome = "opened"
except ModelFileError as e:
    outcome = str(e)
cpu = time.process_time() - t0
growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"outcome": outcome, "cpu_s": cpu, "rss_growth_mb": growth_kb / 1024}))
"""


def open_in_child(path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _OPEN_AND_MEASURE, str(path)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_bounded_error(result: dict, *phrases: str) -> None:
    msg = result["outcome"]
    assert msg != "opened", "the hostile file was accepted"
    assert "\n" not in msg
    for phrase in phrases:
        assert phrase in msg, msg
    assert result["cpu_s"] < MAX_CPU_S, result
    assert result["rss_growth_mb"] < MAX_RSS_GROWTH_MB, result


@pytest.mark.parametrize("n_layer", [3_183_315, 2**31])
def test_ggml_huge_n_layer_is_refused_cheaply(tmp_path, n_layer):
    data = bytearray(fixtures_or_skip("ggml-v3", "ggml-llama-Q6_K.ggmlv3.bin").read_bytes())
    data[24:28] = struct.pack("<I", n_layer)  # ggjt: magic, version, n_vocab, n_embd, n_mult, n_head
    path = tmp_path / "huge-n-layer.ggmlv3.bin"
    path.write_bytes(bytes(data))
    assert_bounded_error(open_in_child(path), f"n_layer {n_layer}")


def _gguf_header(n_tensors: int, n_kv: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv)


def _gguf_key(key: bytes) -> bytes:
    return struct.pack("<Q", len(key)) + key


def test_gguf_two_million_empty_nested_arrays_are_refused_cheaply(tmp_path):
    n = 2_000_000
    empty_u8_array = struct.pack("<IQ", 0, 0)  # element type u8, count 0: 12 bytes each
    data = (
        _gguf_header(0, 1) + _gguf_key(b"nested") + struct.pack("<IIQ", 9, 9, n) + empty_u8_array * n
    )
    assert len(data) > 24_000_000
    path = tmp_path / "nested.gguf"
    path.write_bytes(data)
    assert_bounded_error(open_in_child(path), "metadata nested", "arrays of arrays")


def test_gguf_a_million_tiny_metadata_keys_are_refused_cheaply(tmp_path):
    n = 1_200_000  # 19 bytes each: key length, 6-byte key, type u8, value
    data = _gguf_header(0, n) + b"".join(
        _gguf_key(b"%06x" % i) + struct.pack("<IB", 0, 1) for i in range(n)
    )
    path = tmp_path / "many-keys.gguf"
    path.write_bytes(data)
    assert_bounded_error(open_in_child(path), f"metadata count {n}")


def test_gguf_half_a_million_empty_tensors_are_refused_cheaply(tmp_path):
    n = 500_000  # 38 bytes each: name length, 5-byte name, 1 dimension of 0, type F32, offset 0
    infos = b"".join(
        _gguf_key(b"%05x" % i) + struct.pack("<IQIQ", 1, 0, 0, 0) for i in range(n)
    )
    path = tmp_path / "many-tensors.gguf"
    header = _gguf_header(n, 0) + infos
    path.write_bytes(header + b"\0" * (-len(header) % 32))  # aligned: a valid, empty data section
    assert_bounded_error(open_in_child(path), f"tensor count {n}")
