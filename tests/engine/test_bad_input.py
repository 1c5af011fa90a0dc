"""Bad model files: each gives one line naming the file and the problem, the loader's own
exception class from the API, and exit status 2 from the command line."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO, fixtures_or_skip
from tests.helpers.model_builders import ARRAY, STRING, U8, U32, GGMLBuilder, GGUFBuilder, default_ggml_vocab, small_llama_gguf

from codeup_tui.engine import CodeupError, ModelFileError, open_model_file
from codeup_tui.engine.formats import read_model_buffer


def expect_error(path, *phrases):
    with pytest.raises(ModelFileError) as e:
        open_model_file(path)
    msg = str(e.value)
    assert isinstance(e.value, CodeupError)
    assert "\n" not in msg and msg.startswith(str(path))
    for phrase in phrases:
        assert phrase in msg, msg
    return msg


def header_only(g: GGUFBuilder) -> bytes:
    return g.header_bytes()


# ---- paths ---------------------------------------------------------------------------------

def test_missing_path(tmp_path):
    expect_error(tmp_path / "nope.gguf", "no such file")


def test_directory(tmp_path):
    expect_error(tmp_path, "is a directory")


def test_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    expect_error(fifo, "not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(write_file):
    p = write_file(small_llama_gguf().build())
    p.chmod(0)
    expect_error(p, "permission denied")


def test_permission_denied_reported(write_file, monkeypatch):
    # Root (as in CI) can read any file, so the refusal is simulated at open().
    import codeup_tui.engine.formats.loader as loader

    def deny(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    p = write_file(small_llama_gguf().build())
    monkeypatch.setattr(loader, "open", deny, raising=False)
    expect_error(p, "permission denied")


def test_path_through_a_file(write_file):
    p = write_file(b"x")
    expect_error(p / "model.gguf", "cannot open")


def test_empty_file(write_file):
    expect_error(write_file(b""), "empty")


@pytest.mark.parametrize("data", [b"GGU", b"\x00" * 64, b"PK\x03\x04" + b"\x00" * 60, b"GGUF"])
def test_wrong_magic_or_too_short(write_file, data):
    with pytest.raises(ModelFileError):
        open_model_file(write_file(data))


def test_lora_adapter_named(write_file):
    expect_error(write_file(struct.pack("<II", 0x67676C61, 1) + b"\0" * 32), "LoRA adapter")


# ---- GGUF header -----------------------------------------------------------------------------

def test_unknown_version(write_file):
    data = bytearray(small_llama_gguf().build())
    data[4:8] = struct.pack("<I", 4)
    expect_error(write_file(bytes(data)), "unsupported GGUF version 4")


def test_big_endian_refused(write_file):
    data = bytearray(small_llama_gguf().build())
    data[4:8] = struct.pack(">I", 3)
    expect_error(write_file(bytes(data)), "big-endian")


@pytest.mark.parametrize("field_offset,what", [(8, "tensor"), (16, "metadata")])
def test_absurd_counts(write_file, field_offset, what):
    data = bytearray(small_llama_gguf().build())
    data[field_offset : field_offset + 8] = struct.pack("<Q", 2**62)
    expect_error(write_file(bytes(data)), f"{what} count {2**62}", "cannot fit")


def test_string_longer_than_the_file(write_file):
    g = GGUFBuilder()
    g.add("general.name", STRING, "x")
    data = bytearray(g.build())
    data[24 + 8 + len("general.name") + 4 : 24 + 8 + len("general.name") + 12] = struct.pack("<Q", 2**40)
    expect_error(write_file(bytes(data)), "truncated or corrupt", "value of general.name")


def test_huge_array_count_is_checked_before_allocating(write_file):
    g = GGUFBuilder()
    g.add("big", ARRAY, [1, 2, 3], U32)
    data = bytearray(g.build())
    count_at = 24 + 8 + 3 + 4 + 4
    data[count_at : count_at + 8] = struct.pack("<Q", 2**61)
    expect_error(write_file(bytes(data)), "count", "cannot fit")


def test_huge_string_array_count(write_file):
    g = GGUFBuilder()
    g.add("toks", ARRAY, ["a"], STRING)
    data = bytearray(g.build())
    count_at = 24 + 8 + 4 + 4 + 4
    data[count_at : count_at + 8] = struct.pack("<Q", 2**62)
    expect_error(write_file(bytes(data)), "cannot fit")


def test_arrays_nested_too_deep(write_file):
    value = (U8, [1])
    for _ in range(12):
        value = (ARRAY, [value])
    g = GGUFBuilder().add("deep", ARRAY, value[1], value[0])
    expect_error(write_file(g.build()), "nested deeper")


def test_unknown_value_type(write_file):
    g = GGUFBuilder().add("k", U32, 7)
    data = bytearray(g.build())
    data[24 + 8 + 1 : 24 + 8 + 5] = struct.pack("<I", 99)
    expect_error(write_file(bytes(data)), "unknown value type 99")


def test_unknown_array_element_type(write_file):
    g = GGUFBuilder().add("k", ARRAY, [1], U32)
    data = bytearray(g.build())
    data[24 + 8 + 1 + 4 : 24 + 8 + 1 + 8] = struct.pack("<I", 77)
    expect_error(write_file(bytes(data)), "unknown array element type 77")


def test_invalid_utf8_in_key(write_file):
    g = GGUFBuilder().add("bad\xff", U32, 1)
    data = g.build().replace("bad\xff".encode(), b"bad\xff\xfe"[:5])
    expect_error(write_file(data), "not valid UTF-8")


def test_invalid_utf8_in_tensor_name(write_file):
    g = small_llama_gguf()
    data = g.build().replace(b"output_norm.weight", b"output_norm.weig\xc3\x28")
    expect_error(write_file(data), "not valid UTF-8")


def test_duplicate_key(write_file):
    g = GGUFBuilder().add("k", U32, 1).add("k", U32, 2)
    expect_error(write_file(g.build()), "duplicate metadata key k")


def test_duplicate_tensor(write_file):
    g = small_llama_gguf()
    g.add_tensor("output_norm.weight", 0, (32,))
    expect_error(write_file(g.build()), "duplicate tensor output_norm.weight")


def test_unknown_tensor_type(write_file):
    g = small_llama_gguf()
    g.add_tensor("x", 0, (32,))
    g.tensors[-1] = ("x", 123, (32,), g.tensors[-1][3])
    expect_error(write_file(g.build()), "unknown ggml type id 123")


def test_tensor_with_2_to_40_elements(write_file):
    g = small_llama_gguf()
    g.tensors.append(("huge", 0, (2**20, 2**20), b"\0" * 32))
    expect_error(write_file(g.build()), "huge", "runs past the end")


@pytest.mark.parametrize("n_dims", [0, 5])
def test_bad_dimension_count(write_file, n_dims):
    g = small_llama_gguf()
    g.tensors.append(("odd", 0, (1,) * n_dims, b"\0" * 32))
    expect_error(write_file(g.build()), f"{n_dims} dimensions")


def test_row_not_multiple_of_block(write_file):
    g = small_llama_gguf()
    g.tensors.append(("q", 2, (48, 1), b"\0" * 64))
    expect_error(write_file(g.build()), "not a multiple of the Q4_0 block size 32")


def test_tensor_data_past_end_of_file(write_file):
    data = small_llama_gguf().build()
    expect_error(write_file(data[: len(data) - 100]), "runs past the end")


def test_misaligned_offset(write_file):
    g = small_llama_gguf()
    offsets = g.offsets()
    offsets[1] += 4
    data = g.header_bytes(offsets)
    data += b"\0" * ((-len(data)) % 32) + b"\0" * (sum(len(t[3]) for t in g.tensors) + 4096)
    expect_error(write_file(data), "not a multiple of the alignment 32")


def test_overlapping_offsets(write_file):
    g = small_llama_gguf()
    offsets = g.offsets()
    offsets[2] = offsets[1]
    data = g.header_bytes(offsets)
    data += b"\0" * ((-len(data)) % 32) + b"\0" * sum(len(t[3]) + 32 for t in g.tensors)
    expect_error(write_file(data), "overlap")


@pytest.mark.parametrize("alignment", [0, 3, 48])
def test_bad_alignment(write_file, alignment):
    g = small_llama_gguf().add("general.alignment", U32, alignment)
    expect_error(write_file(g.build() if alignment else g.header_bytes()), "power of two")


def test_inconsistent_hyperparameters(write_file):
    g = small_llama_gguf(n_embd=32, n_head=4)
    g.kv = [(k, t, (5 if k == "llama.attention.head_count" else v), e) for k, t, v, e in g.kv]
    expect_error(write_file(g.build()), "inconsistent hyperparameters")


def test_truncated_at_every_header_byte(write_file):
    g = small_llama_gguf(n_vocab=8)
    data = g.build()
    header_end = len(g.header_bytes())
    for cut in range(0, header_end + 64):
        with pytest.raises(ModelFileError) as e:
            read_model_buffer(data[:cut], "cut.gguf")
        assert "\n" not in str(e.value)
    # and a few file-backed cuts, through the path API
    for cut in (5, header_end // 2, header_end + 1, len(data) - 1):
        expect_error(write_file(data[:cut]))


# ---- GGML ------------------------------------------------------------------------------------

def ggml_file() -> GGMLBuilder:
    b = GGMLBuilder(hparams=(8, 32, 32, 4, 1, 8, 0), vocab=default_ggml_vocab(8))
    b.add_tensor("tok_embeddings.weight", 0, (32, 8))
    b.add_tensor("norm.weight", 0, (32,))
    b.add_tensor("output.weight", 0, (32, 8))
    for part in ("attention_norm", "ffn_norm"):
        b.add_tensor(f"layers.0.{part}.weight", 0, (32,))
    for part in ("attention.wq", "attention.wk", "attention.wv", "attention.wo",
                 "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"):
        b.add_tensor(f"layers.0.{part}.weight", 0, (32, 32))
    return b


def test_ggml_truncated_at_every_byte(write_file):
    data = ggml_file().build()
    read_model_buffer(data, "whole.bin")
    for cut in range(8, len(data)):
        with pytest.raises(ModelFileError):
            read_model_buffer(data[:cut], "cut.bin")


def test_ggml_absurd_vocab_count(write_file):
    data = bytearray(ggml_file().build())
    data[8:12] = struct.pack("<I", 2**31)
    expect_error(write_file(bytes(data), ".bin"), "vocabulary entry count", "cannot fit")


def test_ggml_unknown_tensor_name_and_type(write_file):
    b = ggml_file()
    b.add_tensor("lm_head.weight", 0, (32,))
    expect_error(write_file(b.build(), ".bin"), "unknown tensor 'lm_head.weight'")
    b = ggml_file()
    b.tensors[2] = ("output.weight", 16, (256,), b"\0" * 66)
    expect_error(write_file(b.build(), ".bin"), "type id 16")


def test_ggml_tensor_data_past_end(write_file):
    data = ggml_file().build()
    expect_error(write_file(data[:-10], ".bin"), "data of tensor layers.0.feed_forward.w3.weight")


def test_ggml_missing_and_extra_tensors(write_file):
    b = ggml_file()
    del b.tensors[1]
    expect_error(write_file(b.build(), ".bin"), "1 of the model's 12 tensors are missing (first: output_norm.weight)")
    b = ggml_file()
    b.add_tensor("layers.3.ffn_norm.weight", 0, (32,))
    expect_error(write_file(b.build(), ".bin"), "beyond n_layer 1")


def test_ggml_zero_heads(write_file):
    b = ggml_file()
    b.hparams = (8, 32, 32, 0, 1, 8, 0)
    expect_error(write_file(b.build(), ".bin"), "inconsistent hyperparameters")


# ---- the command line ----------------------------------------------------------------------

@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "directory", "garbage"])
def test_cli_one_line_and_exit_2(tmp_path, case):
    if case == "missing":
        path = tmp_path / "missing.gguf"
    elif case == "directory":
        path = tmp_path
    else:
        path = tmp_path / f"{case}.gguf"
        data = {"empty": b"", "garbage": os.urandom(100),
                "truncated": small_llama_gguf().build()[:300]}[case]
        path.write_bytes(data)
    proc = subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "info", str(path)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"codeup: error: {path}"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_fixture_truncated_mid_tensor(tmp_path):
    src = fixtures_or_skip("tiny-llama", "tiny-llama-Q2_K.gguf").read_bytes()
    p = tmp_path / "cut.gguf"
    p.write_bytes(src[: len(src) // 2])
    proc = subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "info", str(p)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "runs past the end" in proc.stderr and len(proc.stderr.splitlines()) == 1
