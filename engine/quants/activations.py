"""Activations rounded the way llama.cpp rounds them before its dot products.

llama.cpp never multiplies a quantized weight by a float32 activation: it first converts the
activation row to the weight type's "vec_dot_type" (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for
Q4_1/Q5_1, Q8_K for the k-quants, F16 for F16, BF16 for BF16) and takes integer (or half)
dot products. Which values get rounded up or down then decides, through the next layers,
which of two near-equal tokens wins. So the engine rounds activations the same way:
- for the block types, `quantize_q8_0` / `quantize_q8_1` / `quantize_q8_k` give the 8-bit
  blocks themselves (values, scales, sums), which the 8-bit kernels take (quants.matmul_q8_0,
  matmul_q8_1, matmul_q8_k; the forward pass through quants.rounded_activations);
- for F16 / BF16, `round_activations(x, type)` gives x rounded to half or bfloat16, which
  the float kernels take (the forward pass through `quantize_activations`).
`round_q8_0` / `round_q8_k` (the dequantized 8-bit activations) are the numpy statements of
those roundings that the tests hold the kernels to.

Q8_1 (the activations of Q4_1/Q5_1 weights) has the same values as Q8_0 plus a block sum
s = d·Σq, with d = amax/127 before its rounding to half, stored as half. The weights'
minimum term m·Σx uses that s, not the sum of the rounded values (`q8_1_sums`; quants.matmul
takes it as x_sums).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..ggml_math import round_f16
from ..ggml_types import GGMLType
from ..threads import by_rows

_Q8_0_TYPES = frozenset({GGMLType.Q4_0, GGMLType.Q5_0, GGMLType.Q8_0, GGMLType.Q4_1, GGMLType.Q5_1})
_Q8_1_TYPES = frozenset({GGMLType.Q4_1, GGMLType.Q5_1})
_Q8_K_TYPES = frozenset({GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K})


def round_q8_0(x: np.ndarray) -> np.ndarray:
    """quantize_row_q8_0 (and the q8_1 values) then back to float: blocks of 32,
    d = amax/127 stored as f16, q = round-half-even(x · 127/amax)."""
    xb = x.reshape(x.shape[0], -1, 32)
    amax = np.abs(xb).max(axis=-1, keepdims=True)
    d = amax / np.float32(127.0)
    inv = np.divide(np.float32(127.0), amax, out=np.zeros_like(amax), where=amax > 0)
    q = np.rint(xb * inv)
    return (q * d.astype(np.float16).astype(np.float32)).reshape(x.shape)


def q8_1_sums(x: np.ndarray) -> np.ndarray:
    """block_q8_1.s of each block of 32 of x (n_tokens, n_in): half(d · Σq) with d = amax/127
    in float32 (not yet rounded to half) and q the rounded values; (n_tokens, n_in // 32)."""
    xb = x.reshape(x.shape[0], -1, 32)
    amax = np.abs(xb).max(axis=-1)
    d = amax / np.float32(127.0)
    inv = np.divide(np.float32(127.0), amax, out=np.zeros_like(amax), where=amax > 0)
    qsum = np.rint(xb * inv[..., None]).sum(axis=-1, dtype=np.float32)  # integers, exact
    return (d * qsum).astype(np.float16).astype(np.float32)


def quantize_q8_1_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """quantize_q8_1 in numpy (the formulation the numba kernel reproduces bit for bit)."""
    xb = x.reshape(x.shape[0], -1, 32)
    amax = np.abs(xb).max(axis=-1)
    d = amax / np.float32(127.0)
    inv = np.divide(np.float32(127.0), amax, out=np.zeros_like(amax), where=amax > 0)
    q = np.rint(xb * inv[..., None])
    s = d * q.sum(axis=-1, dtype=np.float32)  # integers, exact
    return q.reshape(x.shape), d.astype(np.float16).astype(np.float32), s.astype(np.float16).astype(np.float32)


@njit(inline="always", fastmath=False, error_model="numpy", boundscheck=False)
def _q8_1_block(x, q, d_out, s_out, i):
    """Block i, x.flat[32 i : 32 i + 32]: values, half scale and half sum."""
    xb = x[32 * i : 32 * i + 32]
    qb = q[32 * i : 32 * i + 32]
    amax = np.float32(0.0)
    for j in range(32):
        a = abs(xb[j])
        if a > amax:
            amax = a
    d = amax / np.float32(127.0)
    inv = np.float32(127.0) / amax if amax > np.float32(0.0) else np.float32(0.0)
    total = np.float32(0.0)
    for j in range(32):
        v = np.rint(xb[j] * inv)
        qb[j] = v
        total += v  # integers below 2**12: exact
    d_out[i] = round_f16(d)
    s_out[i] = round_f16(d * total)


@njit(cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _quantize_q8_1(x, q, d_out, s_out):
    for i in range(d_out.size):
        _q8_1_block(x, q, d_out, s_out, i)


# A batch's blocks over the threads (threads.by_rows): each block is rounded by itself.
@njit(parallel=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _quantize_q8_1_batch(x, q, d_out, s_out):
    for i in prange(d_out.size):
        _q8_1_block(x, q, d_out, s_out, i)


def quantize_q8_0(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """quantize_row_q8_0 of x (n_tokens, n_in): the int8 values (n_tokens, n_in) and the half
    scales d (as float32, (n_tokens, n_in // 32)); the same values as quantize_q8_1's."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_tok, n_in = x.shape
    q = np.empty((n_tok, n_in), dtype=np.int8)
    d = np.empty((n_tok, n_in // 32), dtype=np.float32)
    s = np.empty((n_tok, n_in // 32), dtype=np.float32)
    by_rows(n_tok, _quantize_q8_1, _quantize_q8_1_batch)(x.reshape(-1), q.reshape(-1), d.reshape(-1), s.reshape(-1))
    return q, d


def quantize_q8_1(x: np.ndarray, values=np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """quantize_row_q8_1 of x (n_tokens, n_in), as parts: the int8 values (as `values`:
    float32 or int8, (n_tokens, n_in)), the half scales d and the half block sums s
    (n_tokens, n_in // 32)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_tok, n_in = x.shape
    q = np.empty((n_tok, n_in), dtype=values)
    d = np.empty((n_tok, n_in // 32), dtype=np.float32)
    s = np.empty((n_tok, n_in // 32), dtype=np.float32)
    by_rows(n_tok, _quantize_q8_1, _quantize_q8_1_batch)(x.reshape(-1), q.reshape(-1), d.reshape(-1), s.reshape(-1))
    return q, d, s


def round_q8_k(x: np.ndarray) -> np.ndarray:
    """quantize_row_q8_K then back to float: blocks of 256; `max` is the signed element of
    largest magnitude (first one wins), iscale = -127/max, q = min(127, round-half-even(iscale·x)),
    d = 1/iscale kept in f32."""
    xb = x.reshape(x.shape[0], -1, 256)
    at = np.abs(xb).argmax(axis=-1)[..., None]
    mx = np.take_along_axis(xb, at, axis=-1)
    iscale = np.divide(np.float32(-127.0), mx, out=np.zeros_like(mx), where=mx != 0)
    q = np.minimum(np.rint(iscale * xb), np.float32(127.0))
    d = np.divide(np.float32(1.0), iscale, out=np.zeros_like(iscale), where=iscale != 0)
    return (q * d).reshape(x.shape)


@njit(inline="always", fastmath=False, error_model="numpy", boundscheck=False)
def _q8_k_block(x, q, d_out, bsums, i):
    """Block i, x.flat[256 i : 256 i + 256]: values, scale and sums of 16."""
    xb = x[256 * i : 256 * i + 256]
    qb = q[256 * i : 256 * i + 256]
    amax = np.float32(0.0)
    mx = np.float32(0.0)
    for j in range(256):  # the first element of largest magnitude, with its sign
        a = abs(xb[j])
        if a > amax:
            amax = a
            mx = xb[j]
    if amax == np.float32(0.0):
        d_out[i] = np.float32(0.0)
        for j in range(256):
            qb[j] = 0
        for j in range(16):
            bsums[16 * i + j] = 0
        return
    iscale = np.float32(-127.0) / mx
    for j in range(256):
        v = np.rint(iscale * xb[j])
        qb[j] = np.int8(min(v, np.float32(127.0)))
    for j in range(16):
        s = np.int32(0)
        for k in range(16):
            s += np.int32(qb[16 * j + k])
        bsums[16 * i + j] = s
    d_out[i] = np.float32(1.0) / iscale


@njit(cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _quantize_q8_k(x, q, d_out, bsums):
    for i in range(d_out.size):
        _q8_k_block(x, q, d_out, bsums, i)


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _quantize_q8_k_batch(x, q, d_out, bsums):
    for i in prange(d_out.size):
        _q8_k_block(x, q, d_out, bsums, i)


def quantize_q8_k(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """quantize_row_q8_K of x (n_tokens, n_in) as parts: int8 values (n_tokens, n_in), the
    float32 scale d of each block of 256 and the int32 sums of each 16 values (bsums).
    q * d equals round_q8_k(x) exactly."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_tok, n_in = x.shape
    q = np.empty((n_tok, n_in), dtype=np.int8)
    d = np.empty((n_tok, n_in // 256), dtype=np.float32)
    bsums = np.empty((n_tok, n_in // 16), dtype=np.int32)
    by_rows(n_tok, _quantize_q8_k, _quantize_q8_k_batch)(x.reshape(-1), q.reshape(-1), d.reshape(-1), bsums.reshape(-1))
    return q, d, bsums


def round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 with round-half-even (ggml's GGML_FP32_TO_BF16) -> float32."""
    u = x.view(np.uint32)
    rounded = ((u + (np.uint32(0x7FFF) + ((u >> 16) & 1))) >> 16) << 16
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = np.where(nan, (u | 0x00400000) & 0xFFFF0000, rounded).astype(np.uint32)
    return rounded.view(np.float32)


def round_activations(x: np.ndarray, ggml_type: GGMLType) -> np.ndarray:
    """x (n_tokens, n_in) float32 as llama.cpp's dot products with `ggml_type` weights see it."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if ggml_type in _Q8_K_TYPES:
        return round_q8_k(x)
    if ggml_type in _Q8_0_TYPES:
        return round_q8_0(x)
    if ggml_type == GGMLType.F16:
        return x.astype(np.float16).astype(np.float32)
    if ggml_type == GGMLType.BF16:
        return round_bf16(x)
    return x


def quantize_activations(x: np.ndarray, ggml_type: GGMLType) -> tuple[np.ndarray, np.ndarray | None]:
    """(round_activations(x, type), Q8_1 block sums or None): what quants.matmul needs to
    reproduce llama.cpp's product with `ggml_type` weights."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    sums = q8_1_sums(x) if ggml_type in _Q8_1_TYPES else None
    return round_activations(x, ggml_type), sums
