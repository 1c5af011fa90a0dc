"""GGUF files read as llama.cpp's own reader (the `gguf` package) reads them."""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="the gguf package (test oracle) is not installed")

from tests.helpers.paths import FIXTURES, fixtures_or_skip
from tests.helpers.model_builders import ARRAY, BOOL, F32, F64, I8, I16, I64, STRING, U8, U16, U32, U64, GGUFBuilder, small_llama_gguf

from codeup_tui.engine import open_model_file
from codeup_tui.engine.ggml_types import GGMLType

GGUF_FILES = sorted(FIXTURES.glob("*/*.gguf")) or [
    pytest.param(None, marks=pytest.mark.skip(reason=f"reference fixtures not found at {FIXTURES} (../shared is absent)"))
]


def _oracle_value(field):
    main = field.types[0]
    if main == gguf.GGUFValueType.ARRAY and field.types[-1] == gguf.GGUFValueType.STRING:
        return field.contents()
    if main == gguf.GGUFValueType.ARRAY:
        return np.asarray(field.contents())
    return field.contents()


@pytest.mark.parametrize("path", GGUF_FILES, ids=lambda p: p.name if p else "none")
def test_fixture_matches_gguf_package(path):
    reader = gguf.GGUFReader(path)
    with open_model_file(path) as mf:
        assert mf.format == "GGUF" and mf.version == "3"
        # every tensor: name, type, ggml shape, bytes
        assert list(mf.tensors) == [t.name for t in reader.tensors]
        for t in reader.tensors:
            ours = mf.tensors[t.name]
            assert ours.ggml_type == int(t.tensor_type)
            assert ours.shape == tuple(int(d) for d in t.shape)
            assert ours.nbytes == t.n_bytes
            assert ours.offset == t.data_offset
            assert np.array_equal(mf.tensor_bytes_view(t.name), t.data.reshape(-1).view(np.uint8))
            # typed view has numpy's shape (reversed dims), like the oracle's
            assert mf.tensor_view(t.name).shape == t.data.shape
        # every metadata value
        fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
        assert set(fields) == set(mf.metadata)
        for key, field in fields.items():
            expected = _oracle_value(field)
            got = mf.metadata[key]
            if isinstance(expected, np.ndarray):
                assert np.array_equal(np.asarray(got), expected), key
            elif isinstance(expected, float):
                assert got == pytest.approx(expected, rel=1e-7), key
            else:
                assert got == expected, key


def test_tensor_views_are_zero_copy():
    path = fixtures_or_skip("tiny-llama", "tiny-llama-Q4_K_M.gguf")
    with open_model_file(path) as mf:
        for name in mf.tensors:
            view = mf.tensor_view(name)
            assert not view.flags.owndata and not view.flags.writeable
            assert view.base is not None


def test_tiny_llama_hyperparameters_match_its_config():
    import json

    cfg = json.loads(fixtures_or_skip("tiny-llama", "tiny-llama.json").read_text())["config"]
    with open_model_file(FIXTURES / "tiny-llama" / "tiny-llama-Q4_0.gguf") as mf:
        hp = mf.hparams
        assert (hp.n_vocab, hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.n_ff) == (
            cfg["n_vocab"], cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["n_head_kv"], cfg["n_ff"])
        assert hp.rope_freq_base == cfg["rope_base"]
        assert hp.rms_eps == pytest.approx(cfg["eps"])
        assert mf.file_type_name == "Q4_0"
        assert mf.tokenizer.model == "llama" and mf.tokenizer.bos_id == 1 and mf.tokenizer.eos_id == 2
        assert mf.tokenizer.scores.dtype == np.float32 and mf.tokenizer.scores.shape == (cfg["n_vocab"],)


