"""Rotary position embeddings as llama.cpp applies them to GGUF llama weights.

"Normal" mode (ggml rope mode 0): each head's adjacent pairs (x[2i], x[2i+1]) are rotated
by θ_i = pos · freq_scale · base^(-2i/n_rot). The converters permuted the Q and K rows of
Hugging Face checkpoints so that adjacent pairs are right for these files.
"""

from __future__ import annotations

import numpy as np


def rope_angles(
    positions: np.ndarray, n_rot: int, freq_base: float, freq_scale: float, freq_factors: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin tables of shape (len(positions), n_rot // 2), float32.

    `freq_factors` (the optional rope_freqs.weight of Llama 3.1) divide each frequency.
    """
    inv_freq = freq_base ** (-np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)
    if freq_factors is not None:
        inv_freq = inv_freq / freq_factors.astype(np.float64)
    theta = (positions.astype(np.float64) * freq_scale)[:, None] * inv_freq[None, :]
    return np.cos(theta).astype(np.float32), np.sin(theta).astype(np.float32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, n_rot: int) -> None:
    """Rotate x (n_tok, n_heads, head_dim) in place; only the first n_rot dims rotate."""
    even = x[:, :, 0:n_rot:2].copy()
    odd = x[:, :, 1:n_rot:2]
    c = cos[:, None, :]
    s = sin[:, None, :]
    x[:, :, 0:n_rot:2] = even * c - odd * s
    x[:, :, 1:n_rot:2] = even * s + odd * c
