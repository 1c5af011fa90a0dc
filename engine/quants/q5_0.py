"""Q5_0: blocks of 32 weights in 22 bytes: f16 d, u8 qh[4], u8 qs[16].

Low 4 bits as in Q4_0; bit j of the little-endian word qh is bit 4 of element j;
w = d * (q - 16).
"""

from __future__ import annotations

from numba import njit

from ._common import block_shape, dequantize_block32
from ._int8 import i32x16_bit_bytes, i32x16_load, i32x16_nibbles, transpose_words16, u8x64_or

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q5_0")


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    dequantize_block32(src, o, dst, e, -1, 2, 6, 16)


# The 8-bit product (llama.cpp's ggml_vec_dot_q5_0_q8_0 on AVX2/AVX-512, and its batched
# tinyBLAS twin): block32_products.matmul_q8 (lane sums), q - 16 taken as q with 16 times the
# sum of each lane's four activations taken out. Bit for bit llama.cpp's result.
Q_OFFSET = 16
HAS_MIN = False
TURNED_WORDS = 80  # a turned block: 4 words of qs per row, then the qh word, 16 rows


@njit(inline="always")
def turn_block5(w, rowoff, o, qh_at, words):
    """The 16 rows' qs (at byte o + qh_at + 4) to words[16 k + r], their qh (at o + qh_at)
    to words[64 + r]: Q5_0's and Q5_1's blocks (qh_at 2 and 4)."""
    transpose_words16(w, rowoff, o + qh_at + 4, 4, words[0:64])
    transpose_words16(w, rowoff, o + qh_at, 1, words[64:80])


@njit(inline="always")
def turn_block(w, rowoff, o, words):
    turn_block5(w, rowoff, o, 2, words)


@njit(inline="always")
def _lane_values(words, o, qh, k, high, first_bit):
    """The 16 rows' values of lane l = 4 high + k (0..7): the nibbles of word k plus their
    fifth bits (bits first_bit.. of qh)."""
    return u8x64_or(i32x16_nibbles(i32x16_load(words, o + 16 * k), high), i32x16_bit_bytes(qh, first_bit))


@njit(inline="always")
def block_values(words, o):
    """A turned block's eight lane values, decoded once for every token of the batch."""
    qh = i32x16_load(words, o + 64)
    return (_lane_values(words, o, qh, 0, 0, 0), _lane_values(words, o, qh, 1, 0, 4),
            _lane_values(words, o, qh, 2, 0, 8), _lane_values(words, o, qh, 3, 0, 12),
            _lane_values(words, o, qh, 0, 1, 16), _lane_values(words, o, qh, 1, 1, 20),
            _lane_values(words, o, qh, 2, 1, 24), _lane_values(words, o, qh, 3, 1, 28))
