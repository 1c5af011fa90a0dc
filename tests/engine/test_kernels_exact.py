"""The fast kernels against copies of the formulations they replaced: bit-identical output.

The engine reproduces llama.cpp's logits by reproducing its order of float operations, so a
faster kernel may reorganise loops but must not change a single result bit. Each reference
below is the kernel as it was before it was made fast (a plain numba loop in the same
arithmetic order); the tests compare with np.array_equal on random blocks and fixture
tensors, for one token and several batch sizes, and row counts that are not multiples of
the kernels' row groups.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, prange

from tests.helpers.paths import FIXTURES
from tests.helpers.quant_matrices import random_matrix

from codeup_tui.engine import open_model_file
from codeup_tui.engine.ggml_math import fma32
from codeup_tui.engine.ggml_types import GGMLType
from codeup_tui.engine.quants import QuantMatrix, _flat_for_kernel, matmul_q8_1
from codeup_tui.engine.quants._common import MATH_EXACT, MATH_FAST, group_of_rows, read_f16_fast
from codeup_tui.engine.quants.activations import quantize_q8_1
from codeup_tui.engine.summation_order import ENGINE, LLAMA_CPP, summation_order

TOKENS = (1, 2, 5, 8, 13, 33)
SHAPES = ((1, 32), (7, 64), (16, 96), (17, 64), (37, 160), (64, 576), (203, 256))


# ---- Q4_1 x Q8_1 in llama.cpp's order (summation_order.LLAMA_CPP): the reference is
# engine/quants/q4_1.py before the 16-row vector kernel ----

@njit(inline="always")
def _ref_block_lanes(v, xqb, d0d1, acc):
    for l in range(4):
        s_lo = np.float32(0.0)
        s_hi = np.float32(0.0)
        for k in range(4):
            q = np.float32(v[4 + 4 * l + k])
            hi = np.floor(q * np.float32(0.0625))
            s_lo += (q - np.float32(16.0) * hi) * xqb[4 * l + k]
            s_hi += hi * xqb[16 + 4 * l + k]
        acc[l] = fma32(d0d1, s_lo, acc[l])
        acc[4 + l] = fma32(d0d1, s_hi, acc[4 + l])


@njit(**MATH_EXACT)
def _ref_finish(acc, w_row, xs_tok, nb):
    m = np.float32(0.0)
    for b in range(nb):
        m += read_f16_fast(w_row, b * 20 + 2) * xs_tok[b]
    r0 = acc[4] + acc[0]
    r1 = acc[5] + acc[1]
    r2 = acc[6] + acc[2]
    r3 = acc[7] + acc[3]
    return ((r0 + r2) + (r1 + r3)) + m


@njit(parallel=True, **MATH_FAST)
def ref_q4_1_q8_1(w, n_out, n_in, xq, xd, xs, n_tok, out):
    nb = n_in // 32
    rb = nb * 20
    for g in prange((n_out + 3) // 4):
        r0, r1, r2, r3 = group_of_rows(g, n_out)
        w0 = w[r0 * rb : (r0 + 1) * rb]
        w1 = w[r1 * rb : (r1 + 1) * rb]
        w2 = w[r2 * rb : (r2 + 1) * rb]
        w3 = w[r3 * rb : (r3 + 1) * rb]
        acc0 = np.empty(8, dtype=np.float32)
        acc1 = np.empty(8, dtype=np.float32)
        acc2 = np.empty(8, dtype=np.float32)
        acc3 = np.empty(8, dtype=np.float32)
        for t in range(n_tok):
            xt = xq[t * n_in : (t + 1) * n_in]
            xdt = xd[t * nb : (t + 1) * nb]
            xst = xs[t * nb : (t + 1) * nb]
            acc0[:] = 0.0
            acc1[:] = 0.0
            acc2[:] = 0.0
            acc3[:] = 0.0
            for b in range(nb):
                o = b * 20
                v0 = w0[o : o + 20]
                v1 = w1[o : o + 20]
                v2 = w2[o : o + 20]
                v3 = w3[o : o + 20]
                xqb = xt[b * 32 : (b + 1) * 32]
                dy = xdt[b]
                _ref_block_lanes(v0, xqb, read_f16_fast(v0, 0) * dy, acc0)
                _ref_block_lanes(v1, xqb, read_f16_fast(v1, 0) * dy, acc1)
                _ref_block_lanes(v2, xqb, read_f16_fast(v2, 0) * dy, acc2)
                _ref_block_lanes(v3, xqb, read_f16_fast(v3, 0) * dy, acc3)
            ot = out[t * n_out : (t + 1) * n_out]
            ot[r0] = _ref_finish(acc0, w0, xst, nb)
            ot[r1] = _ref_finish(acc1, w1, xst, nb)
            ot[r2] = _ref_finish(acc2, w2, xst, nb)
            ot[r3] = _ref_finish(acc3, w3, xst, nb)


# ---- Q4_1 x Q8_1 in the engine's order: one exact integer sum per block, scaled once ----

@njit(parallel=True, **MATH_EXACT)
def ref_q4_1_q8_1_blocks(w, n_out, n_in, xq, xd, xs, n_tok, out):
    nb = n_in // 32
    rb = nb * 20
    for r in prange(n_out):
        row = w[r * rb : (r + 1) * rb]
        for t in range(n_tok):
            acc = np.float32(0.0)
            m = np.float32(0.0)
            for b in range(nb):
                o = b * 20
                x = xq[t * n_in + b * 32 : t * n_in + b * 32 + 32]
                s = 0
                for j in range(16):
                    q = np.int64(row[o + 4 + j])
                    s += (q & 15) * np.int64(x[j]) + (q >> 4) * np.int64(x[16 + j])
                acc = fma32(np.float32(s), read_f16_fast(row, o) * xd[t * nb + b], acc)
                m = m + read_f16_fast(row, o + 2) * xs[t * nb + b]
            out[t * n_out + r] = acc + m


def assert_bits_equal(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype, what
    if not np.array_equal(ours.view(np.uint32), ref.view(np.uint32)):
        bad = np.flatnonzero(ours.view(np.uint32).reshape(-1) != ref.view(np.uint32).reshape(-1))
        pytest.fail(f"{what}: {bad.size} of {ours.size} values differ, e.g. at {bad[:5].tolist()}: "
                    f"{ours.reshape(-1)[bad[:5]]} vs {ref.reshape(-1)[bad[:5]]}")


def check_q4_1_q8_1(w: QuantMatrix, x: np.ndarray, what: str) -> None:
    """Both summation orders, each against its reference, bit for bit."""
    xq, xd, xs = quantize_q8_1(x)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    data = _flat_for_kernel(w.data, np.dtype(np.uint8))
    with summation_order(LLAMA_CPP):
        ours = matmul_q8_1(w, xq, xd, xs)
    ref = np.empty_like(ours)
    ref_q4_1_q8_1(data, w.n_out, w.n_in, f32(xq), f32(xd), f32(xs), len(x), ref.reshape(-1))
    assert_bits_equal(ours, ref, f"{what}, llama.cpp's order")
    with summation_order(ENGINE):
        ours = matmul_q8_1(w, xq, xd, xs)
    ref_q4_1_q8_1_blocks(data, w.n_out, w.n_in, np.ascontiguousarray(xq, dtype=np.int8).reshape(-1), f32(xd), f32(xs),
                         len(x), ref.reshape(-1))
    assert_bits_equal(ours, ref, f"{what}, the engine's order")


def activations(rng, n_tok: int, n_in: int) -> np.ndarray:
    """Activations like a model's: mostly small, some large, some blocks all zero."""
    x = rng.standard_normal((n_tok, n_in), dtype=np.float32) * rng.choice(np.float32([0.01, 1.0, 30.0]), size=(n_tok, 1))
    x[:, :32] *= np.float32(rng.integers(0, 2))  # now and then a zero block (d = 0, s = 0)
    return x


