"""The GGUF writer (metadata of every type, streamed tensors, atomic output) and `codeup
synth` (random-weight models with llama.cpp's per-tensor type mix and sane block scales).

Files are read back with our reader and with the `gguf` package (llama.cpp's own reader).
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from codeup_tui import engine
from tests.helpers.paths import REPO, fixtures_or_skip
from codeup_tui.engine.formats.gguf_reader import GGUFParser
from codeup_tui.engine.formats.gguf_writer import GGUFWriter, GGUFWriteError
from codeup_tui.engine.ggml_types import GGMLType
from codeup_tui.engine.synth import (
    FILE_TYPES, SHAPES, llama_tensor_type, synth_model, tensor_plan, use_more_bits,
)

gguf = pytest.importorskip("gguf")


def _parse(path):
    """Our reader's metadata and value types."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        _, metadata, types, *_ = GGUFParser(mm, str(path)).parse()
    return metadata, types


# ---- the writer ------------------------------------------------------------------------------
ALL_TYPES = [
    ("t.u8", 200, "u8", None),
    ("t.i8", -100, "i8", None),
    ("t.u16", 60000, "u16", None),
    ("t.i16", -30000, "i16", None),
    ("t.u32", 4_000_000_000, "u32", None),
    ("t.i32", -2_000_000_000, "i32", None),
    ("t.f32", 0.25, "f32", None),
    ("t.bool", True, "bool", None),
    ("t.string", "naïve ▁tokens", "string", None),
    ("t.u64", 2**64 - 1, "u64", None),
    ("t.i64", -(2**63), "i64", None),
    ("t.f64", 1e-300, "f64", None),
    ("t.arr.u8", [1, 2, 255], "array", "u8"),
    ("t.arr.i8", [-1, 2], "array", "i8"),
    ("t.arr.u16", [65535], "array", "u16"),
    ("t.arr.i16", [-5, 5], "array", "i16"),
    ("t.arr.u32", [0, 2**32 - 1], "array", "u32"),
    ("t.arr.i32", np.array([-7, 7], np.int32), "array", None),
    ("t.arr.f32", np.array([0.5, -1.5], np.float32), "array", None),
    ("t.arr.bool", [True, False, True], "array", None),
    ("t.arr.string", ["<s>", "", "\u2581hi"], "array", None),
    ("t.arr.u64", [2**64 - 1], "array", "u64"),
    ("t.arr.i64", [-(2**40), 2**40], "array", None),
    ("t.arr.f64", np.array([1.5, 2.5]), "array", None),
    ("t.arr.nested", [[1, 2], [3]], "array", None),
]
EXPECTED_TYPE = {"string": 8, "array": 9, "u8": 0, "i8": 1, "u16": 2, "i16": 3, "u32": 4, "i32": 5,
                 "f32": 6, "bool": 7, "u64": 10, "i64": 11, "f64": 12}


def test_writer_round_trips_every_metadata_type(tmp_path):
    out = tmp_path / "meta.gguf"
    w = GGUFWriter(out, alignment=64)
    for key, value, vtype, etype in ALL_TYPES:
        w.add_metadata(key, value, type=vtype, element_type=etype)
    w.add_metadata("t.inferred.int", 7)  # non-negative int -> u32, as llama.cpp's hparams are
    w.add_metadata("t.inferred.neg", -7)
    w.add_metadata("t.inferred.float", 1.5)
    w.add_tensor_info("a", GGMLType.F32, (4, 3))
    w.add_tensor_info("b", "Q8_0", (64, 2))
    w.add_tensor_info("c", GGMLType.F16, (5,))
    a = np.arange(12, dtype=np.float32)
    b_bytes = np.random.default_rng(0).integers(0, 256, 136, dtype=np.uint8)
    w.write({"a": a, "b": (b_bytes[i : i + 50] for i in range(0, 136, 50)), "c": lambda: np.ones(5, np.float16)})

    metadata, types = _parse(out)
    for key, value, vtype, etype in ALL_TYPES:
        assert types[key] == EXPECTED_TYPE[vtype], key
        got = metadata[key]
        if key == "t.arr.nested":
            assert [list(x) for x in got] == value
        elif isinstance(value, (list, np.ndarray)):
            assert list(got) == list(value), key
        elif isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-7), key
        else:
            assert got == value, key
    assert (types["t.inferred.int"], types["t.inferred.neg"], types["t.inferred.float"]) == (4, 5, 6)
    assert metadata["general.alignment"] == 64

    mf = engine.open_model_file(out)
    assert mf.version == "3" and list(mf.tensors) == ["a", "b", "c"]
    assert np.array_equal(mf.tensor_view("a").reshape(-1), a)
    assert np.array_equal(mf.tensor_bytes_view("b"), b_bytes)
    assert all(t.offset % 64 == 0 for t in mf.tensors.values())
    mf.close()

    r = gguf.GGUFReader(out)
    gtypes = {k: [int(t) for t in f.types] for k, f in r.fields.items()}
    for key, value, vtype, etype in ALL_TYPES:
        assert gtypes[key][0] == EXPECTED_TYPE[vtype], key
        if vtype == "array" and key != "t.arr.nested":
            assert gtypes[key][1] == EXPECTED_TYPE[etype or {
                "t.arr.i32": "i32", "t.arr.f32": "f32", "t.arr.bool": "bool", "t.arr.string": "string",
                "t.arr.i64": "i64", "t.arr.f64": "f64"}[key]], key
    assert r.fields["t.string"].contents() == "naïve ▁tokens"
    assert r.fields["t.arr.string"].contents() == ["<s>", "", "\u2581hi"]
    assert [(t.name, t.tensor_type.name, list(t.shape)) for t in r.tensors] == [
        ("a", "F32", [4, 3]), ("b", "Q8_0", [64, 2]), ("c", "F16", [5])]
    assert np.array_equal(np.asarray(r.tensors[0].data).reshape(-1), a)


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_writer_failure_mid_write_leaves_no_file(tmp_path, error):
    out = tmp_path / "model.gguf"

    def chunks():
        yield np.zeros(1 << 16, np.uint8)
        raise error()

    w = GGUFWriter(out)
    w.add_metadata("general.architecture", "llama")
    w.add_tensor_info("w", GGMLType.Q8_0, (256, 1024))
    with pytest.raises(error):
        w.write([chunks()])
    assert os.listdir(tmp_path) == []  # no output, no temporary file


