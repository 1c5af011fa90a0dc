"""Q4_1: blocks of 32 weights in 20 bytes: f16 d, f16 m, u8 qs[16].

Element j < 16 is the low nibble of qs[j], element j + 16 the high nibble; w = d * q + m.
"""

from __future__ import annotations

from numba import njit

from ._common import block_shape, dequantize_block32
from ._int8 import transpose_words16
from .q4_0 import block_values  # noqa: F401 (the same nibbles; the kernels read it here)

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q4_1")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    dequantize_block32(src, o, dst, e, 2, -1, 4, 0)


# The exact Q4_1 x Q8_1 product: block32_products.matmul_q8, the values q as they are, plus
# the minimum term; block sums in the engine's summation order, lane sums (llama.cpp's
# ggml_vec_dot_q4_1_q8_1, AVX2/AVX-512 path) in llama.cpp's (summation_order.py).
Q_OFFSET = 0
HAS_MIN = True
TURNED_WORDS = 64  # a turned block: 4 words of qs per row, 16 rows


@njit(inline="always")
def turn_block(w, rowoff, o, words):
    """The qs of the 16 rows' blocks at byte o, word k of row r at words[16 k + r]."""
    transpose_words16(w, rowoff, o + 4, 4, words)