@pytest.mark.parametrize("n_out, n_in", SHAPES)
def test_q4_1_q8_1_random_blocks(n_out, n_in):
    rng = np.random.default_rng(n_out * 1000 + n_in)
    w = random_matrix(GGMLType.Q4_1, n_out, n_in, rng)
    for n_tok in TOKENS:
        check_q4_1_q8_1(w, activations(rng, n_tok, n_in), f"Q4_1 {n_out}x{n_in} tokens={n_tok}")


def test_q4_1_q8_1_extreme_scales():
    """Large, tiny, negative and subnormal half scales; every byte pattern."""
    rng = np.random.default_rng(11)
    n_out, n_in = 19, 256
    raw = rng.integers(0, 256, size=(n_out, n_in // 32, 20), dtype=np.uint8)
    halves = np.float16([60000.0, -3.5, 1e-7, -6e-8, 0.0, -0.0, 2.0**-14, 1.0])
    for f in (0, 2):
        raw[:, :, f : f + 2] = rng.choice(halves, size=(n_out, n_in // 32)).view(np.uint8).reshape(n_out, -1, 2)
    raw[0, 0, 4:] = np.arange(16, dtype=np.uint8) * 17
    w = QuantMatrix(GGMLType.Q4_1, n_in, n_out, raw.reshape(n_out, -1))
    for n_tok in TOKENS:
        check_q4_1_q8_1(w, activations(rng, n_tok, n_in), f"extreme scales tokens={n_tok}")


def test_q4_1_q8_1_on_fixture_tensors():
    path = FIXTURES / "tiny-llama" / "tiny-llama-Q4_1.gguf"
    if not path.exists():
        pytest.skip(f"reference fixtures not found at {path}")
    rng = np.random.default_rng(5)
    with open_model_file(path) as mf:
        names = [n for n, t in mf.tensors.items() if len(t.shape) == 2 and t.ggml_type == GGMLType.Q4_1]
        assert names
        for name in names:
            w = QuantMatrix.from_model_file(mf, name)
            for n_tok in (1, 4, 9):
                check_q4_1_q8_1(w, activations(rng, n_tok, w.n_in), f"{name} tokens={n_tok}")


def test_q4_1_engine_order_is_the_exact_product_to_float_rounding():
    # the engine's order is not llama.cpp's, so nothing of llama.cpp's checks its bits: it
    # must then be the product itself, W (dequantized) times the rounded activations in
    # float64, to float32 rounding
    rng = np.random.default_rng(12)
    for n_out, n_in in ((37, 160), (64, 576), (48, 1536)):
        w = random_matrix(GGMLType.Q4_1, n_out, n_in, rng)
        x = activations(rng, 5, n_in)
        xq, xd, xs = quantize_q8_1(x)
        with summation_order(ENGINE):
            ours = matmul_q8_1(w, xq, xd, xs).astype(np.float64)
        blocks = w.data.reshape(n_out, n_in // 32, 20)
        d = blocks[:, :, 0:2].copy().view(np.float16)[:, :, 0].astype(np.float64)
        m = blocks[:, :, 2:4].copy().view(np.float16)[:, :, 0].astype(np.float64)
        q = np.concatenate([blocks[:, :, 4:] & 15, blocks[:, :, 4:] >> 4], axis=2).astype(np.float64)
        xv = (np.asarray(xq, dtype=np.float64).reshape(5, n_in // 32, 32) * np.asarray(xd, dtype=np.float64).reshape(5, -1, 1))
        # sum_b d_b sum_j q_j x_j + m_b s_b, with s_b the activations' block sums as given
        ref = np.einsum("rb,rbj,tbj->tr", d, q, xv) + np.asarray(xs, dtype=np.float64).reshape(5, -1) @ m.T
        err = np.abs(ours - ref).max()
        assert err <= 1e-5 * np.abs(ref).max(), f"{n_out}x{n_in}: max error {err:.3g}"


# ---- activations, RoPE, SwiGLU: the numba versions against the numpy / parallel ones ----

def test_quantize_q8_1_matches_numpy_formulation():
    from codeup_tui.engine.quants.activations import quantize_q8_1_reference

    rng = np.random.default_rng(3)
    for scale in (1e-30, 1e-3, 1.0, 100.0, 1e4, 1e6):
        for n_tok, n_in in ((1, 32), (1, 576), (5, 1536), (57, 576)):
            x = rng.standard_normal((n_tok, n_in), dtype=np.float32) * np.float32(scale)
            x[0, :32] = 0.0
            if n_in > 32:
                x[0, 32:64] = -0.0
            x[-1, -32:] = np.round(x[-1, -32:] * 2) / 2  # ties for the rounding
            ours = quantize_q8_1(x)
            with np.errstate(over="ignore"):  # scale 1e6: s overflows half, inf either way
                ref = quantize_q8_1_reference(x)
            for a, b, what in zip(ours, ref, ("q", "d", "s")):
                assert_bits_equal(a, b, f"quantize_q8_1 {what} scale={scale} {n_tok}x{n_in}")


def test_one_token_rope_and_swiglu_are_the_parallel_kernels():
    from codeup_tui.engine.ggml_math import _swiglu, _swiglu_serial
    from codeup_tui.engine.rope import _rotate, _rotate_serial, rope_angles

    rng = np.random.default_rng(4)
    cos, sin = rope_angles(np.array([123]), 64, 100000.0, 1.0)
    x = rng.standard_normal((1, 9, 64), dtype=np.float32)
    a, b = x.copy(), x.copy()
    _rotate(a, cos, sin, 64)
    _rotate_serial(b, cos, sin, 64)
    assert_bits_equal(a, b, "rope")
    g = rng.standard_normal((1, 1536), dtype=np.float32) * 4
    u = rng.standard_normal((1, 1536), dtype=np.float32)
    a, b = np.empty_like(g), np.empty_like(g)
    _swiglu(g, u, a)
    _swiglu_serial(g, u, b)
    assert_bits_equal(a, b, "swiglu")