def test_writer_failure_keeps_the_previous_file(tmp_path):
    out = tmp_path / "model.gguf"
    out.write_bytes(b"old contents")
    w = GGUFWriter(out)
    w.add_tensor_info("w", GGMLType.F32, (8,))
    with pytest.raises(ValueError, match="got 16 bytes of data, expected 32"):
        w.write([np.zeros(4, np.float32)])  # too short
    assert out.read_bytes() == b"old contents" and os.listdir(tmp_path) == ["model.gguf"]


def test_writer_reports_io_errors_in_one_line(tmp_path):
    w = GGUFWriter(tmp_path / "no" / "such" / "folder" / "m.gguf")
    w.add_tensor_info("w", GGMLType.F32, (8,))
    with pytest.raises(GGUFWriteError, match="cannot create a file in"):
        w.write([np.zeros(8, np.float32)])


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda w: (w.add_metadata("k", 1), w.add_metadata("k", 2)), "added twice"),
        (lambda w: w.add_metadata("general.alignment", 48, type="u32"), "power of two"),
        (lambda w: w.add_metadata("k", 300, type="u8"), "out of range"),
        (lambda w: w.add_metadata("k", 1.5, type="u32"), "integers"),
        (lambda w: w.add_metadata("k", [], type="array"), "empty array"),
        (lambda w: w.add_metadata("k", object()), "cannot store"),
        (lambda w: w.add_tensor_info("x" * 64, GGMLType.F32, (4,)), "longer than 63 bytes"),
        (lambda w: w.add_tensor_info("q", GGMLType.Q4_K, (128, 2)), "not a multiple"),
        (lambda w: w.add_tensor_info("q", GGMLType.F32, (1, 1, 1, 1, 1)), "1 to 4"),
        (lambda w: (w.add_tensor_info("q", 0, (4,)), w.add_tensor_info("q", 0, (4,))), "added twice"),
    ],
)
def test_writer_refuses_bad_input(tmp_path, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(GGUFWriter(tmp_path / "m.gguf"))
    assert os.listdir(tmp_path) == []


# ---- llama.cpp's type mix --------------------------------------------------------------------
def test_use_more_bits_matches_llama_cpp_for_32_layers():
    assert [i for i in range(32) if use_more_bits(i, 32)] == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


def test_7b_q4_k_m_mix_is_llama_cpps():
    # llama.cpp loading Llama-2-7B Q4_K_M reports: f32 65, q4_K 193, q6_K 33 tensors.
    counts = Counter(t.name for _, t, _ in tensor_plan(SHAPES["7b"], "Q4_K_M"))
    assert counts == {"F32": 65, "Q4_K": 193, "Q6_K": 33}


@pytest.mark.parametrize("ftype", sorted(FILE_TYPES))
def test_mix_rules_agree_with_llama_quantize_fixtures(ftype):
    path = fixtures_or_skip("tiny-llama", f"tiny-llama-{ftype}.gguf")
    with engine.open_model_file(path) as mf:
        hp = mf.hparams
        assert mf.file_type == FILE_TYPES[ftype].ftype
        for name, t in mf.tensors.items():
            mine = llama_tensor_type(name, ftype, t.shape, n_layer=hp.n_layer, n_head=hp.n_head, n_head_kv=hp.n_head_kv)
            assert mine == t.ggml_type, name


# ---- synth -------------------------------------------------------------------------------------
def _dequantized_stats(tensor):
    from gguf.quants import dequantize

    x = dequantize(np.asarray(tensor.data), tensor.tensor_type)
    return x


@pytest.mark.parametrize("ftype", list(FILE_TYPES))
def test_tiny_synth_reads_back_and_runs(tmp_path, ftype):
    out = tmp_path / f"tiny-{ftype}.gguf"
    result = synth_model(out, "tiny", ftype, seed=3)
    shape = SHAPES["tiny"]
    plan = tensor_plan(shape, ftype)
    assert result.file_bytes == out.stat().st_size

    # our reader: every tensor with the planned type and shape
    with engine.open_model_file(out) as mf:
        assert mf.file_type == FILE_TYPES[ftype].ftype and mf.architecture == "llama"
        assert [(n, t.ggml_type, t.shape) for n, t in mf.tensors.items()] == plan
        hp = mf.hparams
        assert (hp.n_embd, hp.n_ff, hp.n_layer, hp.n_head, hp.n_vocab) == (256, 768, 4, 4, 512)
        assert mf.tokenizer.model == "llama" and mf.tokenizer.tokens[:3] == ["<unk>", "<s>", "</s>"]
        assert mf.tokenizer.tokens[3 + 0x41] == "<0x41>" and mf.tokenizer.token_types[3 + 0x41] == 6
        assert len(set(mf.tokenizer.tokens)) == 512

    quantized = ftype not in ("F32", "F16")
    types = {n: t for n, t, _ in plan}
    if quantized:
        assert types["output.weight"] == (GGMLType.Q8_0 if ftype == "Q8_0" else GGMLType.Q6_K)
        assert types["token_embd.weight"] == FILE_TYPES[ftype].default
    if ftype in ("Q4_K_M", "Q5_K_M"):  # use_more_bits(i, 4): layers 2 and 3
        for i in range(4):
            want = GGMLType.Q6_K if i >= 2 else FILE_TYPES[ftype].default
            assert types[f"blk.{i}.attn_v.weight"] == want and types[f"blk.{i}.ffn_down.weight"] == want

    # llama.cpp's reader: same tensors; weights dequantize to finite, centred, ~0.02-std values
    r = gguf.GGUFReader(out)
    assert [(t.name, t.tensor_type.name) for t in r.tensors] == [(n, t.name) for n, t, _ in plan]
    assert int(r.fields["general.file_type"].contents()) == FILE_TYPES[ftype].ftype
    for t in r.tensors:
        x = _dequantized_stats(t)
        assert np.isfinite(x).all(), t.name
        if t.name.endswith("_norm.weight"):
            assert np.all(x == 1.0)
        else:
            assert 0.015 < x.std() < 0.03 and abs(x.mean()) < 0.006, (t.name, x.mean(), x.std())

    with engine.load_model(out, n_ctx=64) as model:
        logits = model.logits([1, 100, 200, 300, 400])
    assert logits.shape == (5, 512) and np.isfinite(logits).all() and 0.05 < logits.std() < 10


def test_synth_is_reproducible(tmp_path):
    a, b, c = tmp_path / "a.gguf", tmp_path / "b.gguf", tmp_path / "c.gguf"
    synth_model(a, "tiny", "Q4_0", seed=5, n_layer=1)
    synth_model(b, "tiny", "Q4_0", seed=5, n_layer=1)
    synth_model(c, "tiny", "Q4_0", seed=6, n_layer=1)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_synth_copies_the_llama_spm_vocabulary(tmp_path):
    vocab = fixtures_or_skip("vocab", "ggml-vocab-llama-spm.gguf")
    out = tmp_path / "spm.gguf"
    synth_model(out, "tiny", "Q4_0", vocab=vocab, n_layer=1)
    src, src_types = _parse(vocab)
    got, got_types = _parse(out)
    for key in (k for k in src if k.startswith("tokenizer.")):
        assert got_types[key] == src_types[key], key
        assert np.array_equal(np.asarray(got[key]), np.asarray(src[key])) if isinstance(src[key], np.ndarray) \
            else got[key] == src[key], key
    with engine.load_model(out, n_ctx=32) as model:
        assert model.info.n_vocab == 32000
        assert model.tokenizer.encode("Hello world", add_bos=True) == [1, 15043, 3186]  # llama.cpp's ids


def test_synth_cli(tmp_path):
    out = tmp_path / "m.gguf"

    def codeup(*args):
        return subprocess.run([sys.executable, "-m", "codeup_tui.engine.cli", "synth", *args], capture_output=True,
                              text=True, cwd=REPO, timeout=120)

    proc = codeup("--shape", "tiny", "--type", "q8_0", "--layers", "1", "--vocab", "generated", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "Q8_0" in proc.stdout and "MB/s" in proc.stdout
    assert "100%" in proc.stderr  # progress
    with engine.open_model_file(out) as mf:
        assert mf.file_type_name == "Q8_0" and mf.hparams.n_layer == 1

    for args, message in [
        ((str(out),), "exists (use --force"),
        (("--type", "Q7_K", str(tmp_path / "x.gguf")), "unknown type 'Q7_K'"),
        (("--layers", "0", str(tmp_path / "x.gguf")), "at least 1"),
        ((str(tmp_path / "missing" / "x.gguf"),), "does not exist"),
        (("--vocab", str(tmp_path / "none.gguf"), str(tmp_path / "x.gguf")), "not found"),
    ]:
        proc = codeup(*args)
        assert proc.returncode == 2, args
        assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["m.gguf"]
