"""`codeup quantize`: llama.cpp's reference quantizers and per-tensor type mix.

The oracle is llama.cpp itself: ../shared/fixtures/tiny-llama/tiny-llama-TYPE.gguf were
written by llama-quantize from tiny-llama-F32.gguf, and llama.cpp's logits for each are
there too. gguf-py (`gguf.quants`, bit-exact with ggml's C for the types it implements)
checks what has no fixture: BF16, F16/BF16 inputs and requantization.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from codeup_tui import engine
from tests.helpers.paths import FIXTURES, fixtures_or_skip
from codeup_tui.engine.cli import main
from codeup_tui.engine.ggml_types import TYPE_TRAITS, GGMLType
from codeup_tui.engine.quantize import model as quantize_model_module
from codeup_tui.engine.quantize.model import quantize_model
from codeup_tui.engine.quantize.quantizers import QUANTIZERS, quantize
from codeup_tui.engine.quantize.type_mix import plan_tensor_types

gguf = pytest.importorskip("gguf")

FIXTURE_TYPES = ["F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L",
                 "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"]


def rel_rms(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.sqrt(np.mean((ours - ref) ** 2)) / ref.std())


def argmax_agreement(ours: np.ndarray, ref: np.ndarray) -> float:
    return float((ours.argmax(axis=1) == ref.argmax(axis=1)).mean())


def tensor_blocks(t) -> np.ndarray:
    """A gguf-py tensor's bytes as (n_blocks, block bytes)."""
    size = TYPE_TRAITS[GGMLType(int(t.tensor_type))].type_size
    return np.asarray(t.data).reshape(-1).view(np.uint8).reshape(-1, size)


def leftovers(folder: Path) -> list[str]:
    """Temporary files a writer left behind."""
    return [n for n in os.listdir(folder) if n.endswith(".part")]


@pytest.fixture(scope="module")
def tiny_f32() -> Path:
    return fixtures_or_skip("tiny-llama", "tiny-llama-F32.gguf")


@pytest.fixture(scope="module")
def tiny_tokens():
    return json.loads(fixtures_or_skip("tiny-llama", "tiny-llama.json").read_text())["tokens"]


# ---- every file type against llama-quantize's own output ------------------------------------
@pytest.mark.parametrize("ftype", FIXTURE_TYPES)
def test_quantized_tiny_llama_is_llama_quantizes_file(ftype, tiny_f32, tiny_tokens, tmp_path):
    ref_path = FIXTURES / "tiny-llama" / f"tiny-llama-{ftype}.gguf"
    out = tmp_path / f"ours-{ftype}.gguf"
    result = quantize_model(tiny_f32, out, ftype)
    assert result.path == out and out.stat().st_size == result.output_bytes

    ours, ref = gguf.GGUFReader(out), gguf.GGUFReader(ref_path)
    # the same tensors, in the same order, with the same types
    assert [(t.name, t.tensor_type) for t in ours.tensors] == [(t.name, t.tensor_type) for t in ref.tensors]
    # at least 99% of the blocks of every tensor byte-identical (the figure is printed)
    worst = 1.0
    for a, b in zip(ours.tensors, ref.tensors):
        same = float((tensor_blocks(a) == tensor_blocks(b)).all(axis=1).mean())
        worst = min(worst, same)
        assert same >= 0.99, (a.name, same)
    print(f"{ftype}: identical blocks, worst tensor {100 * worst:.2f}%")
    # metadata: the same keys, value types and values; general.file_type set
    assert list(ours.fields) == list(ref.fields)
    for key, field in ref.fields.items():
        mine = ours.fields[key]
        assert mine.types == field.types, key
        assert all(np.array_equal(np.asarray(mine.parts[i]), np.asarray(field.parts[i])) for i in mine.data), key
    # Following llama.cpp's float32 arithmetic operation for operation reproduces its file
    # whole, header and padding included.
    assert out.read_bytes() == ref_path.read_bytes()

    # the engine's logits for our file are within the engine's tolerance of llama.cpp's
    expected = np.load(FIXTURES / "tiny-llama" / f"tiny-llama-{ftype}.logits.npy")
    with engine.load_model(out) as model:
        logits = model.logits(tiny_tokens)
    err, agree = rel_rms(logits, expected), argmax_agreement(logits, expected)
    print(f"{ftype}: logits relative RMS {err:.5f}, argmax agreement {agree:.3f}")
    assert err <= 0.02 and agree >= 0.95


