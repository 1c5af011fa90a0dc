"""engine.quants: dequantization bit-identical to llama.cpp's gguf-py, fused matmul kernels
that agree with float64 dequantize-then-multiply, the embedding lookup, and the errors."""

from __future__ import annotations

import numba
import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="the gguf package (test oracle) is not installed")
from gguf.quants import dequantize as gguf_dequantize  # noqa: E402

from tests.helpers.paths import FIXTURES, fixtures_or_skip  # noqa: E402
from tests.helpers import model_builders  # noqa: E402
from tests.helpers.model_builders import small_llama_gguf  # noqa: E402
from tests.helpers.quant_matrices import random_matrix  # noqa: E402

from codeup_tui.engine import ModelFileError, UsageError, open_model_file  # noqa: E402
from codeup_tui.engine.ggml_types import TYPE_TRAITS, GGMLType  # noqa: E402
from codeup_tui.engine.quants import row_kernels  # noqa: E402
from codeup_tui.engine.quants import (  # noqa: E402
    KERNELS,
    SUPPORTED_TYPES,
    QuantMatrix,
    UnsupportedTypeError,
    dequantize,
    dequantize_rows,
    matmul,
)

TINY_FILES = sorted((FIXTURES / "tiny-llama").glob("*.gguf")) or [
    pytest.param(None, marks=pytest.mark.skip(reason=f"reference fixtures not found at {FIXTURES} (../shared is absent)"))
]
PLAIN = (GGMLType.F32, GGMLType.F16, GGMLType.BF16)
TYPES = sorted(SUPPORTED_TYPES)

def oracle(raw: np.ndarray, ggml_type: GGMLType, n_rows: int) -> np.ndarray:
    """gguf-py's dequantization of stored bytes, flat float32."""
    qtype = gguf.GGMLQuantizationType(int(ggml_type))
    with np.errstate(all="ignore"):  # random blocks may hold inf / nan scales
        if ggml_type in PLAIN:
            return gguf_dequantize(raw.reshape(-1).view(np.uint8), qtype).reshape(-1).astype(np.float32, copy=False)
        return gguf_dequantize(raw.reshape(n_rows, -1), qtype).reshape(-1)


