"""The 32-block kernels with 8-bit activations (matmul_q8_0 for Q4_0, Q5_0 and Q8_0 weights:
llama.cpp's integer dot products on Q8_0 activations), against float64
dequantize-then-multiply, and against llama.cpp's logits to float rounding where the
kernel keeps llama.cpp's order of operations.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from codeup_tui import engine
from tests.helpers.paths import FIXTURES, fixtures_or_skip
from tests.helpers.quant_matrices import random_matrix
from codeup_tui.engine.ggml_types import GGMLType
from codeup_tui.engine.quants import HAS_Q8_0_KERNEL, QuantMatrix, dequantize_rows, matmul_q8_0
from codeup_tui.engine.quants.activations import quantize_q8_0, round_q8_0
from codeup_tui.engine.summation_order import LLAMA_CPP, summation_order

TYPES = (GGMLType.Q4_0, GGMLType.Q5_0, GGMLType.Q8_0)
TOKENS = (1, 2, 9)
SHAPES = ((1, 32), (7, 64), (16, 96), (17, 256), (203, 576))


def activations(rng, n_tok: int, n_in: int) -> np.ndarray:
    x = rng.standard_normal((n_tok, n_in), dtype=np.float32) * rng.choice(np.float32([0.01, 1.0, 30.0]), size=(n_tok, 1))
    x[:, :32] *= np.float32(rng.integers(0, 2))  # now and then a zero block (d = 0)
    return x


def check(w: QuantMatrix, x: np.ndarray, what: str) -> None:
    ours = matmul_q8_0(w, *quantize_q8_0(x))
    dense = dequantize_rows(w, np.arange(w.n_out)).astype(np.float64)
    ref = round_q8_0(x).astype(np.float64) @ dense.T
    assert ours.shape == ref.shape and ours.dtype == np.float32 and np.isfinite(ours).all(), what
    err, scale = np.abs(ours - ref).max(), np.abs(ref).max()
    assert err <= 1e-5 * scale, f"{what}: max error {err:.3g} against max |ref| {scale:.3g}"


def test_the_types_have_the_kernel():
    assert set(TYPES) <= HAS_Q8_0_KERNEL


@pytest.mark.parametrize("t", TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("n_out, n_in", SHAPES)
def test_random_blocks(t, n_out, n_in):
    rng = np.random.default_rng(n_out * 7919 + n_in + int(t))
    w = random_matrix(t, n_out, n_in, rng)
    for n_tok in TOKENS:
        check(w, activations(rng, n_tok, n_in), f"{t.name} {n_out}x{n_in} tokens={n_tok}")


@pytest.mark.parametrize("t", TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("fill", (0x00, 0xFF, 0x80, 0x7F, 0x88))
def test_extreme_bytes_against_full_scale_activations(t, fill):
    """Weights at the ends of their range (Q8_0: -128 and 127, whose sign trick must not
    overflow) against activations that all round to +-127."""
    rng = np.random.default_rng(fill)
    w = random_matrix(t, 9, 128, rng, fill=fill)
    x = np.where(rng.integers(0, 2, size=(3, 128)) == 1, 1.0, -1.0).astype(np.float32)
    check(w, x, f"{t.name} every byte {fill:#04x}")


def rel_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)) / np.std(b))


@pytest.mark.parametrize("ftype", ["Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_llama_cpp_order_reproduces_its_logits(ftype):
    """In llama.cpp's summation order, Q4_0 (llama.cpp's x86 kernels: per-row fma of each
    block's integer sum), Q4_1, Q5_0 and Q5_1 (its vec_dot lane order) give llama.cpp's logits
    to float rounding, not just within the engine tolerance: one rounding flip anywhere would
    show here as ~1e-2. In the engine's own order Q4_1 sums each block's integers first, and
    its logits are within 0.01 of llama.cpp's (the engine tolerance is 0.02), not to its last
    bits."""
    path = fixtures_or_skip("tiny-llama", f"tiny-llama-{ftype}.gguf")
    tokens = json.loads((FIXTURES / "tiny-llama" / "tiny-llama.json").read_text())["tokens"]
    ref = np.load(FIXTURES / "tiny-llama" / f"tiny-llama-{ftype}.logits.npy")
    with engine.load_model(path) as model:
        with summation_order(LLAMA_CPP):
            assert rel_rms(model.logits(tokens), ref) < 1e-5
        engine_order = rel_rms(model.logits(tokens), ref)
    assert engine_order < (0.01 if ftype == "Q4_1" else 1e-5)


def test_ggml_v3_q4_0_reproduces_todays_llama_cpp():
    path = fixtures_or_skip("ggml-v3", "ggml-llama-Q4_0.ggmlv3.bin")
    cfg = json.loads((FIXTURES / "ggml-v3" / "ggml-llama.json").read_text())
    ref = np.load(FIXTURES / "ggml-v3" / "ggml-llama-Q4_0.logits.npy")
    with engine.load_model(path) as model:
        assert rel_rms(model.logits(cfg["tokens"]), ref) < 1e-5
