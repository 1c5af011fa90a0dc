"""LoRA adapters: applied at evaluation (--lora, --lora-scaled, load_model(lora=...)),
merged (codeup export-lora) and converted from PEFT (codeup convert-lora).

Reference: ../shared/fixtures/lora/ — an adapter for tiny-llama in llama.cpp's GGUF adapter
format, with llama.cpp's logits at scale 1.0 and 0.5 (llama.cpp's own merged-in-numpy file
agrees with them to 4e-5 relative RMS).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from codeup_tui import engine
from tests.helpers.paths import fixtures_or_skip
from codeup_tui.engine.cli import main
from codeup_tui.engine.formats.gguf_reader import GGUFParser
from codeup_tui.engine.formats.gguf_writer import GGUFWriter
from codeup_tui.engine.quantize.model import copy_metadata
from tests.helpers.hf_builders import hf_name, unpermute, write_safetensors, write_torch_zip


def rel_rms(ours, ref):
    return float(np.sqrt(np.mean((ours - ref) ** 2)) / ref.std())


@pytest.fixture(scope="module")
def lora_path():
    return fixtures_or_skip("lora", "tiny-llama-lora.gguf")


@pytest.fixture(scope="module")
def base_path():
    return fixtures_or_skip("tiny-llama", "tiny-llama-F32.gguf")


@pytest.fixture(scope="module")
def tokens():
    return json.loads(fixtures_or_skip("lora", "tiny-llama-lora.json").read_text())["tokens"]


def logits(path, tokens, lora=None):
    with engine.load_model(path, lora=lora) as model:
        return model.logits(tokens)


@pytest.mark.parametrize("scale", ["1.0", "0.5"])
def test_adapter_logits_match_llama_cpp(scale, base_path, lora_path, tokens):
    ref = np.load(fixtures_or_skip("lora", f"tiny-llama-lora.scale{scale}.logits.npy"))
    got = logits(base_path, tokens, [(lora_path, float(scale))])
    assert rel_rms(got, ref) < 1e-3  # measured 3e-5; the adapter itself moves them by 24%
    assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.95
    assert rel_rms(logits(base_path, tokens), ref) > 0.05  # the adapter is really applied


def adapter_arrays(path):
    """{base tensor name: (A (rank, n_in), B (n_out, rank))} and alpha, read independently."""
    with engine.open_model_file(path) as mf:
        out = {}
        for name in mf.tensors:
            base, part = name.rsplit(".", 1)
            out.setdefault(base, {})[part] = np.array(mf.tensor_view(name))
        return {k: (v["lora_a"], v["lora_b"]) for k, v in out.items()}, float(mf.metadata["adapter.lora.alpha"])


def test_adapter_equals_weights_merged_in_numpy(base_path, lora_path, tokens, tmp_path):
    pairs, alpha = adapter_arrays(lora_path)
    merged_path = tmp_path / "merged.gguf"
    with engine.open_model_file(base_path) as mf:
        w = GGUFWriter(merged_path)
        copy_metadata(w, mf.metadata, GGUFParser(mf._mm, str(base_path)).parse()[2])
        data = []
        for name, t in mf.tensors.items():
            a = np.array(mf.tensor_view(name), dtype=np.float32)
            if name in pairs:
                A, B = pairs[name]
                a = a + 0.5 * alpha / A.shape[0] * (B.astype(np.float64) @ A).astype(np.float32)
            w.add_tensor_info(name, t.ggml_type, t.shape)
            data.append(a)
        w.write(data)
    want = logits(merged_path, tokens)
    got = logits(base_path, tokens, [(lora_path, 0.5)])
    assert rel_rms(got, want) < 1e-4
    # two adapters add up: the same adapter twice at 0.25
    twice = logits(base_path, tokens, [(lora_path, 0.25), (lora_path, 0.25)])
    assert rel_rms(twice, want) < 1e-4
    # scale 0 is the base model exactly; a bare path means scale 1
    assert np.array_equal(logits(base_path, tokens, [(lora_path, 0.0)]), logits(base_path, tokens))
    assert np.array_equal(logits(base_path, tokens, [str(lora_path)]), logits(base_path, tokens, [(lora_path, 1.0)]))


@pytest.mark.parametrize("base", ["F32", "Q8_0"])
def test_export_lora_gives_the_adapter_logits(base, lora_path, tokens, tmp_path, capsys):
    base_path = fixtures_or_skip("tiny-llama", f"tiny-llama-{base}.gguf")
    out = tmp_path / "merged.gguf"
    assert main(["export-lora", "-m", str(base_path), "--lora-scaled", str(lora_path), "0.5", "-o", str(out)]) == 0
    assert "merged into 8 tensors" in capsys.readouterr().out
    with engine.open_model_file(out) as m, engine.open_model_file(base_path) as b:
        assert list(m.metadata) == list(b.metadata)
        assert {n: t.ggml_type for n, t in m.tensors.items()} == {n: t.ggml_type for n, t in b.tensors.items()}
        # tensors no adapter touches are copied byte for byte
        assert np.array_equal(m.tensor_bytes_view("blk.0.ffn_up.weight"), b.tensor_bytes_view("blk.0.ffn_up.weight"))
    merged = logits(out, tokens)
    applied = logits(base_path, tokens, [(lora_path, 0.5)])
    # F32: float rounding only; Q8_0: the merged weights are re-quantized
    assert rel_rms(merged, applied) < (1e-4 if base == "F32" else 0.02)
    ref = np.load(fixtures_or_skip("lora", "tiny-llama-lora.scale0.5.logits.npy"))
    assert rel_rms(merged, ref) < 0.02


def write_peft(folder, lora_path, n_head, n_head_kv, torch=False):
    """The fixture adapter as PEFT writes it: HF names, B's Q/K rows in HF's order."""
    pairs, alpha = adapter_arrays(lora_path)
    tensors = {}
    for name, (A, B) in pairs.items():
        stem = "base_model.model." + hf_name(name)[: -len(".weight")]
        if name.endswith("attn_q.weight"):
            B = unpermute(B, n_head)
        elif name.endswith("attn_k.weight"):
            B = unpermute(B, n_head_kv)
        tensors[stem + ".lora_A.weight"] = A
        tensors[stem + ".lora_B.weight"] = np.ascontiguousarray(B)
    folder.mkdir()
    folder.joinpath("adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 8, "lora_alpha": alpha, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
         "base_model_name_or_path": "tiny-llama"}))
    if torch:
        write_torch_zip(folder / "adapter_model.bin", tensors)
    else:
        write_safetensors(folder / "adapter_model.safetensors", tensors)


@pytest.mark.parametrize("container,base", [("safetensors", "gguf"), ("torch", "hf-folder")])
def test_converted_peft_adapter_equals_the_gguf_adapter(container, base, base_path, lora_path, tokens, tmp_path, capsys):
    peft = tmp_path / "peft"
    write_peft(peft, lora_path, 4, 2, torch=container == "torch")
    out = tmp_path / "adapter.gguf"
    base_arg = base_path if base == "gguf" else fixtures_or_skip("hf", "hf-safetensors")
    assert main(["convert-lora", str(peft), str(out), "--base", str(base_arg), "--outtype", "f32"]) == 0
    with engine.open_model_file(out) as got, engine.open_model_file(lora_path) as ref:
        assert got.metadata["general.type"] == "adapter" and got.metadata["adapter.type"] == "lora"
        assert got.metadata["adapter.lora.alpha"] == ref.metadata["adapter.lora.alpha"]
        assert set(got.tensors) == set(ref.tensors)
        for name, t in ref.tensors.items():
            assert got.tensors[name].shape == t.shape
            assert np.array_equal(got.tensor_bytes_view(name), ref.tensor_bytes_view(name)), name
    assert np.array_equal(logits(base_path, tokens, [out]), logits(base_path, tokens, [lora_path]))
    # Q/K rows depend on the base's heads: no --base is one line
    capsys.readouterr()
    assert main(["convert-lora", str(peft), str(tmp_path / "x.gguf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--base" in err and not (tmp_path / "x.gguf").exists()


def test_mismatched_adapter_is_one_line_naming_the_tensor(base_path, lora_path, tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    w = GGUFWriter(bad)
    w.add_metadata("general.architecture", "llama")
    w.add_metadata("general.type", "adapter")
    w.add_metadata("adapter.type", "lora")
    w.add_metadata("adapter.lora.alpha", 16.0, type="f32")
    w.add_tensor_info("blk.1.attn_k.weight.lora_a", "F32", (256, 8), np.zeros((8, 256), np.float32))
    w.add_tensor_info("blk.1.attn_k.weight.lora_b", "F32", (8, 256), np.zeros((256, 8), np.float32))  # K has 128 rows
    w.write()
    with pytest.raises(engine.ModelFileError, match=r"blk\.1\.attn_k\.weight"):
        engine.load_model(base_path, lora=[(bad, 1.0)])
    for argv in (["run", "-m", str(base_path), "--lora", str(bad), "-p", "x", "-n", "1"],
                 ["export-lora", "-m", str(base_path), "--lora", str(bad), "-o", str(tmp_path / "m.gguf")],
                 ["run", "-m", str(base_path), "--lora", str(base_path), "-p", "x", "-n", "1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
    assert not (tmp_path / "m.gguf").exists()


# ---- codeup-tui: the `lora` config key and the flags ----------------------------------------
def test_tui_lora_config_key_and_flags(base_path, lora_path, tokens, tmp_path):
    from codeup_tui.tui.cli import build_parser, lora_adapters
    from codeup_tui.tui.config import Config, ConfigError, load_config, save_config
    from codeup_tui.tui.model_loader import ModelSource, open_model

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'threads = 2\nlora = [{{ path = "{lora_path}", scale = 0.5 }}, "{lora_path}"]\n')
    config = load_config(cfg)
    assert config.lora == ((lora_path, 0.5), (lora_path, 1.0))
    save_config(Config(cfg, config.values, config.keys, config.lora))  # the settings screen keeps it
    assert load_config(cfg).lora == config.lora
    for bad in ('lora = 3\n', 'lora = [{ path = "a.gguf", scale = "x" }]\n', 'lora = [""]\n'):
        cfg.write_text(bad)
        with pytest.raises(ConfigError) as e:
            load_config(cfg)
        assert "lora" in str(e.value) and "\n" not in str(e.value)

    args = build_parser().parse_args(["--lora-scaled", str(lora_path), "0.25"])
    assert lora_adapters(args, config) == ((lora_path, 0.25),)  # flags replace the file's list
    assert lora_adapters(build_parser().parse_args([]), config) == config.lora

    # the local model is loaded with them: same logits as the engine's API
    model = open_model(ModelSource(path=base_path, lora=((lora_path, 0.5),)), lambda stage, text: None)
    with model:
        got = model.logits(tokens)
    assert np.array_equal(got, logits(base_path, tokens, [(lora_path, 0.5)]))