def test_bf16_rounds_to_nearest_even_like_ggml(tiny_f32, tiny_tokens, tmp_path):
    out = tmp_path / "bf16.gguf"
    quantize_model(tiny_f32, out, "BF16")
    src = {t.name: t for t in gguf.GGUFReader(tiny_f32).tensors}
    r = gguf.GGUFReader(out)
    assert int(r.fields["general.file_type"].contents()) == 32
    for t in r.tensors:
        x = np.asarray(src[t.name].data, dtype=np.float32)
        if x.ndim == 1:  # norms stay F32
            assert t.tensor_type == gguf.GGMLQuantizationType.F32
            continue
        assert t.tensor_type == gguf.GGMLQuantizationType.BF16
        want = gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16)
        assert np.array_equal(np.asarray(t.data).view(np.uint8).reshape(-1), want.view(np.uint8).reshape(-1)), t.name
    expected = np.load(FIXTURES / "tiny-llama" / "tiny-llama-F32.logits.npy")
    with engine.load_model(out) as model:
        logits = model.logits(tiny_tokens)
    assert rel_rms(logits, expected) <= 0.02 and argmax_agreement(logits, expected) >= 0.95


def test_bf16_and_f16_special_values():
    x = np.array([np.inf, -np.inf, np.nan, -0.0, 65520.0, 1e-8, 3.0e38, -1.5, 6e-8, 1e-5], np.float32)
    h = quantize(x, GGMLType.F16).view(np.uint16)
    # ggml: a tie at the top of the range and beyond -> inf, tiny -> subnormal or zero,
    # NaN -> the quiet NaN 0x7E00
    assert list(h) == [0x7C00, 0xFC00, 0x7E00, 0x8000, 0x7C00, 0x0000, 0x7C00, 0xBE00, 0x0001, 0x00A8]
    b = quantize(x, GGMLType.BF16).view(np.uint16)
    want = gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16).view(np.uint16)
    assert np.array_equal(b, want)


# ---- kernels on data the fixture does not have --------------------------------------------------
LEGACY = [GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0]


@pytest.mark.parametrize("gtype", LEGACY, ids=lambda t: t.name)
def test_legacy_blocks_match_gguf_py_on_awkward_values(gtype):
    rng = np.random.default_rng(7)
    n = 32 * 64
    cases = [
        rng.standard_normal(n),
        rng.integers(-16, 16, n) / 2.0,  # exact .5 ties: C's roundf and truncations
        np.zeros(n),
        np.full(n, -0.3),
        rng.standard_normal(n) * 1e-30,
        rng.standard_normal(n) * 1e4,
    ]
    for x in cases:
        x = x.astype(np.float32)
        want = gguf.quants.quantize(x.reshape(-1, 32), gguf.GGMLQuantizationType(int(gtype)))
        assert np.array_equal(quantize(x, gtype), want.reshape(-1)), gtype.name


@pytest.mark.parametrize("gtype", list(QUANTIZERS), ids=lambda t: t.name)
def test_threads_give_the_same_bytes(gtype):
    from concurrent.futures import ThreadPoolExecutor

    x = (np.random.default_rng(3).standard_normal(256 * 3000) * 0.05).astype(np.float32)
    with ThreadPoolExecutor(2) as pool:
        assert np.array_equal(quantize(x, gtype, pool=pool), quantize(x, gtype))


@pytest.mark.parametrize("gtype", [GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K],
                         ids=lambda t: t.name)
