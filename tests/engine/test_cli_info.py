"""`codeup info`: what a user reads about a model file."""

from __future__ import annotations

import json

import pytest

from tests.helpers.paths import FIXTURES, fixtures_or_skip
from tests.helpers.model_builders import small_llama_gguf

from codeup_tui.engine.cli import main


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


# ---- memory needed (the card's "Max RAM required") -------------------------------------------

def _thirteen_b_q4_k_m(path):
    """A GGUF whose header and tensor table are Llama-2-13B's at Q4_K_M (llama.cpp's type mix),
    its 7.9 GB of data a hole in a sparse file: `info` reads the header alone."""
    import os

    from codeup_tui.engine.formats.gguf_writer import GGUFValueType, GGUFWriter
    from codeup_tui.engine.synth import generated_vocabulary, get_shape, tensor_plan

    shape = get_shape("13b")
    w = GGUFWriter(path)
    u32 = GGUFValueType.U32
    w.add_metadata("general.architecture", "llama")
    w.add_metadata("general.file_type", 15, type=u32)  # MOSTLY_Q4_K_M
    for key, value in (("vocab_size", 32000), ("context_length", 4096), ("embedding_length", 5120),
                       ("block_count", 40), ("feed_forward_length", 13824), ("attention.head_count", 40),
                       ("attention.head_count_kv", 40), ("rope.dimension_count", 128)):
        w.add_metadata(f"llama.{key}", value, type=u32)
    w.add_metadata("llama.attention.layer_norm_rms_epsilon", 1e-5, type=GGUFValueType.F32)
    for key, value, vtype in generated_vocabulary(32000).items:
        w.add_metadata(key, value, type=vtype)
    for name, gtype, tshape in tensor_plan(shape, "Q4_K_M"):
        w.add_tensor_info(name, gtype, tshape)
    with open(path, "wb") as f:
        f.write(w.header_bytes())
    os.truncate(path, w.file_size)
    return path


def test_memory_required_for_a_13b_q4_k_m_at_2048(capsys, tmp_path):
    path = _thirteen_b_q4_k_m(tmp_path / "codeup-llama-2-13b.Q4_K_M.gguf")
    code, out, err = info(capsys, "--json", "-c", "2048", path)
    assert code == 0, err
    d = json.loads(out)
    file_size = path.stat().st_size
    assert 7.5e9 < file_size < 8.2e9  # a 13B Q4_K_M, as the card lists it (7.87 GB)
    kv = 2 * 40 * 2048 * 5120 * 2  # keys and values, 40 layers, 2048 positions, 5120 wide, F16
    assert file_size + kv <= d["memory_required_bytes"] <= file_size + kv + (2 << 30)
    assert d["kv_cache_bytes"] == kv and d["n_ctx"] == 2048
    # twice the context: the KV cache doubles
    code, out, _ = info(capsys, "--json", "-c", "4096", path)
    assert json.loads(out)["kv_cache_bytes"] == 2 * kv
    code, out, _ = info(capsys, path)
    assert "memory        " in out and "at context 4096" in out  # the model's own context by default


def test_memory_warning_is_one_line_only_when_short(tmp_path):
    from codeup_tui.engine.memory import MemoryEstimate, available_bytes, memory_warning

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    2097152 kB\n")
    assert available_bytes(meminfo) == 2 << 30
    assert available_bytes(tmp_path / "absent") is None
    need = MemoryEstimate(2048, 7_870_000_000, 1_677_721_600, 300_000_000)
    warning = memory_warning(need, available=2 << 30)
    assert warning is not None and "\n" not in warning
    assert "needs about 9.2 GiB at context 2048" in warning and "2.0 GiB is available" in warning
    assert memory_warning(need, available=16 << 30) is None


def test_info_says_which_prompt_format(capsys):
    path = fixtures_or_skip("ggml-v3", "ggml-llama-Q4_0.ggmlv3.bin")
    code, out, _ = info(capsys, path)
    assert code == 0 and "prompt format alpaca (the file has no chat template)" in out
