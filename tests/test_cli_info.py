"""`codeup info`: what a user reads about a model file."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, fixtures_or_skip
from model_builders import small_llama_gguf

from engine.cli import main


def info(capsys, *args):
    code = main(["info", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_info_text_for_a_gguf_fixture(capsys):
    path = fixtures_or_skip("tiny-llama", "tiny-llama-Q4_K_M.gguf")
    code, out, err = info(capsys, path)
    assert code == 0 and err == ""
    assert "format        GGUF v3" in out
    assert "architecture  llama" in out and "file type     Q4_K_M" in out
    assert "n_vocab 4096  n_embd 256  n_layer 2  n_head 4  n_head_kv 2  n_ff 768" in out
    assert "SentencePiece (llama): 4096 tokens" in out
    assert "bos 1 '<s>'  eos 2 '</s>'" in out
    # a row per tensor type: count, bytes, bits per weight (Q4_K blocks: 144 B per 256)
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("              ")}
    import gguf

    counts = {}
    for t in gguf.GGUFReader(path).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    assert {k: int(v[0]) for k, v in rows.items()} == counts
    assert rows["Q4_K"][-1] == "4.50" and rows["Q6_K"][-1] == "6.56" and rows["F32"][-1] == "32.00"


def test_info_json_matches_the_file(capsys):
    path = fixtures_or_skip("tiny-llama", "tiny-llama-Q4_K_M.gguf")
    code, out, _ = info(capsys, path, "--json")
    d = json.loads(out)
    assert d["format"] == "GGUF" and d["version"] == "3" and d["file_type"] == "Q4_K_M"
    assert d["file_size"] == path.stat().st_size
    assert d["hparams"]["n_head_kv"] == 2 and d["tokenizer"]["n_tokens"] == 4096
    assert d["n_tensors"] == 21 == sum(r["count"] for r in d["tensor_types"].values())
    assert d["tensor_bytes"] == sum(r["bytes"] for r in d["tensor_types"].values())
    assert d["tensor_bytes"] <= d["file_size"]
    assert d["bits_per_weight"] == pytest.approx(8 * d["tensor_bytes"] / d["n_params"], rel=1e-3)
    tiny = json.loads((FIXTURES / "tiny-llama" / "tiny-llama.json").read_text())
    assert set(d["tensor_types"]) == set(tiny["files"]["Q4_K_M"]["tensor_types"])


def test_info_ggml_v3_with_overrides(capsys):
    path = fixtures_or_skip("ggml-v3", "ggml-llama-Q6_K.ggmlv3.bin")
    code, out, _ = info(capsys, path, "--json", "--eps", "1e-5", "-c", "4096", "--rope-freq-base", "1e6")
    d = json.loads(out)
    assert d["format_name"] == "GGML ggjt v3" and d["file_type"] == "Q6_K"
    assert d["hparams"]["rms_eps"] == 1e-5 and d["hparams"]["n_ctx_train"] == 4096
    assert d["hparams"]["rope_freq_base"] == 1e6
    assert d["notes"] and "do not store" in d["notes"][0]
    code, out, _ = info(capsys, path)
    assert "format        GGML ggjt v3" in out and "rms eps 5e-06" in out and "note" in out


def test_info_bpe_vocabulary(capsys):
    path = fixtures_or_skip("vocab", "ggml-vocab-gpt-2.gguf")
    code, out, _ = info(capsys, path, "--json")
    tok = json.loads(out)["tokenizer"]
    assert tok["model"] == "gpt2" and tok["kind"] == "byte-level BPE" and tok["pre"] == "gpt-2"
    assert tok["n_tokens"] == 50257 and tok["n_merges"] == 50000


def test_info_bad_option_is_one_line(capsys, write_file):
    path = write_file(small_llama_gguf().build())
    with pytest.raises(SystemExit) as e:
        main(["info", str(path), "--eps", "abc"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "invalid float value" in err


def test_info_gqa_mismatch_is_an_error(capsys, write_file):
    path = write_file(small_llama_gguf(n_head=4, n_head_kv=2).build())
    code, out, err = info(capsys, path, "--gqa", "4")
    assert code == 2 and out == ""
    assert err.startswith("codeup: error: ") and "--gqa 4 gives 1 KV heads, but the tensors have 2" in err


def test_version_and_help_exit_zero(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("codeup ")
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "info" in out and "fetch-model" in out