def test_k_quants_round_trip_close(gtype):
    """Degenerate blocks (zeros, a constant, one spike) stay finite and near the input."""
    from codeup_tui.engine.quants import dequantize

    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 256)).astype(np.float32)
    x[1] = 0
    x[2] = 0.25
    x[3] = 0
    x[3, 17] = 5.0
    x[4] *= 1e-25
    y = dequantize(quantize(x, gtype), gtype, x.size).reshape(x.shape)
    assert np.isfinite(y).all()
    assert np.array_equal(y[1], x[1])
    tol = {GGMLType.Q2_K: 0.6, GGMLType.Q3_K: 0.35, GGMLType.Q4_K: 0.15, GGMLType.Q5_K: 0.08, GGMLType.Q6_K: 0.04}[gtype]
    for row in (0, 5):
        assert rel_rms(y[row : row + 1], x[row : row + 1]) < tol
    assert abs(y[2] - 0.25).max() < 0.02
    assert abs(y[3, 17] - 5.0) < 0.5


# ---- inputs: F16, BF16, quantized ----------------------------------------------------------------
def test_f16_input_is_widened_exactly(tmp_path):
    src = fixtures_or_skip("tiny-llama", "tiny-llama-F16.gguf")
    out = tmp_path / "q8.gguf"
    quantize_model(src, out, "Q8_0")
    inputs = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(src).tensors}
    for t in gguf.GGUFReader(out).tensors:
        if t.tensor_type == gguf.GGMLQuantizationType.Q8_0:
            x = inputs[t.name].astype(np.float32)
            want = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0)
            assert np.array_equal(tensor_blocks(t).reshape(-1), want.reshape(-1)), t.name


def test_bf16_input_quantizes_like_its_float32_values(tiny_f32, tmp_path):
    bf16 = tmp_path / "bf16.gguf"
    quantize_model(tiny_f32, bf16, "BF16")
    out = tmp_path / "q4_0.gguf"
    quantize_model(bf16, out, "Q4_0")
    widened = {  # gguf-py hands BF16 data over as raw bytes
        t.name: (np.asarray(t.data).reshape(-1).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        for t in gguf.GGUFReader(bf16).tensors if t.tensor_type == gguf.GGMLQuantizationType.BF16
    }
    for t in gguf.GGUFReader(out).tensors:
        if t.tensor_type == gguf.GGMLQuantizationType.Q4_0:
            want = gguf.quants.quantize(widened[t.name], gguf.GGMLQuantizationType.Q4_0)
            assert np.array_equal(tensor_blocks(t).reshape(-1), want.reshape(-1)), t.name


def test_requantizing_needs_the_flag_and_dequantizes_first(tmp_path):
    src = fixtures_or_skip("tiny-llama", "tiny-llama-Q8_0.gguf")
    out = tmp_path / "q4_0.gguf"
    with pytest.raises(engine.UsageError, match="already quantized.*--allow-requantize"):
        quantize_model(src, out, "Q4_0")
    assert not out.exists() and leftovers(tmp_path) == []
    quantize_model(src, out, "Q4_0", allow_requantize=True)
    inputs = {t.name: t for t in gguf.GGUFReader(src).tensors}
    for t in gguf.GGUFReader(out).tensors:
        if t.tensor_type == gguf.GGMLQuantizationType.Q4_0:
            s = inputs[t.name]
            x = gguf.quants.dequantize(np.asarray(s.data), s.tensor_type)
            want = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q4_0)
            assert np.array_equal(tensor_blocks(t).reshape(-1), want.reshape(-1)), t.name


def test_same_type_tensors_are_copied_without_the_flag(tmp_path):
    # Q4_0 -> Q4_0: every tensor keeps its type (output.weight is already Q6_K), no requantizing.
    src = fixtures_or_skip("tiny-llama", "tiny-llama-Q4_0.gguf")
    out = tmp_path / "again.gguf"
    quantize_model(src, out, "Q4_0")
    for a, b in zip(gguf.GGUFReader(out).tensors, gguf.GGUFReader(src).tensors):
        assert a.name == b.name and a.tensor_type == b.tensor_type
        assert np.array_equal(np.asarray(a.data), np.asarray(b.data))


