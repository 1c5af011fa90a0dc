"""The k-quant kernels with 8-bit activations (matmul_q8_k: llama.cpp's integer dot products
on Q8_K activations) against float64 dequantize-then-multiply, and the integer dot product
they are built on.

The integer sums inside a block are exact, so the kernel equals dequantize_rows(W) times
round_q8_k(x) up to float32 rounding of the per-block scaling and summation order.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from tests.helpers.quant_matrices import random_matrix

from codeup_tui.engine.ggml_types import GGMLType
from codeup_tui.engine.quants import HAS_Q8_K_KERNEL, QuantMatrix, dequantize_rows, matmul_q8_k
from codeup_tui.engine.quants._int8 import (
    dpbusd,
    dpbusd_portable,
    dpbusd_scaled,
    dpbusd_scaled_portable,
    dpwssd,
    dpwssd_portable,
    dpwssd_splat,
    dpwssd_splat_portable,
    dpwssd_splat_sum,
    dpwssd_splat_sum_portable,
    i32x16_dup16,
    i32x16_load,
    i32x16_row_sums,
    i32x16_store,
    u8x64_load,
)
from codeup_tui.engine.quants.activations import quantize_q8_k, round_q8_k

K_TYPES = (GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K)
TOKENS = (1, 3, 17)
SHAPES = ((1, 256), (37, 256), (16, 768), (45, 1024))
def activations(rng, n_tok: int, n_in: int) -> np.ndarray:
    """Mostly model-like rows of different magnitudes; now and then a zero block (d = 0)."""
    x = rng.standard_normal((n_tok, n_in), dtype=np.float32) * rng.choice(np.float32([0.01, 1.0, 30.0]), size=(n_tok, 1))
    x[:, :256] *= np.float32(rng.integers(0, 2))
    return x


def check(w: QuantMatrix, x: np.ndarray, what: str) -> None:
    ours = matmul_q8_k(w, *quantize_q8_k(x))
    dense = dequantize_rows(w, np.arange(w.n_out)).astype(np.float64)
    ref = round_q8_k(x).astype(np.float64) @ dense.T
    assert ours.shape == ref.shape and ours.dtype == np.float32, what
    scale = np.abs(ref).max()
    err = np.abs(ours - ref).max()
    assert np.isfinite(ours).all(), what
    assert err <= 1e-5 * scale, f"{what}: max error {err:.3g} against max |ref| {scale:.3g}"


def test_every_k_quant_has_the_8_bit_kernel():
    assert set(K_TYPES) <= HAS_Q8_K_KERNEL


@pytest.mark.parametrize("t", K_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("n_out, n_in", SHAPES)
def test_matmul_q8_k_matches_dequantized_product(t, n_out, n_in):
    rng = np.random.default_rng(int(t) * 100_000 + n_out * 1000 + n_in // 256)
    w = random_matrix(t, n_out, n_in, rng)
    for n_tok in TOKENS:
        check(w, activations(rng, n_tok, n_in), f"{t.name} {n_out}x{n_in} tokens={n_tok}")


@pytest.mark.parametrize("t", K_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("fill", (0x00, 0xFF, 0xAA))
def test_matmul_q8_k_extreme_blocks_and_activations(t, fill):
    """Every quant and scale field at its largest (0xFF) or smallest (0x00) value against
    activations that round to +-127 throughout: the integer sums at their largest, where an
    overflow would show."""
    rng = np.random.default_rng(int(t) + fill)
    n_in = 512
    w = random_matrix(t, 21, n_in, rng, fill=fill)
    same_sign = np.ones((3, n_in), dtype=np.float32)
    same_sign[1] = -1.0
    mixed = np.where(rng.integers(0, 2, size=(3, n_in)) == 1, np.float32(1.0), np.float32(-1.0))
    for x in (same_sign, mixed):
        xq, _, _ = quantize_q8_k(x)
        assert np.abs(xq.astype(np.int32)).min() == 127
        check(w, x, f"{t.name} bytes={fill:#x}")


@njit(cache=False)
def _dot_both(acc, a, b, out_vnni, out_portable):
    v = i32x16_load(acc, 0)
    i32x16_store(out_vnni, 0, dpbusd(v, u8x64_load(a, 0), u8x64_load(b, 0)))
    i32x16_store(out_portable, 0, dpbusd_portable(v, u8x64_load(a, 0), u8x64_load(b, 0)))


def test_portable_dpbusd_gives_the_same_integers():
    """dpbusd (vpdpbusd where the CPU has it) and its portable form: lane l = acc[l] +
    sum_k a[4l+k] (unsigned) * b[4l+k] (signed), both checked against numpy."""
    rng = np.random.default_rng(7)
    cases = [
        (np.full(64, 255, np.uint8), np.full(64, -128, np.int8)),
        (np.full(64, 255, np.uint8), np.full(64, 127, np.int8)),
        (np.zeros(64, np.uint8), np.full(64, -128, np.int8)),
        (rng.choice(np.uint8([0, 255]), 64), rng.choice(np.int8([-128, 127]), 64)),
    ]
    cases += [(rng.integers(0, 256, 64, dtype=np.uint8), rng.integers(-128, 128, 64, dtype=np.int8)) for _ in range(20)]
    for a, b in cases:
        acc = rng.integers(-(2**30), 2**30, 16, dtype=np.int32)
        vnni = np.empty(16, np.int32)
        portable = np.empty(16, np.int32)
        _dot_both(acc, a, b.view(np.uint8), vnni, portable)
        ref = acc + (a.astype(np.int32) * b.astype(np.int32)).reshape(16, 4).sum(axis=1)
        np.testing.assert_array_equal(portable, ref)
        np.testing.assert_array_equal(vnni, ref)


@njit(cache=False)
def _scaled_both(acc, a, b, sc, out):
    v = i32x16_load(acc, 0)
    s2 = i32x16_dup16(i32x16_load(sc, 0))
    i32x16_store(out, 0, dpbusd_scaled(v, u8x64_load(a, 0), u8x64_load(b, 0), s2))
    i32x16_store(out, 16, dpbusd_scaled_portable(v, u8x64_load(a, 0), u8x64_load(b, 0), s2))


def test_scaled_dot_gives_the_same_integers():
    """The kernel's scaled dot product (vpmaddubsw + vpdpwssd where the CPU has them, and its
    portable form) gives exactly acc + sc * dpbusd(a, b) per lane over the ranges the
    k-quants use: weights below 64 (Q6_K's largest) against any int8, signed scales."""
    rng = np.random.default_rng(11)
    cases = [(np.full(64, 63, np.uint8), np.full(64, v, np.int8), np.full(16, s, np.int32))
             for v in (-128, 127) for s in (-128, 127, 63)]
    cases += [(rng.integers(0, 64, 64, dtype=np.uint8), rng.integers(-128, 128, 64, dtype=np.int8),
               rng.integers(-128, 128, 16, dtype=np.int32)) for _ in range(20)]
    for a, b, sc in cases:
        acc = rng.integers(-(2**28), 2**28, 16, dtype=np.int32)
        out = np.empty(32, np.int32)
        _scaled_both(acc, a, b.view(np.uint8), sc, out)
        ref = acc + sc * (a.astype(np.int32) * b.astype(np.int32)).reshape(16, 4).sum(axis=1)
        np.testing.assert_array_equal(out[:16], ref)
        np.testing.assert_array_equal(out[16:], ref)


@njit(cache=False)
def _rows16_ops(acc, xq, ws, sc, v, out):
    """dpwssd_splat_sum over four weight vectors, dpwssd and dpwssd_splat, each in its
    VNNI (where the CPU has it) and portable form, and i32x16_row_sums of ws as words."""
    a = i32x16_load(acc, 0)
    w4 = (u8x64_load(ws, 0), u8x64_load(ws, 64), u8x64_load(ws, 128), u8x64_load(ws, 192))
    s = i32x16_load(sc, 0)
    i32x16_store(out, 0, dpwssd_splat_sum(a, xq, 4, s, w4))
    i32x16_store(out, 16, dpwssd_splat_sum_portable(a, xq, 4, s, w4))
    b = i32x16_load(v, 0)
    i32x16_store(out, 32, dpwssd(a, s, b))
    i32x16_store(out, 48, dpwssd_portable(a, s, b))
    i32x16_store(out, 64, dpwssd_splat(a, s, v, 3))
    i32x16_store(out, 80, dpwssd_splat_portable(a, s, v, 3))
    i32x16_store(out, 96, i32x16_row_sums(v, 16))


def test_sixteen_row_operations_give_the_same_integers():
    """The operations of the sixteen-row k-quant kernels against numpy, at the extremes the
    kernels allow (16-bit sums up to 31744, activations down to -128, scales of either sign)."""
    rng = np.random.default_rng(11)

    def halves(words):
        return words.view(np.int16).reshape(16, 2).astype(np.int64)

    for case in range(12):
        top = (15, 31)[case % 2]  # 4 vectors of 31 at -128: 31744, just under 2**15
        if case < 4:  # the largest sums: every weight at its top, every activation at -128
            ws = np.full(256, top, np.uint8)
            xq = np.full(64, -128, np.int8)
        else:
            ws = rng.integers(0, top + 1, 256, dtype=np.uint8)
            xq = rng.integers(-128, 128, 64, dtype=np.int8)
        acc = rng.integers(-(2**28), 2**28, 16, dtype=np.int32)
        sc = rng.integers(-128, 128, 32, dtype=np.int16).view(np.int32)
        v = rng.integers(-(2**31), 2**31, 16 * 17, dtype=np.int64).astype(np.int32)
        v[:16] = rng.integers(-2048, 2048, 32, dtype=np.int16).view(np.int32)
        out = np.empty(112, np.int32)
        _rows16_ops(acc, xq.view(np.uint8), ws, sc, v, out)
        # lane l: sum over the four vectors k of the byte products of word l with xq[4 + 4k:]
        words = ws.reshape(4, 16, 4).astype(np.int64)
        x = xq[4:20].reshape(4, 1, 4).astype(np.int64)
        pairs = (words * x).reshape(4, 16, 2, 2).sum(axis=3).sum(axis=0)  # 16-bit pair sums
        assert np.abs(pairs).max() < 2**15
        want = acc + (pairs * halves(sc)).sum(axis=1)
        np.testing.assert_array_equal(out[0:16], want)
        np.testing.assert_array_equal(out[16:32], want)
        want = acc + (halves(sc) * halves(v[:16])).sum(axis=1)
        np.testing.assert_array_equal(out[32:48], want)
        np.testing.assert_array_equal(out[48:64], want)
        want = acc + (halves(sc) * halves(np.full(16, v[3], np.int32))).sum(axis=1)
        np.testing.assert_array_equal(out[64:80], want)
        np.testing.assert_array_equal(out[80:96], want)
        np.testing.assert_array_equal(out[96:112], v[16:].reshape(16, 16).astype(np.int64).sum(axis=1).astype(np.int32))