def test_every_value_type_and_nested_arrays(write_file):
    g = small_llama_gguf()
    g.add("t.u8", U8, 200).add("t.i8", I8, -5).add("t.u16", U16, 60000).add("t.i16", I16, -300)
    g.add("t.u64", U64, 2**63 + 5).add("t.i64", I64, -(2**40)).add("t.f64", F64, 0.125)
    g.add("t.bool", BOOL, True).add("t.str", STRING, "héllo")
    g.add("t.bools", ARRAY, [True, False, True], BOOL)
    g.add("t.nested", ARRAY, [(U32, [1, 2, 3]), (STRING, ["a", "bc"]), (ARRAY, [(F32, [0.5])])], ARRAY)
    g.add("t.empty", ARRAY, [], STRING)
    path = write_file(g.build())
    md = open_model_file(path).metadata
    assert md["t.u8"] == 200 and md["t.i8"] == -5 and md["t.u16"] == 60000 and md["t.i16"] == -300
    assert md["t.u64"] == 2**63 + 5 and md["t.i64"] == -(2**40) and md["t.f64"] == 0.125
    assert md["t.bool"] is True and md["t.str"] == "héllo"
    assert md["t.bools"].tolist() == [True, False, True]
    nested = md["t.nested"]
    assert nested[0].tolist() == [1, 2, 3] and nested[1] == ["a", "bc"] and nested[2][0].tolist() == [0.5]
    assert md["t.empty"] == []
    # the oracle agrees on the scalar values
    fields = gguf.GGUFReader(path).fields
    for key in ("t.u8", "t.i8", "t.u16", "t.i16", "t.u64", "t.i64", "t.f64", "t.bool", "t.str"):
        assert md[key] == fields[key].contents(), key


@pytest.mark.parametrize("alignment", [1, 8, 64, 4096])
def test_general_alignment_is_honoured(write_file, alignment):
    g = small_llama_gguf()
    g.alignment = alignment
    g.add("general.alignment", U32, alignment)
    path = write_file(g.build())
    with open_model_file(path) as mf:
        for (name, _t, _s, data), info in zip(g.tensors, mf.tensors.values()):
            assert info.offset % alignment == 0
            assert mf.tensor_bytes_view(name).tobytes() == data


def test_gguf_v2_reads_like_v3(write_file):
    v2 = small_llama_gguf(version=2)
    with open_model_file(write_file(v2.build())) as mf:
        assert mf.version == "2" and mf.hparams.n_head_kv == 2
        assert mf.tensor_bytes_view("token_embd.weight").tobytes() == v2.tensors[0][3]


def test_gguf_v1_with_32_bit_counts(write_file):
    v1 = small_llama_gguf(version=1)
    with open_model_file(write_file(v1.build())) as mf:
        assert mf.version == "1"
        assert mf.tokenizer.tokens[:3] == ["<unk>", "<s>", "</s>"]
        for name, _t, shape, data in v1.tensors:
            assert mf.tensors[name].shape == shape
            assert mf.tensor_bytes_view(name).tobytes() == data


def test_every_weight_type_reads_back(write_file):
    g = small_llama_gguf()
    types = [t for t in GGMLType if t in (0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 30)]
    for i, t in enumerate(types):
        g.add_tensor(f"extra.{t.name}", int(t), (256, 3), seed=100 + i)
    path = write_file(g.build())
    reader = gguf.GGUFReader(path)
    with open_model_file(path) as mf:
        for t in reader.tensors:
            assert mf.tensors[t.name].ggml_type == int(t.tensor_type)
            assert np.array_equal(mf.tensor_bytes_view(t.name), t.data.reshape(-1).view(np.uint8))


def test_bf16_view_and_f16_view(write_file):
    g = small_llama_gguf()
    vals = (np.arange(64, dtype=np.float32) - 32) / 8  # exact in f16 and bf16
    g.add_tensor("x.f16", 1, (32, 2), vals.astype(np.float16).tobytes())
    g.add_tensor("x.bf16", 30, (32, 2), (vals.view(np.uint32) >> 16).astype(np.uint16).tobytes())
    with open_model_file(write_file(g.build())) as mf:
        assert np.array_equal(mf.tensor_view("x.f16").astype(np.float32).ravel(), vals)
        bf = (mf.tensor_view("x.bf16").astype(np.uint32) << 16).view(np.float32).ravel()
        assert np.array_equal(bf, vals)
