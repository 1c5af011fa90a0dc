"""F16: IEEE half, rounded to nearest even (ggml_fp32_to_fp16_row)."""

from __future__ import annotations

import numpy as np

from ._common import block_shape

BLOCK_ELEMS, BLOCK_BYTES = block_shape("F16")


def quantize_blocks(x: np.ndarray, out: np.ndarray) -> None:
    h = out.view(np.uint16)
    with np.errstate(over="ignore"):  # beyond the half range is inf, as in ggml
        h[:] = x.astype(np.float16).view(np.uint16)
    nan = np.isnan(x)
    if nan.any():  # ggml makes every NaN the quiet NaN 0x7E00 (sign kept); numpy keeps payloads
        h[nan] = (x.view(np.uint32)[nan] >> 16).astype(np.uint16) & np.uint16(0x8000) | np.uint16(0x7E00)
