"""`codeup convert HF_DIR OUT.gguf`: Hugging Face checkpoints to the GGUF llama.cpp's
convert_hf_to_gguf.py writes, without PyTorch and without running pickled code.

The reference: ../shared/fixtures/hf/ (a checkpoint of tiny-llama and the metadata llama.cpp
wrote for it; its tensors are tiny-llama-F32.gguf's). Checkpoints built here (tests/
hf_builders.py) from tiny-llama-F32.gguf's weights must convert back to those tensors bit
for bit, whatever their container (safetensors, PyTorch zip, sharded or not).
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from codeup_tui import engine
from tests.helpers.paths import fixtures_or_skip
from codeup_tui.engine.cli import main
from codeup_tui.engine.hf.convert import convert_hf_to_gguf
from codeup_tui.engine.hf.vocab import build_vocab
from codeup_tui.engine.quantize.model import quantize_model
from tests.helpers.hf_builders import (
    bpe_tokenizer_json, hf_tensors_from_gguf, llama_config, state_dict_pickle, write_safetensors, write_spm_tokenizer,
    write_torch_zip,
)

gguf = pytest.importorskip("gguf")  # llama.cpp's own reader, for value types
V = gguf.GGUFValueType


@pytest.fixture(scope="module")
def tiny():
    with engine.open_model_file(fixtures_or_skip("tiny-llama", "tiny-llama-F32.gguf")) as mf:
        yield mf


@pytest.fixture(scope="module")
def tiny_hf(tiny):
    return hf_tensors_from_gguf(tiny)


def assert_same_tensors(out, ref_path, names_in_order=None):
    with engine.open_model_file(out) as got, engine.open_model_file(ref_path) as ref:
        assert set(got.tensors) == set(ref.tensors)
        for name, t in ref.tensors.items():
            g = got.tensors[name]
            assert (g.ggml_type, g.shape) == (t.ggml_type, t.shape), name
            assert np.array_equal(got.tensor_bytes_view(name), ref.tensor_bytes_view(name)), name
        if names_in_order is not None:
            assert list(got.tensors) == names_in_order


def _plain(v):
    return v.tolist() if isinstance(v, np.ndarray) else v


# ---- the llama.cpp-made reference ------------------------------------------------------------
@pytest.mark.parametrize("folder", ["hf-safetensors", "hf-bin"])
def test_fixture_checkpoint_gives_llamacpp_tensors_and_metadata(folder, tmp_path):
    src = fixtures_or_skip("hf", folder)
    ref = json.loads(fixtures_or_skip("hf", "llamacpp-convert-metadata.json").read_text())
    out = tmp_path / "out.gguf"
    # llama.cpp named the model after its folder; the .bin folder has another name
    convert_hf_to_gguf(src, out, outtype="f32", name=None if folder == "hf-safetensors" else "Hf Safetensors")
    order = [t[0] for t in ref["__tensors__"]] if folder == "hf-safetensors" else None
    assert_same_tensors(out, fixtures_or_skip("tiny-llama", "tiny-llama-F32.gguf"), order)
    with engine.open_model_file(out) as mf:
        keys = list(mf.metadata)
        assert keys == [k for k in ref if k != "__tensors__"]
        for key in keys:
            assert _plain(mf.metadata[key]) == ref[key], key
        assert [[n, t.ggml_type.name, list(t.shape)] for n, t in mf.tensors.items()] == (
            ref["__tensors__"] if order else [[n, t.ggml_type.name, list(t.shape)] for n, t in mf.tensors.items()])
    # value types as llama.cpp writes them (it checks them when loading)
    fields = gguf.GGUFReader(out).fields
    assert fields["llama.block_count"].types == [V.UINT32]
    assert fields["llama.rope.freq_base"].types == [V.FLOAT32]
    assert fields["tokenizer.ggml.tokens"].types == [V.ARRAY, V.STRING]
    assert fields["tokenizer.ggml.scores"].types == [V.ARRAY, V.FLOAT32]
    assert fields["tokenizer.ggml.token_type"].types == [V.ARRAY, V.INT32]
    assert fields["tokenizer.ggml.bos_token_id"].types == [V.UINT32]
    assert fields["tokenizer.ggml.add_bos_token"].types == [V.BOOL]


def test_converted_fixture_runs_as_llama_cpp(tmp_path):
    out = tmp_path / "tiny.gguf"
    assert main(["convert", str(fixtures_or_skip("hf", "hf-bin")), str(out), "--outtype", "f32", "-q"]) == 0
    tokens = json.loads(fixtures_or_skip("tiny-llama", "tiny-llama.json").read_text())["tokens"]
    ref = np.load(fixtures_or_skip("tiny-llama", "tiny-llama-F32.logits.npy"))
    with engine.load_model(out) as model:
        got = model.logits(tokens)
    assert np.sqrt(np.mean((got - ref) ** 2)) / ref.std() < 0.02
    with engine.load_model(fixtures_or_skip("tiny-llama", "tiny-llama-F32.gguf")) as model:
        assert np.array_equal(got, model.logits(tokens))


# ---- checkpoints built here ------------------------------------------------------------------
LAYOUTS = ["safetensors", "safetensors-3-shards", "torch", "torch-2-shards", "torch-f16", "safetensors-bf16"]


def write_checkpoint(folder, tensors, layout):
    names = list(tensors)
    if layout.endswith("-f16"):
        tensors = {n: a.astype(np.float16) for n, a in tensors.items()}
    if layout.endswith("-bf16"):
        tensors = {n: (a.view(np.uint32) >> 16).astype(np.uint16) for n, a in tensors.items()}
    n_shards = int(layout.split("-")[1]) if "shards" in layout else 1
    torch = layout.startswith("torch")
    writer = write_torch_zip if torch else write_safetensors
    stem, ext = ("pytorch_model", "bin") if torch else ("model", "safetensors")
    if n_shards == 1:
        writer(folder / f"{stem}.{ext}", tensors)
        return
    weight_map = {}
    for s in range(n_shards):
        part = f"{stem}-{s + 1:05d}-of-{n_shards:05d}.{ext}"
        chunk = {n: tensors[n] for n in names[s::n_shards]}
        writer(folder / part, chunk)
        weight_map.update({n: part for n in chunk})
    index = f"{stem}.{'bin' if torch else 'safetensors'}.index.json"
    (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_built_checkpoints_convert_back_bit_for_bit(layout, tiny, tiny_hf, tmp_path):
    folder = tmp_path / "CodeUp-Tiny-chat"
    folder.mkdir()
    folder.joinpath("config.json").write_text(json.dumps(llama_config(tiny)))
    write_spm_tokenizer(folder, tiny)
    write_checkpoint(folder, tiny_hf, layout)
    out = tmp_path / "out.gguf"
    outtype = {"torch-f16": "f16", "safetensors-bf16": "bf16"}.get(layout, "f32")
    r = convert_hf_to_gguf(folder, out, outtype=outtype)
    if outtype == "f32":
        assert_same_tensors(out, tiny.path)
    else:  # the checkpoint's halves are written as they are, norms widened to F32
        with engine.open_model_file(out) as mf:
            for name, t in mf.tensors.items():
                want = tiny_hf_gguf_values(tiny, name, outtype)
                assert np.array_equal(np.asarray(mf.tensor_view(name)), want), name
    with engine.open_model_file(out) as mf:
        assert mf.tokenizer.tokens == tiny.tokenizer.tokens
        assert np.array_equal(mf.tokenizer.scores, tiny.tokenizer.scores)
        assert np.array_equal(mf.tokenizer.token_types, tiny.tokenizer.token_types)
        assert mf.metadata["general.name"] == "CodeUp Tiny Chat"
        assert mf.metadata["general.size_label"] == "3.7M"
    assert r.n_tensors == len(tiny.tensors)


def tiny_hf_gguf_values(tiny, name, outtype):
    """The checkpoint's halves; 1-D tensors widened back to float32."""
    a = np.asarray(tiny.tensor_view(name))
    half = a.astype(np.float16) if outtype == "f16" else (a.view(np.uint32) >> 16).astype(np.uint16)
    if a.ndim > 1:
        return half
    return half.astype(np.float32) if outtype == "f16" else (half.astype(np.uint32) << 16).view(np.float32)


