"""Rotary position embeddings as llama.cpp applies them to GGUF llama weights.

"Normal" mode (ggml rope mode 0): each head's adjacent pairs (x[2i], x[2i+1]) are rotated
by θ_i = pos · freq_scale · base^(-2i/n_rot). The converters permuted the Q and K rows of
Hugging Face checkpoints so that adjacent pairs are right for these files.
"NeoX" mode (ggml rope mode 2, qwen2/qwen3): the pairs are (x[i], x[i + n_rot/2]), the two
halves of the rotated part, with the same angles; those converters do not permute.

The arithmetic is ggml's, bit for bit (the rotated keys and queries are rounded to half
next, where a last-bit difference can flip a rounding): θ built by repeated float32
multiplication, the C library's cosf/sinf, and the rotation contracted to fused
multiply-adds as the compiler contracts ggml's `x0*cos - x1*sin`.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
from numba import njit, prange

from .ggml_math import fma32

_libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
_cosf = _libm.cosf
_sinf = _libm.sinf
_powf = _libm.powf
for _f in (_cosf, _sinf):
    _f.restype = ctypes.c_float
    _f.argtypes = [ctypes.c_float]
_powf.restype = ctypes.c_float
_powf.argtypes = [ctypes.c_float, ctypes.c_float]


@njit(cache=False)
def _cos_sin(theta, cos, sin):
    for i in range(theta.size):
        cos.flat[i] = _cosf(theta.flat[i])
        sin.flat[i] = _sinf(theta.flat[i])


def rope_angles(
    positions: np.ndarray, n_rot: int, freq_base: float, freq_scale: float, freq_factors: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin tables of shape (len(positions), n_rot // 2), float32.

    As ggml_rope_cache_init: θ_0 = pos, θ_{i+1} = θ_i · powf(base, -2/n_rot) in float32,
    then cosf/sinf(freq_scale · θ_i / factor_i). `freq_factors` (the optional
    rope_freqs.weight of Llama 3.1) divide each frequency.
    """
    f32 = np.float32
    theta_scale = f32(_powf(f32(freq_base), f32(-2.0) / f32(n_rot)))
    n_pairs = n_rot // 2
    theta = np.empty((len(positions), n_pairs), dtype=np.float32)
    t = np.asarray(positions).astype(np.float32)
    for i in range(n_pairs):
        theta[:, i] = t
        t = t * theta_scale
    if freq_factors is not None:
        theta = theta / np.asarray(freq_factors, dtype=np.float32)[None, :]
    theta = np.ascontiguousarray(f32(freq_scale) * theta, dtype=np.float32)
    cos = np.empty_like(theta)
    sin = np.empty_like(theta)
    _cos_sin(theta, cos, sin)
    return cos, sin


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _rotate(x, cos, sin, n_rot):
    n_tok, n_heads, _ = x.shape
    for t in prange(n_tok):
        for h in range(n_heads):
            for i in range(n_rot // 2):
                c = cos[t, i]
                s = sin[t, i]
                x0 = x[t, h, 2 * i]
                x1 = x[t, h, 2 * i + 1]
                x[t, h, 2 * i] = fma32(x0, c, -(x1 * s))
                x[t, h, 2 * i + 1] = fma32(x0, s, x1 * c)


# One token (generation) is too little work for threads: the same loop without prange.
_rotate_serial = njit(cache=True, fastmath=False, error_model="numpy", boundscheck=False)(_rotate.py_func)


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False)
def _rotate_neox(x, cos, sin, n_rot):
    n_tok, n_heads, _ = x.shape
    half = n_rot // 2
    for t in prange(n_tok):
        for h in range(n_heads):
            for i in range(half):
                c = cos[t, i]
                s = sin[t, i]
                x0 = x[t, h, i]
                x1 = x[t, h, i + half]
                x[t, h, i] = fma32(x0, c, -(x1 * s))
                x[t, h, i + half] = fma32(x0, s, x1 * c)


_rotate_neox_serial = njit(cache=True, fastmath=False, error_model="numpy", boundscheck=False)(_rotate_neox.py_func)

# The rotation of each rope style: (batch kernel, one-token kernel).
ROPE_KERNELS = {"normal": (_rotate, _rotate_serial), "neox": (_rotate_neox, _rotate_neox_serial)}


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, n_rot: int, style: str = "normal") -> None:
    """Rotate x (n_tok, n_heads, head_dim) float32 in place; only the first n_rot dims rotate.
    `style`: "normal" (adjacent pairs) or "neox" (the two halves), see ROPE_KERNELS."""
    if not (x.dtype == np.float32 and x.flags.c_contiguous):
        raise ValueError("apply_rope needs a C-contiguous float32 array")
    batch, one = ROPE_KERNELS[style]
    (batch if x.shape[0] > 1 else one)(x, np.ascontiguousarray(cos, dtype=np.float32), np.ascontiguousarray(sin, dtype=np.float32), n_rot)