def assert_same_bits(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    """Bit-identical float32, except that any NaN matches any NaN."""
    assert ours.dtype == np.float32 and ours.shape == ref.shape, what
    a, b = ours.view(np.uint32), ref.view(np.uint32)
    differ = (a != b) & ~(np.isnan(ours) & np.isnan(ref))
    if differ.any():
        i = np.flatnonzero(differ)[:5]
        pytest.fail(f"{what}: {differ.sum()} values differ, e.g. at {i.tolist()}: {ours[i]} vs {ref[i]}")


def dense(w: QuantMatrix) -> np.ndarray:
    """W as float64 (n_out, n_in), through the oracle."""
    return oracle(w.data, w.ggml_type, w.n_out).reshape(w.n_out, w.n_in).astype(np.float64)


def assert_matmul_close(w: QuantMatrix, x: np.ndarray, what: str) -> None:
    y = matmul(w, x)
    assert y.dtype == np.float32 and y.shape == (x.shape[0], w.n_out), what
    wd = dense(w)
    ref = x.astype(np.float64) @ wd.T
    # float32 accumulation: each error within 1e-5 of the size of the terms it sums (the
    # usual bound; a single output can cancel to near zero), and within 1e-4 of max |y|
    scale = np.abs(x).astype(np.float64) @ np.abs(wd).T
    err = np.abs(y - ref)
    assert np.all(err <= 1e-5 * scale + 1e-30), f"{what}: worst {(err / (scale + 1e-30)).max():.2e} of sum|w x|"
    assert err.max() <= 1e-4 * np.abs(ref).max(), f"{what}: worst {err.max() / np.abs(ref).max():.2e} of max|y|"


# ---- dequantization against the oracle ------------------------------------------------------------


@pytest.mark.parametrize("path", TINY_FILES, ids=lambda p: p.name if p else "none")
def test_dequantize_matches_gguf_on_every_fixture_tensor(path):
    with open_model_file(path) as mf:
        for name, t in mf.tensors.items():
            raw = mf.tensor_bytes_view(name)
            ours = dequantize(raw, t.ggml_type, t.n_elements)
            assert_same_bits(ours, oracle(raw, t.ggml_type, t.n_rows), f"{path.name} {name} {t.ggml_type.name}")


def test_fixtures_cover_every_block_type():
    d = fixtures_or_skip("tiny-llama")
    seen = set()
    for path in sorted(d.glob("*.gguf")):
        with open_model_file(path) as mf:
            seen |= {t.ggml_type for t in mf.tensors.values()}
    assert SUPPORTED_TYPES - {GGMLType.BF16} <= seen  # BF16 is covered by random tests below


@pytest.mark.parametrize("t", [t for t in TYPES if t not in PLAIN], ids=lambda t: t.name)
def test_dequantize_random_blocks_match_gguf(t):
    # every byte pattern in quants and packed scales; any f16 scale, inf and nan included
    rng = np.random.default_rng(int(t))
    traits = TYPE_TRAITS[t]
    raw = rng.integers(0, 256, size=(64, traits.type_size), dtype=np.uint8)
    ours = dequantize(raw, t, 64 * traits.block_size)
    assert_same_bits(ours, oracle(raw, t, 64), t.name)


def test_half_conversion_is_numpys_for_all_65536_patterns():
    bits = np.arange(65536, dtype=np.uint16)
    ours = dequantize(bits, GGMLType.F16, bits.size)
    ref = bits.view(np.float16).astype(np.float32)
    # strict: subnormals, signed zeros, infinities and NaN payloads (signalling ones too)
    assert np.array_equal(ours.view(np.uint32), ref.view(np.uint32))


def test_bf16_conversion_for_all_65536_patterns():
    bits = np.arange(65536, dtype=np.uint16)
    ours = dequantize(bits, GGMLType.BF16, bits.size)
    assert np.array_equal(ours.view(np.uint32), bits.astype(np.uint32) << 16)
    assert_same_bits(ours, oracle(bits.view(np.uint8), GGMLType.BF16, 1), "BF16")


def test_dequantize_takes_a_prefix_and_checks_sizes():
    w = random_matrix(GGMLType.Q4_K, 3, 512, np.random.default_rng(0))
    full = dequantize(w.data, GGMLType.Q4_K, 3 * 512)
    assert np.array_equal(dequantize(w.data, GGMLType.Q4_K, 256), full[:256])
    assert dequantize(w.data, GGMLType.Q4_K, 0).shape == (0,)
    with pytest.raises(UsageError, match="multiple"):
        dequantize(w.data, GGMLType.Q4_K, 100)
    with pytest.raises(UsageError, match="bytes"):
        dequantize(w.data, GGMLType.Q4_K, 4 * 512)


# ---- matmul ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", TYPES, ids=lambda t: t.name)
def test_matmul_random_blocks(t):
    rng = np.random.default_rng(1000 + int(t))
    n_in = 512 if TYPE_TRAITS[t].block_size == 256 else 96
    for n_out in (1, 6, 13, 64):  # row counts not divisible by the kernels' group of 4
        w = random_matrix(t, n_out, n_in, rng)
        for n_tok in (1, 7):
            x = rng.standard_normal((n_tok, n_in), dtype=np.float32)
            assert_matmul_close(w, x, f"{t.name} {n_out}x{n_in} tokens={n_tok}")


@pytest.mark.parametrize("path", TINY_FILES, ids=lambda p: p.name if p else "none")
def test_matmul_on_fixture_tensors(path):
    rng = np.random.default_rng(7)
    with open_model_file(path) as mf:
        for name, t in mf.tensors.items():
            if len(t.shape) != 2:
                continue
            w = QuantMatrix.from_model_file(mf, name)
            assert (w.n_in, w.n_out) == t.shape and not w.data.flags.writeable  # zero-copy view
            for n_tok in (1, 7):
                x = rng.standard_normal((n_tok, w.n_in), dtype=np.float32)
                assert_matmul_close(w, x, f"{path.name} {name} {t.ggml_type.name} tokens={n_tok}")


def test_matmul_shapes_out_and_input_forms():
    rng = np.random.default_rng(3)
    w = random_matrix(GGMLType.Q8_0, 10, 64, rng)
    x = rng.standard_normal((3, 64), dtype=np.float32)
    y = matmul(w, x)
    out = np.full((3, 10), np.nan, dtype=np.float32)
    assert matmul(w, x, out) is out and np.array_equal(out, y)
    # one token as a 1-D vector; float64 or strided input is converted
    assert np.array_equal(matmul(w, x[1]), y[1])
    assert np.array_equal(matmul(w, x.astype(np.float64)), y)
    wide = np.zeros((3, 128), dtype=np.float32)
    wide[:, ::2] = x
    assert np.array_equal(matmul(w, wide[:, ::2]), y)
    assert matmul(w, np.zeros((0, 64), np.float32)).shape == (0, 10)
    with pytest.raises(UsageError, match="n_tokens, 64"):
        matmul(w, np.zeros((3, 32), np.float32))
    with pytest.raises(UsageError, match="out must be"):
        matmul(w, x, np.zeros((3, 10), np.float64))


def test_one_compiled_kernel_for_readonly_and_writable_weights():
    rng = np.random.default_rng(4)
    w = random_matrix(GGMLType.Q4_0, 8, 64, rng)
    ro = w.data.view()
    ro.flags.writeable = False
    x = rng.standard_normal((2, 64), dtype=np.float32)
    assert np.array_equal(matmul(w, x), matmul(QuantMatrix(w.ggml_type, 64, 8, ro), x))
    assert np.array_equal(dequantize_rows(w, [1, 2]), dequantize_rows(QuantMatrix(w.ggml_type, 64, 8, ro), [1, 2]))
    f = random_matrix(GGMLType.F16, 8, 64, rng)
    ro = f.data.view()
    ro.flags.writeable = False
    assert np.array_equal(matmul(f, x), matmul(QuantMatrix(f.ggml_type, 64, 8, ro), x))
    # one compiled kernel per type (its tag), whatever the weights' writability; the block
    # types' float product runs through their dequantize kernel
    for kernel, t in ((row_kernels.dequantize_rows, GGMLType.Q4_0), (row_kernels.matmul, GGMLType.F16)):
        tag = numba.typeof(row_kernels.TAGS[t])
        assert len([s for s in kernel.signatures if s[0] == tag]) == 1


# ---- embedding lookup -----------------------------------------------------------------------------


@pytest.mark.parametrize("t", TYPES, ids=lambda t: t.name)
def test_dequantize_rows_picks_the_rows(t):
    rng = np.random.default_rng(2000 + int(t))
    n_in = 512 if TYPE_TRAITS[t].block_size == 256 else 64
    w = random_matrix(t, 9, n_in, rng)
    full = dequantize(w.data, t, 9 * n_in).reshape(9, n_in)
    rows = np.array([8, 0, 3, 3, 1])
    got = dequantize_rows(w, rows)
    assert got.shape == (5, n_in) and got.dtype == np.float32
    assert_same_bits(got, full[rows], t.name)
    assert dequantize_rows(w, []).shape == (0, n_in)
    with pytest.raises(UsageError, match="row ids"):
        dequantize_rows(w, [9])
    with pytest.raises(UsageError, match="row ids"):
        dequantize_rows(w, [-1])


def test_embedding_lookup_on_a_fixture():
    path = fixtures_or_skip("tiny-llama", "tiny-llama-Q4_K_M.gguf")
    with open_model_file(path) as mf:
        t = mf.tensors["token_embd.weight"]
        w = QuantMatrix.from_model_file(mf, "token_embd.weight")
        full = oracle(mf.tensor_bytes_view("token_embd.weight"), t.ggml_type, t.n_rows).reshape(w.n_out, w.n_in)
        tokens = np.array([1, 4095, 17, 1])
        assert_same_bits(dequantize_rows(w, tokens), full[tokens], "token_embd")


# ---- types and errors -----------------------------------------------------------------------------


def test_supported_types():
    assert SUPPORTED_TYPES == frozenset(
        {GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0,
         GGMLType.Q5_1, GGMLType.Q8_0, GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K,
         GGMLType.Q6_K}
    )
    for t in SUPPORTED_TYPES:
        k = KERNELS[t]
        assert (k.BLOCK_ELEMS, k.BLOCK_BYTES) == (TYPE_TRAITS[t].block_size, TYPE_TRAITS[t].type_size)


def test_unsupported_type_is_a_one_line_error(write_file, monkeypatch):
    with pytest.raises(UnsupportedTypeError) as e:
        dequantize(np.zeros(66, np.uint8), GGMLType.IQ2_XXS, 256)
    assert "IQ2_XXS" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UsageError, match="Q8_1"):
        QuantMatrix(GGMLType.Q8_1, 32, 1, np.zeros((1, 36), np.uint8))
    with pytest.raises(UsageError, match="type 99"):
        dequantize(np.zeros(4, np.uint8), 99, 1)

    iq2 = GGMLType.IQ2_XS
    monkeypatch.setitem(model_builders.BLOCKS, int(iq2), (TYPE_TRAITS[iq2].block_size, TYPE_TRAITS[iq2].type_size))
    g = small_llama_gguf()
    g.add_tensor("extra.iq2", int(iq2), (256, 2), seed=5)
    vals = np.linspace(-2, 2, 96, dtype=np.float32)
    g.add_tensor("extra.bf16", int(GGMLType.BF16), (32, 3), (vals.view(np.uint32) >> 16).astype(np.uint16).tobytes())
    with open_model_file(write_file(g.build())) as mf:
        with pytest.raises(ModelFileError) as e:
            QuantMatrix.from_model_file(mf, "extra.iq2")
        msg = str(e.value)
        assert "extra.iq2" in msg and "IQ2_XS" in msg and "\n" not in msg
        with pytest.raises(ModelFileError, match="2 dimensions"):
            QuantMatrix.from_model_file(mf, "output_norm.weight")
        with pytest.raises(ModelFileError, match="missing"):
            QuantMatrix.from_model_file(mf, "no.such.tensor")
        w = QuantMatrix.from_model_file(mf, "extra.bf16")  # BF16 through a file
        assert w.data.dtype == np.uint16 and w.data.shape == (3, 32)
        assert_matmul_close(w, np.ones((2, 32), np.float32), "BF16 from a file")


def test_quant_matrix_checks_its_data():
    with pytest.raises(UsageError, match="multiple of 32"):
        QuantMatrix(GGMLType.Q4_0, 48, 1, np.zeros((1, 27), np.uint8))
    with pytest.raises(UsageError, match="must be uint8"):
        QuantMatrix(GGMLType.Q4_0, 64, 2, np.zeros((2, 35), np.uint8))
    with pytest.raises(UsageError, match="float16"):
        QuantMatrix(GGMLType.F16, 8, 2, np.zeros((2, 8), np.float32))
    w = QuantMatrix(GGMLType.Q6_K, 512, 3, np.zeros((3, 420), np.uint8))
    assert (w.row_bytes, w.nbytes) == (420, 1260)