def test_bpe_tokenizer_folder(tiny, tiny_hf, tmp_path):
    folder = tmp_path / "bpe-model"
    folder.mkdir()
    tokens = list(tiny.tokenizer.tokens)
    types = [int(t) for t in tiny.tokenizer.token_types]
    merges = ["t o", "to k"]
    folder.joinpath("config.json").write_text(json.dumps(llama_config(tiny)))
    folder.joinpath("tokenizer.json").write_text(json.dumps(bpe_tokenizer_json(tokens, types, merges)))
    folder.joinpath("tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True, "chat_template": "{{ messages }}"}))
    write_safetensors(folder / "model.safetensors", tiny_hf)
    out = tmp_path / "out.gguf"
    convert_hf_to_gguf(folder, out, outtype="f32")
    assert_same_tensors(out, tiny.path)
    with engine.open_model_file(out) as mf:
        md = mf.metadata
        assert (md["tokenizer.ggml.model"], md["tokenizer.ggml.pre"]) == ("gpt2", "llama-bpe")
        assert md["tokenizer.ggml.tokens"] == tokens
        assert md["tokenizer.ggml.merges"] == merges
        assert md["tokenizer.ggml.bos_token_id"] == 1 and md["tokenizer.ggml.eos_token_id"] == 2
        assert md["tokenizer.chat_template"] == "{{ messages }}"
        # control tokens stay control, byte/normal ones become normal (BPE has no byte tokens)
        want = [3 if t == 3 else 1 for t in types]
        assert md["tokenizer.ggml.token_type"].tolist() == want


def test_bpe_vocabulary_as_llama_cpp_writes_it(tmp_path):
    """A real Llama 3 vocabulary (llama.cpp's ggml-vocab-llama-bpe.gguf) as tokenizer.json:
    the tokens, types, merges and pre-tokenizer come back as llama.cpp wrote them."""
    with engine.open_model_file(fixtures_or_skip("vocab", "ggml-vocab-llama-bpe.gguf")) as mf:
        tok = mf.tokenizer
        md = dict(mf.metadata)
    tokens, types = list(tok.tokens), [int(t) for t in tok.token_types]
    tmp_path.joinpath("tokenizer.json").write_text(json.dumps(bpe_tokenizer_json(tokens, types, list(tok.merges))))
    v = build_vocab(tmp_path, {"vocab_size": len(tokens)})
    got = {k: val for k, val, _, _ in v.entries}
    assert got["tokenizer.ggml.pre"] == md["tokenizer.ggml.pre"] == "llama-bpe"
    assert got["tokenizer.ggml.tokens"] == tokens
    assert got["tokenizer.ggml.token_type"].tolist() == types
    assert got["tokenizer.ggml.merges"] == list(tok.merges)


def test_quantized_outtypes(tmp_path):
    src = fixtures_or_skip("hf", "hf-safetensors")
    # f16 and q8_0: what llama.cpp's quantizer makes of the F32 file (same types, same bytes)
    for outtype, ref in (("f16", "F16"), ("q8_0", "Q8_0")):
        out = tmp_path / f"{outtype}.gguf"
        convert_hf_to_gguf(src, out, outtype=outtype)
        assert_same_tensors(out, fixtures_or_skip("tiny-llama", f"tiny-llama-{ref}.gguf"))
    # a k-quant file type: the tensors `codeup quantize` makes from the F32 conversion
    f32 = tmp_path / "f32.gguf"
    convert_hf_to_gguf(src, f32, outtype="f32")
    quantize_model(f32, tmp_path / "q.gguf", "Q4_K_M")
    assert main(["convert", str(src), str(tmp_path / "direct.gguf"), "--outtype", "Q4_K_M", "-q"]) == 0
    with engine.open_model_file(tmp_path / "q.gguf") as q:
        order = list(q.tensors)
    assert_same_tensors(tmp_path / "direct.gguf", tmp_path / "q.gguf", order)


# ---- bad and hostile input -------------------------------------------------------------------
class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile_folder(tmp_path, tiny, pickle_bytes):
    folder = tmp_path / "hostile"
    folder.mkdir()
    folder.joinpath("config.json").write_text(json.dumps(llama_config(tiny)))
    write_spm_tokenizer(folder, tiny)
    write_torch_zip(folder / "pytorch_model.bin", {"x": np.zeros(4, np.float32)}, pickle_bytes=pickle_bytes)
    return folder


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "nested"])
def test_hostile_pickle_is_refused_without_running_anything(kind, tiny, tmp_path, capsys):
    marker = tmp_path / "pwned"
    if kind == "os.system":
        payload = pickle.dumps({"w": _Hostile(marker)}, protocol=2)
        named = f"{os.system.__module__}.system"
    elif kind == "builtins.eval":
        payload = b"\x80\x02cbuiltins\neval\nX" + len(f"open('{marker}','w')").to_bytes(4, "little") + \
            f"open('{marker}','w')".encode() + b"\x85R."
        named = "builtins.eval"
    else:  # a hostile global hidden inside an otherwise valid tensor's arguments
        good = state_dict_pickle([("w", "FloatStorage", "0", 4, (4,), (1,))])
        payload = good.replace(b"ccollections\nOrderedDict\n)R", pickle.dumps(_Hostile(marker), protocol=2)[2:-1])
        named = f"{os.system.__module__}.system"
    folder = hostile_folder(tmp_path, tiny, payload)
    out = tmp_path / "out.gguf"
    assert main(["convert", str(folder), str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err and "refusing" in err
    assert not marker.exists() and not out.exists()
    assert not list(tmp_path.glob(".out.gguf*"))


def test_bad_checkpoints_are_one_line_errors(tiny, tiny_hf, tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    folder.joinpath("config.json").write_text(json.dumps(llama_config(tiny)))
    write_spm_tokenizer(folder, tiny)
    out = tmp_path / "out.gguf"

    def fails(fragment):
        assert main(["convert", str(folder), str(out), "-q"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and fragment in err, err
        assert not out.exists()

    fails("no weights")
    write_torch_zip(folder / "pytorch_model.bin", tiny_hf)
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])  # truncated
    fails("pytorch_model.bin")
    (folder / "pytorch_model.bin").unlink()
    write_safetensors(folder / "model.safetensors", tiny_hf)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-1000])
    fails("beyond the end of the file")
    write_safetensors(folder / "model.safetensors", {**tiny_hf, "model.layers.0.self_attn.mystery.weight": np.zeros(4, np.float32)})
    fails("model.layers.0.self_attn.mystery.weight")
    write_safetensors(folder / "model.safetensors", tiny_hf)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00002-of-00002.safetensors"}}))
    fails("model-00002-of-00002.safetensors: no such file")
    (folder / "model.safetensors.index.json").unlink()
    config = llama_config(tiny)
    config["architectures"] = ["GPTNeoXForCausalLM"]
    folder.joinpath("config.json").write_text(json.dumps(config))
    fails("GPTNeoXForCausalLM")
    assert main(["convert", str(fixtures_or_skip("ggml-v3", "ggml-llama-F32.ggmlv3.bin")), str(out), "--outtype", "f16"]) == 2
    assert "--outtype is for Hugging Face folders" in capsys.readouterr().err


# ---- the PyTorch zip writer of the tests, checked once against PyTorch itself ------------------
def test_torch_zip_writer_and_reader_agree_with_pytorch(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (only this cross-check needs it)")
    from codeup_tui.engine.hf.torch_zip import read_torch_zip

    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.arange(5, dtype=np.float16)}
    ours = tmp_path / "ours.bin"
    write_torch_zip(ours, arrays)
    loaded = torch.load(ours, weights_only=True)
    for k, a in arrays.items():
        assert np.array_equal(loaded[k].numpy(), a)
    theirs = tmp_path / "theirs.bin"
    sd = {"w": torch.arange(24, dtype=torch.float32).reshape(4, 6), "h": torch.ones(3, dtype=torch.bfloat16),
          "t": torch.arange(6, dtype=torch.float16).reshape(2, 3).t()}  # a transposed (strided) view
    torch.save(sd, theirs)
    mf, tensors = read_torch_zip(theirs)
    assert np.array_equal(tensors["w"].array(), sd["w"].numpy())
    assert np.array_equal(tensors["h"].array(), sd["h"].view(torch.int16).numpy().view(np.uint16))
    assert np.array_equal(tensors["t"].array(), sd["t"].numpy())
    mf.close()
    with zipfile.ZipFile(theirs) as z:
        assert any(n.endswith("data.pkl") for n in z.namelist())


def test_llama3_rope_scaling_writes_rope_freqs(tiny, tiny_hf, tmp_path):
    """Llama 3.1's rope_scaling (type llama3) becomes llama.cpp's generated rope_freqs.weight,
    the first tensor: factor 1 for the fastest frequencies, `factor` for the slowest."""
    folder = tmp_path / "llama31"
    folder.mkdir()
    config = llama_config(tiny)
    config["rope_theta"] = 500000.0
    config["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 64}
    folder.joinpath("config.json").write_text(json.dumps(config))
    write_spm_tokenizer(folder, tiny)
    write_safetensors(folder / "model.safetensors", tiny_hf)
    out = tmp_path / "out.gguf"
    convert_hf_to_gguf(folder, out, outtype="f32")
    with engine.open_model_file(out) as mf:
        assert list(mf.tensors)[0] == "rope_freqs.weight"
        f = np.asarray(mf.tensor_view("rope_freqs.weight"))
        assert f.shape == (32,) and f[0] == 1.0 and f[-1] == 8.0 and np.all(np.diff(f) >= 0)
        assert "llama.rope.scaling.type" not in mf.metadata
    tokens = json.loads(fixtures_or_skip("tiny-llama", "tiny-llama.json").read_text())["tokens"][:8]
    with engine.load_model(out) as model:
        assert model.weights.rope_freqs is not None and np.isfinite(model.logits(tokens)).all()


def test_weight_files_given_instead_of_their_folder(capsys, tmp_path):
    for f in ("hf-bin/pytorch_model-00001-of-00002.bin", "hf-safetensors/model.safetensors"):
        path = fixtures_or_skip("hf", *f.split("/"))
        assert main(["convert", str(path), str(tmp_path / "o.gguf")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "give their folder" in err


# ---- qwen2, qwen3, qwen3moe --------------------------------------------------------------------
QWEN_CLASSES = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "qwen3moe": "Qwen3MoeForCausalLM"}
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


@pytest.mark.parametrize("arch", ["qwen2", "qwen3", "qwen3moe"])
def test_qwen_checkpoints_convert_back_bit_for_bit(arch, tmp_path):
    """HF checkpoints made from llama.cpp-layout qwen models (no Q/K permutation for these;
    biases, Q/K norms, experts stacked per layer) give back their tensors and hyperparameters."""
    ref_path = fixtures_or_skip("archs", f"tiny-{arch}-F32.gguf")
    shape = json.loads(fixtures_or_skip("archs", f"tiny-{arch}.json").read_text())["config"]
    folder = tmp_path / f"tiny-{arch}"
    folder.mkdir()
    with engine.open_model_file(ref_path) as mf:
        tensors = hf_tensors_from_gguf(mf, permuted=False)
        md = dict(mf.metadata)
        tok = mf.tokenizer
    config = {"architectures": [QWEN_CLASSES[arch]], "hidden_size": shape["n_embd"], "num_hidden_layers": shape["n_layer"],
              "num_attention_heads": shape["n_head"], "num_key_value_heads": shape["n_head_kv"],
              "intermediate_size": shape["n_ff"], "rope_theta": shape["rope_base"], "rms_norm_eps": md[f"{arch}.attention.layer_norm_rms_epsilon"],
              "max_position_embeddings": 4096, "vocab_size": len(tok.tokens), "tie_word_embeddings": shape["tied"],
              "bos_token_id": 2000, "eos_token_id": 2002}
    if "head_dim" in shape:
        config["head_dim"] = shape["head_dim"]
    if arch == "qwen3moe":
        config.update(num_experts=shape["n_expert"], num_experts_per_tok=shape["n_expert_used"], moe_intermediate_size=shape["n_ff_exp"])
    folder.joinpath("config.json").write_text(json.dumps(config))
    folder.joinpath("tokenizer.json").write_text(json.dumps(bpe_tokenizer_json(
        list(tok.tokens), [int(t) for t in tok.token_types], list(tok.merges), QWEN2_SPLIT)))
    folder.joinpath("tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>", "add_bos_token": False}))
    names = list(tensors)
    write_safetensors(folder / "model-00001-of-00002.safetensors", {n: tensors[n] for n in names[::2]})
    write_safetensors(folder / "model-00002-of-00002.safetensors", {n: tensors[n] for n in names[1::2]})
    out = tmp_path / "out.gguf"
    convert_hf_to_gguf(folder, out, outtype="f32")
    assert_same_tensors(out, ref_path)
    with engine.open_model_file(out) as mf:
        got = mf.metadata
        for key, value in md.items():
            if key.startswith(f"{arch}.") or key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.eos_token_id",
                                                     "tokenizer.ggml.add_bos_token"):
                assert _plain(got[key]) == _plain(value), key
        assert got["tokenizer.ggml.tokens"] == list(tok.tokens)
    # F16 keeps 1-D tensors, norms and the MoE router in F32
    convert_hf_to_gguf(folder, tmp_path / "f16.gguf", outtype="f16")
    with engine.open_model_file(tmp_path / "f16.gguf") as mf:
        for name, t in mf.tensors.items():
            want = "F32" if len(t.shape) == 1 or name.endswith(("_norm.weight", "ffn_gate_inp.weight")) else "F16"
            assert t.ggml_type.name == want, name


