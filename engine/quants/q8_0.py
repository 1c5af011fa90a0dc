"""Q8_0: blocks of 32 weights in 34 bytes: f16 d, i8 qs[32]; w = d * q.

The kernels read the bytes as int8 (the scale's two bytes are masked back to unsigned).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, read_f16
from ._int8 import i32x16_flip_signs, i32x16_load, transpose_words16

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q8_0")
WEIGHT_DTYPE = np.dtype(np.int8)


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o)
    for j in range(32):
        dst[e + j] = np.float32(src[o + 2 + j]) * d


# The 8-bit product (block32_products.matmul_q8 (block sums)), in the order of the Q4_0 kernel
# (which reproduces llama.cpp bit for bit). For Q8_0 files llama.cpp's logits differ from
# ours by ~1.5e-3 relative RMS (tests/engine/test_model_logits.py) whichever order we take: its
# Q8_0 path rounds somewhere else too (not identified). The signed weights go in as
# q + 128 with Q_OFFSET * sum(y) taken out.
Q_OFFSET = 128
TURNED_WORDS = 128  # a turned block: 8 words of qs per row, 16 rows


@njit(inline="always")
def turn_block(w, rowoff, o, words):
    """The qs of the 16 rows' blocks at byte o, word k of row r at words[16 k + r]."""
    transpose_words16(w, rowoff, o + 2, 8, words)


@njit(inline="always")
def block_values(words, o):
    """A turned block's values q + 128 as eight vectors of four per row: elements 4l..4l+3."""
    return (i32x16_flip_signs(i32x16_load(words, o)), i32x16_flip_signs(i32x16_load(words, o + 16)),
            i32x16_flip_signs(i32x16_load(words, o + 32)), i32x16_flip_signs(i32x16_load(words, o + 48)),
            i32x16_flip_signs(i32x16_load(words, o + 64)), i32x16_flip_signs(i32x16_load(words, o + 80)),
            i32x16_flip_signs(i32x16_load(words, o + 96)), i32x16_flip_signs(i32x16_load(words, o + 112)))
