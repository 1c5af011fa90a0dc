"""BF16: the top 16 bits of a float32, rounded to nearest even (ggml_fp32_to_bf16_row_ref;
a NaN is kept and made quiet)."""

from __future__ import annotations

import numpy as np

from ._common import block_shape

BLOCK_ELEMS, BLOCK_BYTES = block_shape("BF16")


def quantize_blocks(x: np.ndarray, out: np.ndarray) -> None:
    u = x.view(np.uint32)
    rounded = (u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    bits = np.where(nan, (u >> np.uint32(16)) | np.uint32(64), rounded)
    out.view(np.uint16)[:] = bits.astype(np.uint16)
