"""qwen2, qwen3 and qwen3moe against llama.cpp (../shared/fixtures/archs): logits batched and
token by token, `codeup info`, `codeup quantize`'s bytes, broken files, synthetic shapes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.helpers.paths import FIXTURES, fixtures_or_skip

from codeup_tui import engine
from codeup_tui.engine import ModelFileError
from codeup_tui.engine.cli import main
from codeup_tui.engine.quantize.model import quantize_model

ARCHS = ["qwen2", "qwen3", "qwen3moe"]
FTYPES = ["F32", "Q8_0", "Q4_K_M"]


def rel_rms(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.sqrt(np.mean((ours - ref) ** 2)) / ref.std())


def argmax_agreement(ours: np.ndarray, ref: np.ndarray) -> float:
    return float((ours.argmax(axis=1) == ref.argmax(axis=1)).mean())


def arch_file(arch: str, ftype: str):
    return fixtures_or_skip("archs", f"tiny-{arch}-{ftype}.gguf")


def arch_config(arch: str) -> dict:
    return json.loads(fixtures_or_skip("archs", f"tiny-{arch}.json").read_text())


@pytest.mark.parametrize("ftype", FTYPES)
@pytest.mark.parametrize("arch", ARCHS)
def test_logits_match_llama_cpp_batched_and_token_by_token(arch, ftype):
    path = arch_file(arch, ftype)
    ref = np.load(FIXTURES / "archs" / f"tiny-{arch}-{ftype}.logits.npy")
    tokens = arch_config(arch)["tokens"]
    with engine.load_model(path) as model:
        assert model.info.architecture == arch
        batched = model.logits(tokens)
        model.reset()
        one_by_one = np.concatenate([model.eval([t]) for t in tokens])
    assert batched.shape == one_by_one.shape == ref.shape
    bound = 1e-4 if ftype == "F32" else 0.02
    for how, ours in (("batched", batched), ("token by token", one_by_one)):
        err, agree = rel_rms(ours, ref), argmax_agreement(ours, ref)
        print(f"{arch} {ftype} {how}: relative RMS {err:.6f}, argmax agreement {agree:.3f}")
        assert err <= bound and agree >= 0.95, (how, err, agree)


def test_moe_reads_only_the_chosen_experts(monkeypatch):
    """A token's feed-forward multiplies by expert_used_count experts' matrices, no more;
    a batch multiplies each chosen expert once, for all the tokens that chose it."""
    from codeup_tui.engine import llama

    path = arch_file("qwen3moe", "Q8_0")
    tokens = arch_config("qwen3moe")["tokens"]
    with engine.load_model(path, mmap=True) as model:  # mapped: the copy into memory would move them
        moe = model.weights.layers[0].moe
        expert_ids = {id(m): e for e, m in enumerate(moe.gate)}
        # each expert a view of the mapped 3-D tensor, not a copy made at load
        assert np.shares_memory(moe.gate[1].flat, model.file.tensor_view("blk.0.ffn_gate_exps.weight"))
        calls: list[tuple[int, int]] = []
        real = llama.project_many

        def spy(ws, x, rounded=None):
            if id(ws[0]) in expert_ids:
                calls.append((expert_ids[id(ws[0])], len(x)))
            return real(ws, x, rounded)

        monkeypatch.setattr(llama, "project_many", spy)
        model.logits(tokens[:1])
        assert len(calls) == 2  # layer 0: 2 of 8 experts
        calls.clear()
        model.logits(tokens)
        first_layer = calls[: len({e for e, _ in calls[:8]})]
        assert len({e for e, _ in first_layer}) == len(first_layer)  # each expert once
        assert sum(n for _, n in first_layer) == 2 * len(tokens)  # 2 per token


def test_info_shows_experts_active_parameters_and_head_size(capsys):
    path = arch_file("qwen3moe", "Q4_K_M")
    assert main(["info", "--json", str(path)]) == 0
    d = json.loads(capsys.readouterr().out)
    hp = d["hparams"]
    assert (hp["n_expert"], hp["n_expert_used"], hp["n_ff_exp"], hp["head_dim"]) == (8, 2, 256, 64)
    experts = 2 * 3 * 256 * 256 * 8  # 2 layers, gate/up/down, 8 experts of 256 x 256
    assert d["n_params_active"] == d["n_params"] - experts * 6 // 8
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "experts 8 (2 used per token, n_ff 256 each)" in text and "head_dim 64" in text
    # qwen3: the head size from key_length, not n_embd / n_head (256 / 8 = 32)
    assert main(["info", "--json", str(arch_file("qwen3", "F32"))]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["hparams"]["head_dim"] == 64 and d["hparams"]["n_expert"] == 0
    assert d["n_params_active"] == d["n_params"]


@pytest.mark.parametrize("ftype", ["Q8_0", "Q4_K_M"])
@pytest.mark.parametrize("arch", ARCHS)
def test_quantize_writes_llama_cpps_file(arch, ftype, tmp_path):
    src, ref = arch_file(arch, "F32"), arch_file(arch, ftype)
    out = tmp_path / "q.gguf"
    quantize_model(src, out, ftype)
    with engine.open_model_file(out) as ours, engine.open_model_file(ref) as theirs:
        assert {n: t.ggml_type.name for n, t in ours.tensors.items()} == {
            n: t.ggml_type.name for n, t in theirs.tensors.items()
        }
    assert out.read_bytes() == ref.read_bytes()


def _patched(tmp_path, arch: str, old: bytes, new: bytes):
    """The Q8_0 fixture with one byte string of its header replaced (same length)."""
    data = arch_file(arch, "Q8_0").read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    out = tmp_path / f"broken-{arch}.gguf"
    out.write_bytes(data.replace(old, new))
    return out


def test_moe_file_without_an_expert_tensor_names_it(tmp_path, capsys):
    path = _patched(tmp_path, "qwen3moe", b"blk.1.ffn_up_exps.weight", b"blk.1.ffn_up_exps.weighX")
    with pytest.raises(ModelFileError, match=r"missing tensor blk\.1\.ffn_up_exps\.weight"):
        engine.load_model(path)
    assert main(["run", "-m", str(path), "-p", "hi", "-n", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "blk.1.ffn_up_exps.weight" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_moe_file_with_another_expert_count_names_it(tmp_path):
    import struct

    key = b"qwen3moe.expert_count"
    old = key + struct.pack("<I", 4) + struct.pack("<I", 8)  # u32 8
    path = _patched(tmp_path, "qwen3moe", old, key + struct.pack("<I", 4) + struct.pack("<I", 6))
    with pytest.raises(ModelFileError, match=r"blk\.0\.ffn_gate_exps\.weight holds 8 experts, but qwen3moe\.expert_count is 6"):
        engine.load_model(path)


def test_unsupported_architecture_lists_the_supported_ones(tmp_path):
    import struct

    value = b"general.architecture" + struct.pack("<IQ", 8, 5)  # a string of 5 bytes
    path = _patched(tmp_path, "qwen2", value + b"qwen2", value + b"gemma")
    with pytest.raises(ModelFileError, match=r"architecture 'gemma' is not supported \(supported: llama, qwen2, qwen3, qwen3moe\)"):
        engine.load_model(path)


def test_synth_qwen_shapes_have_their_architectures_tensors():
    from codeup_tui.engine.synth import SHAPES, tensor_plan

    plan = {name: (t.name, shape) for name, t, shape in tensor_plan(replace(SHAPES["qwen3-30b-a3b"], n_layer=2), "Q4_K_M")}
    assert plan["blk.1.ffn_gate_exps.weight"] == ("Q4_K", (2048, 768, 128))
    assert plan["blk.1.ffn_down_exps.weight"][1] == (768, 2048, 128)
    assert plan["blk.0.ffn_gate_inp.weight"] == ("F32", (2048, 128))
    assert plan["blk.0.attn_q.weight"][1] == (2048, 32 * 128)  # head 128, not 2048 / 32
    assert plan["blk.0.attn_k_norm.weight"] == ("F32", (128,))
    assert "blk.0.ffn_up.weight" not in plan
    plan = {name: shape for name, _, shape in tensor_plan(replace(SHAPES["qwen2.5-7b"], n_layer=1), "Q4_K_M")}
    assert plan["blk.0.attn_k.bias"] == (512,) and "blk.0.attn_q_norm.weight" not in plan


def test_synth_small_moe_runs(tmp_path):
    from codeup_tui.engine.synth import SHAPES, synth_model

    shape = replace(SHAPES["qwen3-30b-a3b"], name="moe-small", n_vocab=300, n_embd=256, n_layer=2, n_head=4,
                    n_head_kv=2, key_length=64, n_expert=8, n_expert_used=2, n_ff_exp=256)
    out = tmp_path / "moe.gguf"
    synth_model(out, shape, "Q4_K_M", vocab="generated")
    with engine.load_model(out) as model:
        assert (model.info.architecture, model.info.n_expert, model.info.n_expert_used) == ("qwen3moe", 8, 2)
        logits = model.logits([1, 5, 9, 200])
    assert logits.shape == (4, 300) and np.isfinite(logits).all()


@pytest.mark.parametrize("arch", ["qwen2", "qwen3"])
def test_context_shift_rerotates_keys_in_the_neox_style(arch):
    """Layer 0's keys depend only on the token and its position: after dropping 8 positions
    the cached keys must be those of a fresh evaluation at the new positions (to the
    half-precision rounding), which only the architecture's own rotation gives."""
    from codeup_tui.engine.attention import keys_at
    from codeup_tui.engine.llama import from_f16_bits

    tokens = arch_config(arch)["tokens"]
    with engine.load_model(arch_file(arch, "F32")) as model:
        model.eval(tokens[:20])
        model.shift_context(4, 8)
        shifted = from_f16_bits(keys_at(model.cache.k[0], 4, 12))
        model.reset()
        model.eval(tokens[:4] + tokens[12:20])
        fresh = from_f16_bits(keys_at(model.cache.k[0], 4, 12))
    assert np.abs(shifted - fresh).max() <= 2e-3 * np.abs(fresh).max()
