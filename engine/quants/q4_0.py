"""Q4_0: blocks of 32 weights in 18 bytes: f16 d, u8 qs[16].

Element j < 16 is the low nibble of qs[j], element j + 16 the high nibble; w = d * (q - 8).
"""

from __future__ import annotations

from numba import njit

from ._common import block_shape, dequantize_block32
from ._int8 import i32x16_load, i32x16_nibbles, transpose_words16

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q4_0")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    dequantize_block32(src, o, dst, e, -1, -1, 2, 8)


# The 8-bit product (block32_products.matmul_q8 (block sums)): as llama.cpp's "repacked" Q4_0
# kernels on x86 (ggml_gemv/gemm_q4_0_8x8_q8_0), bit for bit. The values go in as the
# unsigned nibbles q, with Q_OFFSET * sum(y) taken out.
Q_OFFSET = 8
TURNED_WORDS = 64  # a turned block: 4 words of qs per row, 16 rows


@njit(inline="always")
def turn_block(w, rowoff, o, words):
    """The qs of the 16 rows' blocks at byte o, word k of row r at words[16 k + r]."""
    transpose_words16(w, rowoff, o + 2, 4, words)


@njit(inline="always")
def block_values(words, o):
    """A turned block's values as eight vectors of four per row: elements 4l..4l+3."""
    w0 = i32x16_load(words, o)
    w1 = i32x16_load(words, o + 16)
    w2 = i32x16_load(words, o + 32)
    w3 = i32x16_load(words, o + 48)
    return (i32x16_nibbles(w0, 0), i32x16_nibbles(w1, 0), i32x16_nibbles(w2, 0), i32x16_nibbles(w3, 0),
            i32x16_nibbles(w0, 1), i32x16_nibbles(w1, 1), i32x16_nibbles(w2, 1), i32x16_nibbles(w3, 1))
