"""Q3_K: super-blocks of 256 weights in 110 bytes: u8 hmask[32], u8 qs[64], u8 scales[12], f16 d.

The low 2 bits of element e are laid out as in Q2_K; its high bit is bit e // 32 of
hmask[e % 32], and q = low2 - (high bit ? 0 : 4), in -4..3. Sixteen 6-bit scales (one per
16 elements) are packed in `scales` (`scale6`), stored with +32; w = d * (sc - 32) * q.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import block_shape, read_f16, read_f16_fast, read_u32
from ._int8 import (
    i32x16_shl,
    i32x16_splat8,
    i32x16_sub,
    i32x16_word_bytes16,
    i32x16_word_bytes_quads,
    q3x64_load,
)

BLOCK_ELEMS, BLOCK_BYTES = block_shape("Q3_K")


@njit(inline="always")
def scale6(buf, o, s):
    """Signed scale (-32..31) of group s (0..15) from the 12 packed bytes at buf[o:]."""
    if s < 8:
        low = np.int64(buf[o + s]) & 15
    else:
        low = np.int64(buf[o + s - 8]) >> 4
    high = (np.int64(buf[o + 8 + s % 4]) >> (2 * (s // 4))) & 3
    return (low | (high << 4)) - 32


@njit(inline="always")
def dequantize_block(src, o, dst, e):
    d = read_f16(src, o + 108)
    for h in range(2):
        for k in range(4):
            for l in range(32):
                dl = d * np.float32(scale6(src, o + 96, 8 * h + 2 * k + l // 16))
                low = (np.int64(src[o + 32 + 32 * h + l]) >> (2 * k)) & 3
                hb = (np.int64(src[o + l]) >> (4 * h + k)) & 1
                dst[e + 128 * h + 32 * k + l] = dl * np.float32(low - 4 * (1 - hb))


# The 8-bit product (llama.cpp's ggml_vec_dot_q3_K_q8_K): sixteen sub-blocks of 16 with
# signed 6-bit scales sc_j; q = q' - 4 with q' = low2 + 4 * highbit in 0..7, unsigned as
# dpbusd takes it. The offset is taken out in integers, as llama.cpp does: the block's
# sum_j sc_j * (q_j . x_j) = sum_j sc_j * (q'_j . x_j) - 4 * sum_j sc_j * (x sum of sub-block
# j), exact (at most 4 chunks * 32 * 4 * 7 * 128 + 4 * 32 * 16 * 128 per lane), then scaled
# by d * d_x once: no float cancellation between two large terms. There is no minimum term.
@njit(inline="always")
def _decode_q8_k(blk):
    """One block for any number of tokens: four 64-value vectors of q' (chunk c = elements
    64c..64c+63 = sub-blocks 4c + i in dpbusd lanes 4i..4i+3), the signed scales spread to
    those lanes, and all sixteen times 4 in lane order (beside the bsums). d first, then
    0 for the "dmin" of the types with a minimum term."""
    u0 = read_u32(blk, 96)
    u1 = read_u32(blk, 100)
    u2 = read_u32(blk, 104)
    # the twelve scale bytes to the sixteen 6-bit scales (+32), four per word: low nibbles
    # from u0 (0-3, 8-11 in its high nibbles) and u1 (4-7, 12-15), top bits from u2
    s0 = (u0 & 0x0F0F0F0F) | ((u2 & 0x03030303) << 4)
    s1 = (u1 & 0x0F0F0F0F) | (((u2 >> 2) & 0x03030303) << 4)
    s2 = ((u0 >> 4) & 0x0F0F0F0F) | (((u2 >> 4) & 0x03030303) << 4)
    s3 = ((u1 >> 4) & 0x0F0F0F0F) | (((u2 >> 6) & 0x03030303) << 4)
    bias = i32x16_splat8(32, 32)
    return (
        read_f16_fast(blk, 108),
        np.float32(0.0),
        q3x64_load(blk, 32, blk, 0, 0),
        q3x64_load(blk, 32, blk, 0, 1),
        q3x64_load(blk, 64, blk, 0, 2),
        q3x64_load(blk, 64, blk, 0, 3),
        i32x16_sub(i32x16_word_bytes_quads(s0), bias),
        i32x16_sub(i32x16_word_bytes_quads(s1), bias),
        i32x16_sub(i32x16_word_bytes_quads(s2), bias),
        i32x16_sub(i32x16_word_bytes_quads(s3), bias),
        i32x16_shl(i32x16_sub(i32x16_word_bytes16(s0, s1, s2, s3), bias), 2),
    )
