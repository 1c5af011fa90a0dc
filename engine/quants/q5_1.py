"""Q5_1: blocks of 32 weights in 24 bytes: f16 d, f16 m, u8 qh[4], u8 qs[16].

The 5-bit values as in Q5_0; w = d * q + m.
"""

from __future__ import annotations

from numba import njit

from ._common import block_shape, dequantize_block32
from .q5_0 import block_values, turn_block5  # noqa: F401 (the same five-bit values as Q5_0)

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_1")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    dequantize_block32(src, o, dst, e, 2, 4, 8, 0)


# The exact Q5_1 x Q8_1 product (llama.cpp's ggml_vec_dot_q5_1_q8_1, AVX2/AVX-512):
# block32_products.matmul_q8 (lane sums), as Q4_1's with the fifth bit.
Q_OFFSET = 0
HAS_MIN = True
TURNED_WORDS = 80  # a turned block: 4 words of qs per row, then the qh word, 16 rows


@njit(inline="always")
def turn_block(w, rowoff, o, words):
    turn_block5(w, rowoff, o, 4, words)
