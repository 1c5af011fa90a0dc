"""`codeup convert`: GGML v3 llama files to GGUF with their bytes kept.

The converted file must run exactly as the .bin does (bitwise logits), carry what the
2023 file did not store from the options, and read as llama.cpp's converter writes it
(checked with the `gguf` package, llama.cpp's own reader).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest

from codeup_tui import engine
from tests.helpers.paths import FIXTURES, fixtures_or_skip
from codeup_tui.engine.cli import main
from codeup_tui.engine.convert import convert_ggml_to_gguf

gguf = pytest.importorskip("gguf")
V = gguf.GGUFValueType

GGML_TYPES = ["F32", "Q4_0", "Q4_K_M", "Q6_K"]


@pytest.fixture(scope="module")
def tokens():
    return json.loads(fixtures_or_skip("ggml-v3", "ggml-llama.json").read_text())["tokens"]


def bin_path(ftype: str):
    return fixtures_or_skip("ggml-v3", f"ggml-llama-{ftype}.ggmlv3.bin")


@pytest.mark.parametrize("ftype", GGML_TYPES)
def test_converted_file_runs_bit_for_bit_as_the_bin(ftype, tokens, tmp_path):
    src, out = bin_path(ftype), tmp_path / f"{ftype}.gguf"
    result = convert_ggml_to_gguf(src, out)
    assert (result.rms_eps, result.context_length, result.rope_freq_base) == (5e-6, 2048, 10000.0)

    with engine.load_model(src) as model:
        want = model.logits(tokens)
    with engine.load_model(out) as model:
        got = model.logits(tokens)
    assert np.array_equal(got, want)

    with engine.open_model_file(src) as a, engine.open_model_file(out) as b:
        # the same hyperparameters (GGUF stores eps as float32, which is what the engine uses)
        assert replace(a.hparams, rms_eps=float(np.float32(a.hparams.rms_eps))) == b.hparams
        # every tensor, in the .bin's order, with its type, shape and bytes unchanged
        assert [(t.name, t.ggml_type, t.shape) for t in a.tensors.values()] == \
               [(t.name, t.ggml_type, t.shape) for t in b.tensors.values()]
        for name in a.tensors:
            assert np.array_equal(a.tensor_bytes_view(name), b.tensor_bytes_view(name)), name
        # the vocabulary with its scores and token types
        ta, tb = a.tokenizer, b.tokenizer
        assert ta.tokens == tb.tokens and (ta.model, ta.bos_id, ta.eos_id, ta.unk_id) == (tb.model, tb.bos_id, tb.eos_id, tb.unk_id)
        assert np.array_equal(ta.scores, tb.scores) and np.array_equal(ta.token_types, tb.token_types)
        assert b.tokenizer.tokens[:4] == ["<unk>", "<s>", "</s>", "<0x00>"]
        assert list(b.tokenizer.token_types[:4]) == [2, 3, 3, 6]


def test_metadata_has_llama_cpps_value_types(tmp_path):
    out = tmp_path / "q4_k_m.gguf"
    convert_ggml_to_gguf(bin_path("Q4_K_M"), out)
    f = gguf.GGUFReader(out).fields
    u32 = ["general.file_type", "general.quantization_version", "llama.context_length", "llama.embedding_length",
           "llama.block_count", "llama.feed_forward_length", "llama.rope.dimension_count",
           "llama.attention.head_count", "llama.attention.head_count_kv", "tokenizer.ggml.bos_token_id",
           "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"]
    for key in u32:
        assert f[key].types == [V.UINT32], key
    for key in ("llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base"):
        assert f[key].types == [V.FLOAT32], key
    assert f["tokenizer.ggml.tokens"].types == [V.ARRAY, V.STRING]
    assert f["tokenizer.ggml.scores"].types == [V.ARRAY, V.FLOAT32]
    assert f["tokenizer.ggml.token_type"].types == [V.ARRAY, V.INT32]
    assert f["general.architecture"].contents() == "llama" and f["tokenizer.ggml.model"].contents() == "llama"
    assert f["general.name"].contents() == "ggml-llama-Q4_K_M.ggmlv3"
    assert int(f["general.file_type"].contents()) == 15  # Q4_K_M, as the .bin's header says
    values = {k: f[k].contents() for k in ("llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
                                           "llama.attention.head_count", "llama.attention.head_count_kv",
                                           "llama.rope.dimension_count", "llama.context_length")}
    assert values == {"llama.embedding_length": 256, "llama.block_count": 2, "llama.feed_forward_length": 768,
                      "llama.attention.head_count": 4, "llama.attention.head_count_kv": 4,
                      "llama.rope.dimension_count": 64, "llama.context_length": 2048}


def test_overrides_are_stored_and_match_loading_the_bin_with_them(tokens, tmp_path):
    src, out = bin_path("Q4_0"), tmp_path / "llama2.gguf"
    opts = dict(rms_eps=1e-5, context_length=4096, rope_freq_base=1e6, rope_freq_scale=0.5)
    convert_ggml_to_gguf(src, out, gqa=1, **opts)
    f = gguf.GGUFReader(out).fields
    assert f["llama.attention.layer_norm_rms_epsilon"].contents() == pytest.approx(1e-5)
    assert f["llama.context_length"].contents() == 4096
    assert f["llama.rope.freq_base"].contents() == 1e6
    assert f["llama.rope.scaling.type"].contents() == "linear" and f["llama.rope.scaling.factor"].contents() == 2.0
    with engine.load_model(src, **opts) as model:
        want = model.logits(tokens)
    with engine.load_model(out) as model:  # no options: the GGUF carries them
        assert (model.info.rms_eps, model.info.n_ctx_train) == (pytest.approx(1e-5), 4096)
        got = model.logits(tokens)
    assert np.array_equal(got, want)
    with engine.load_model(src) as model:
        assert not np.array_equal(model.logits(tokens), got)


def cli(capsys, *args):
    code = main(["convert", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_summary_and_llama2_note(capsys, tmp_path):
    out = tmp_path / "m.gguf"
    code, stdout, stderr = cli(capsys, bin_path("Q6_K"), out)
    assert code == 0
    assert stdout.startswith(f"wrote {out}: Q6_K, 21 tensors from GGML ggjt v3,")
    assert "rms eps 5e-06, context 2048, rope base 10000, 4 KV heads" in stdout
    assert stderr == ("note: eps and context are the GGML defaults; for Llama 2 / CodeUp-Llama-2 convert with "
                      "--eps 1e-5 -c 4096\n")
    code, stdout, stderr = cli(capsys, bin_path("Q6_K"), out, "--force", "--eps", "1e-5", "-c", "4096")
    assert code == 0 and "rms eps 1e-05, context 4096" in stdout and stderr == ""


@pytest.mark.parametrize(
    "case, message",
    [
        ("gguf input", "is already GGUF v3: nothing to convert"),
        ("wrong gqa", "--gqa 2 gives 2 KV heads, but the tensors have 4"),
        ("bad eps", "--eps must be a positive number"),
        ("truncated", "truncated or corrupt"),
        ("missing input", "no such file"),
        ("missing folder", "does not exist"),
        ("existing output", "exists (use --force to overwrite it)"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(case, message, capsys, tmp_path):
    src, out, extra = bin_path("Q4_0"), tmp_path / "out.gguf", []
    if case == "gguf input":
        src = fixtures_or_skip("tiny-llama", "tiny-llama-Q4_0.gguf")
    elif case == "wrong gqa":
        extra = ["--gqa", "2"]
    elif case == "bad eps":
        extra = ["--eps", "0"]
    elif case == "truncated":
        data = src.read_bytes()
        src = tmp_path / "cut.bin"
        src.write_bytes(data[: len(data) // 2])
    elif case == "missing input":
        src = tmp_path / "nothing.bin"
    elif case == "missing folder":
        out = tmp_path / "nowhere" / "out.gguf"
    elif case == "existing output":
        out.write_bytes(b"mine")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, stdout, stderr = cli(capsys, src, out, *extra)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("codeup: error: ") and message in stderr, stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_interrupted_convert_leaves_no_output(capsys, tmp_path, monkeypatch):
    from codeup_tui.engine import convert as convert_module

    seen = {"n": 0}

    class Stop:
        def __init__(self, *a, **k):
            seen["n"] += 1
            if seen["n"] == 10:
                raise KeyboardInterrupt

    monkeypatch.setattr(convert_module, "Progress", Stop)
    code, _, stderr = cli(capsys, bin_path("F32"), tmp_path / "out.gguf")
    assert code == 130 and stderr == "codeup: interrupted\n"
    assert os.listdir(tmp_path) == []


def test_converted_fixture_agrees_with_llama_cpps_logits(tokens, tmp_path):
    """The converted Q4_K_M file within the engine's tolerance of today's llama.cpp running
    the same weights as GGUF (ggml-llama-Q4_K_M.logits.npy)."""
    out = tmp_path / "m.gguf"
    convert_ggml_to_gguf(bin_path("Q4_K_M"), out)
    ref = np.load(FIXTURES / "ggml-v3" / "ggml-llama-Q4_K_M.logits.npy")
    with engine.load_model(out) as model:
        got = model.logits(tokens)
    err = float(np.sqrt(np.mean((got - ref) ** 2)) / ref.std())
    assert err <= 0.015 and (got.argmax(1) == ref.argmax(1)).mean() >= 0.90