# ---- the type mix beyond the fixture -----------------------------------------------------------
def llama_tensors(n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab=32000, output=True):
    hd = n_embd // n_head
    out = [("token_embd.weight", (n_embd, n_vocab)), ("output_norm.weight", (n_embd,))]
    if output:
        out.append(("output.weight", (n_embd, n_vocab)))
    for i in range(n_layer):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", (n_embd,)), (b + "attn_q.weight", (n_embd, n_embd)),
                (b + "attn_k.weight", (n_embd, n_head_kv * hd)), (b + "attn_v.weight", (n_embd, n_head_kv * hd)),
                (b + "attn_output.weight", (n_embd, n_embd)), (b + "ffn_norm.weight", (n_embd,)),
                (b + "ffn_gate.weight", (n_embd, n_ff)), (b + "ffn_up.weight", (n_embd, n_ff)),
                (b + "ffn_down.weight", (n_ff, n_embd))]
    return out


def mix(tensors, ftype, n_layer, n_head, n_head_kv):
    types = plan_tensor_types(tensors, ftype, n_layer=n_layer, n_head=n_head, n_head_kv=n_head_kv)
    return {name: t.name for (name, _), t in zip(tensors, types)}


def test_70b_gqa_lifts_attn_v_and_q3_k_m_counts_attn_v_tensors():
    tensors = llama_tensors(80, 8192, 28672, 64, 8)
    m = mix(tensors, "Q3_K_M", 80, 64, 8)
    assert [m[f"blk.{i}.attn_v.weight"] for i in (0, 1, 2, 79)] == ["Q5_K", "Q5_K", "Q5_K", "Q5_K"]  # 70B bump
    assert [m[f"blk.{i}.ffn_down.weight"] for i in (0, 4, 5, 79)] == ["Q5_K", "Q5_K", "Q4_K", "Q4_K"]  # i < 80/16
    assert m["blk.0.attn_output.weight"] == "Q4_K" and m["blk.0.attn_q.weight"] == "Q3_K"
    assert mix(tensors, "Q2_K", 80, 64, 8)["blk.3.attn_v.weight"] == "Q5_K"  # Q4_K (GQA), then the 70B bump
    m = mix(llama_tensors(32, 4096, 14336, 32, 8), "Q2_K", 32, 32, 8)
    assert m["blk.3.attn_v.weight"] == "Q4_K"  # n_head / n_head_kv >= 4
    m = mix(llama_tensors(32, 4096, 11008, 32, 32), "Q2_K", 32, 32, 32)
    assert m["blk.3.attn_v.weight"] == "Q3_K" and m["blk.3.ffn_down.weight"] == "Q3_K"


def test_q4_k_s_and_tied_output():
    m = mix(llama_tensors(32, 4096, 11008, 32, 32, output=False), "Q4_K_S", 32, 32, 32)
    assert m["token_embd.weight"] == "Q6_K"  # no output.weight: the embedding is the output
    assert [m[f"blk.{i}.attn_v.weight"] for i in range(6)] == ["Q5_K"] * 4 + ["Q4_K"] * 2
    assert [m[f"blk.{i}.ffn_down.weight"] for i in range(6)] == ["Q5_K"] * 4 + ["Q4_K"] * 2


def test_rows_that_do_not_fit_fall_back_as_llama_cpp_does():
    # n_embd 288: 32-blocks fit, 256-blocks do not; n_ff 784: not even 32-blocks fit.
    tensors = llama_tensors(2, 288, 784, 4, 1, n_vocab=300)
    for ftype, want in [("Q2_K", "Q4_0"), ("Q3_K_M", "Q4_0"), ("Q4_K_M", "Q5_0"), ("Q5_K_S", "Q5_1"), ("Q6_K", "Q8_0")]:
        m = mix(tensors, ftype, 2, 4, 1)
        assert m["blk.0.attn_q.weight"] == want, ftype
        assert m["blk.0.ffn_down.weight"] == "F16" and m["output.weight"] == "Q8_0", ftype
    m = mix(tensors, "Q4_0", 2, 4, 1)  # Q6_K for the output, which falls back to Q8_0
    assert (m["blk.0.attn_q.weight"], m["blk.0.ffn_down.weight"], m["output.weight"]) == ("Q4_0", "F16", "Q8_0")
    assert m["blk.0.attn_norm.weight"] == "F32"