def test_codellama_infill_tokens_and_auto_outtype(tiny, tiny_hf, tmp_path):
    """A 32016-token llama vocabulary is CodeLlama's: llama.cpp adds its infill token ids;
    tokenizer_config's add_prefix_space becomes add_space_prefix; --outtype auto keeps bf16."""
    folder = tmp_path / "CodeLlama-7b-hf"
    folder.mkdir()
    config = llama_config(tiny)
    config["vocab_size"] = 32016  # the tokenizer has fewer pieces: the rest are [PAD] tokens
    folder.joinpath("config.json").write_text(json.dumps(config))
    write_spm_tokenizer(folder, tiny)
    tc = json.loads(folder.joinpath("tokenizer_config.json").read_text())
    folder.joinpath("tokenizer_config.json").write_text(json.dumps({**tc, "add_prefix_space": False}))
    write_safetensors(folder / "model.safetensors", {n: (a.view(np.uint32) >> 16).astype(np.uint16) for n, a in tiny_hf.items()})
    out = tmp_path / "out.gguf"
    r = convert_hf_to_gguf(folder, out, outtype="auto")
    assert r.outtype == "bf16"
    with engine.open_model_file(out) as mf:
        md = mf.metadata
        keys = list(md)
        assert [md[f"tokenizer.ggml.{t}_token_id"] for t in ("prefix", "suffix", "middle", "eot")] == [32007, 32008, 32009, 32010]
        assert md["tokenizer.ggml.add_space_prefix"] is False
        assert keys.index("tokenizer.ggml.add_eos_token") < keys.index("tokenizer.ggml.prefix_token_id")
        toks = md["tokenizer.ggml.tokens"]
        assert len(toks) == 32016 and toks[4096] == "[PAD4096]" and md["tokenizer.ggml.token_type"][4096] == 5
        assert md["tokenizer.ggml.scores"][4096] == -10000.0
        assert mf.tensors["blk.0.attn_q.weight"].ggml_type.name == "BF16"


@pytest.mark.parametrize("outtype", ["bf16", "q8_0", "f16"])
def test_outtypes_are_the_bytes_of_llama_cpps_python_quantizers(outtype, tmp_path):
    """convert_hf_to_gguf.py rounds with gguf-py (numpy astype for f16, gguf.quants for bf16
    and q8_0): the same bytes come out of ours."""
    out = tmp_path / "out.gguf"
    convert_hf_to_gguf(fixtures_or_skip("hf", "hf-safetensors"), out, outtype=outtype)
    qtype = {"bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}.get(outtype)
    with engine.open_model_file(out) as got, engine.open_model_file(fixtures_or_skip("tiny-llama", "tiny-llama-F32.gguf")) as ref:
        for name in ref.tensors:
            src = np.array(ref.tensor_view(name))
            if src.ndim == 1:
                want = src.view(np.uint8)
            elif qtype is None:
                want = src.astype(np.float16).view(np.uint8)
            else:
                want = gguf.quants.quantize(src, qtype)
            assert np.array_equal(got.tensor_bytes_view(name), want.reshape(-1)), name