# ---- the command: bad input, atomic output, progress ---------------------------------------------
def cli(capsys, *args):
    code = main(["quantize", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_quantizes_and_summarises(capsys, tiny_f32, tmp_path):
    out = tmp_path / "m.gguf"
    code, stdout, stderr = cli(capsys, tiny_f32, out, "q4_k_m", "-t", "2")
    assert code == 0 and stderr == ""  # not a terminal: no progress line
    assert stdout.startswith(f"wrote {out}: Q4_K_M, 21 tensors (5 F32, 13 Q4_K, 3 Q6_K);") and "MB/s of input" in stdout
    assert out.read_bytes() == (FIXTURES / "tiny-llama" / "tiny-llama-Q4_K_M.gguf").read_bytes()


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown type", "unknown type 'Q9_K' (known: F32, F16, Q4_0"),
        ("quantized input", "tensor token_embd.weight is already quantized (Q4_0); requantizing loses quality"),
        ("missing folder", "missing does not exist"),
        ("existing output", "exists (use --force to overwrite it)"),
        ("same file", "is the input file"),
        ("ggml input", "is a GGML ggjt v3 file: convert it to GGUF first"),
        ("not a model", "not a GGUF or GGML model file"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(case, message, capsys, tiny_f32, tmp_path):
    src, out, ftype = tiny_f32, tmp_path / "out.gguf", "Q4_K_M"
    if case == "unknown type":
        ftype = "Q9_K"
    elif case == "quantized input":
        src = FIXTURES / "tiny-llama" / "tiny-llama-Q4_0.gguf"
    elif case == "missing folder":
        out = tmp_path / "missing" / "out.gguf"
    elif case == "existing output":
        out.write_bytes(b"mine")
    elif case == "same file":
        src = tmp_path / "in.gguf"
        src.write_bytes(tiny_f32.read_bytes())
        out = src
    elif case == "ggml input":
        src = fixtures_or_skip("ggml-v3", "ggml-llama-F32.ggmlv3.bin")
    elif case == "not a model":
        src = tmp_path / "notes.txt"
        src.write_text("hello, world\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, stdout, stderr = cli(capsys, src, out, ftype, "-t", "1")
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("codeup: error: ") and message in stderr, stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing new, nothing lost


class _FullDisk(io.RawIOBase):
    """A file that takes `room` bytes and then fails as a full disk does."""

    def __init__(self, real, room: int) -> None:
        self.real, self.room = real, room

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        n = len(memoryview(b))
        if n > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= n
        return self.real.write(b)

    def flush(self) -> None:
        self.real.flush()

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        if not self.closed:
            super().close()  # flushes first
            self.real.close()


def test_disk_full_is_one_line_and_keeps_the_old_output(capsys, tiny_f32, tmp_path, monkeypatch):
    from codeup_tui.engine.formats import gguf_writer

    real_fdopen = os.fdopen
    monkeypatch.setattr(gguf_writer.os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode), 1_000_000))
    out = tmp_path / "out.gguf"
    out.write_bytes(b"the previous model")
    code, stdout, stderr = cli(capsys, tiny_f32, out, "Q8_0", "--force")
    assert code == 2 and stdout == ""
    assert stderr == f"codeup: error: {out}: cannot write: No space left on device\n"
    assert out.read_bytes() == b"the previous model" and leftovers(tmp_path) == []


def test_not_enough_free_space_is_refused_before_writing(capsys, tiny_f32, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    code, _, stderr = cli(capsys, tiny_f32, tmp_path / "out.gguf", "Q4_0")
    assert code == 2 and "needs 2 MB, only 0 MB free" in stderr
    assert os.listdir(tmp_path) == []


def test_interrupted_run_leaves_no_output(capsys, tiny_f32, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = quantize_model_module.quantize

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(quantize_model_module, "quantize", interrupted)
    code, stdout, stderr = cli(capsys, tiny_f32, tmp_path / "out.gguf", "Q4_K_M")
    assert code == 130 and stderr == "codeup: interrupted\n" and stdout == ""
    assert os.listdir(tmp_path) == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal_only(tiny_f32, tmp_path):
    from codeup_tui.engine.cli.quantize import TensorProgress

    term = TensorProgress("quantizing tiny", stream=_Terminal())
    quantize_model(tiny_f32, tmp_path / "a.gguf", "Q4_0", progress=term)
    term.finish()
    text = term.stream.getvalue()
    last = text.split("\r\x1b[K")[-2]  # the final state, before the line is cleared
    assert re.fullmatch(r"quantizing tiny: \[21/21\] ([0-9.]+)/\1 MB [0-9.,]+ MB/s ETA 0:00  blk\.1\.ffn_up\.weight", last), last
    assert text.endswith("\r\x1b[K")  # the line is cleared at the end
    for quiet, stream in ((False, io.StringIO()), (True, _Terminal())):
        p = TensorProgress("x", stream=stream, quiet=quiet)
        quantize_model(tiny_f32, tmp_path / "b.gguf", "Q4_0", progress=p, overwrite=True)
        p.finish()
        assert stream.getvalue() == ""


def test_metadata_of_every_value_type_is_copied(tmp_path):
    """Keys keep their value types (a u64 stays a u64, an empty or nested array stays one);
    split keys go; general.quantization_version and general.file_type come last."""
    import mmap

    from codeup_tui.engine.formats.gguf_reader import GGUFParser
    from tests.helpers.model_builders import ARRAY, BOOL, F32, F64, I8, I16, I32, I64, STRING, U8, U16, U32, U64, small_llama_gguf

    g = small_llama_gguf()
    g.version, g.alignment = 2, 64
    g.add("general.alignment", U32, 64).add("split.count", U32, 1)  # general.file_type: the builder has it
    extra = [("t.u8", U8, 200, None), ("t.i8", I8, -5, None), ("t.u16", U16, 60000, None), ("t.i16", I16, -300, None),
             ("t.i32", I32, -7, None), ("t.u64", U64, 2**40, None), ("t.i64", I64, -(2**40), None),
             ("t.f64", F64, 0.1, None), ("t.bool", BOOL, True, None), ("t.str", STRING, "▁naïve", None),
             ("t.arr.i16", ARRAY, [1, -2], I16), ("t.arr.bool", ARRAY, [True, False], BOOL),
             ("t.arr.empty", ARRAY, [], STRING), ("t.arr.nested", ARRAY, [(U8, [1, 2]), (STRING, ["a"])], ARRAY)]
    for key, vtype, value, et in extra:
        g.add(key, vtype, value, et)
    src = tmp_path / "in.gguf"
    src.write_bytes(g.build())
    out = tmp_path / "out.gguf"
    quantize_model(src, out, "Q8_0")

    def parse(path):
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            version, metadata, types, *_ = GGUFParser(mm, str(path)).parse()
        return version, metadata, types

    v_in, md_in, ty_in = parse(src)
    v_out, md_out, ty_out = parse(out)
    assert (v_in, v_out) == (2, 3)
    kept = [k for k in md_in if k not in ("general.file_type", "split.count")]
    assert list(md_out) == kept + ["general.quantization_version", "general.file_type"]
    for key in kept:
        assert ty_out[key] == ty_in[key], key
        a, b = md_in[key], md_out[key]
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), key
        elif key == "t.arr.nested":
            assert [x.tolist() if isinstance(x, np.ndarray) else x for x in b] == [[1, 2], ["a"]]
        else:
            assert a == b, key
    assert (md_out["general.quantization_version"], md_out["general.file_type"]) == (2, 7)
    assert gguf.GGUFReader(out).alignment == 64
