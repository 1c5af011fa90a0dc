"""The quantizer of each target type, and `quantize(values, type)`.

    raw = quantize(values, GGMLType.Q4_K)      # float32 (n,) -> uint8 (n // 256 * 144,)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np

from ..errors import UsageError
from ..ggml_types import GGMLType
from . import bf16, f16, q2_k, q3_k, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0

# The quantizer of each target type, named after it: the type table is data.
QUANTIZERS: dict[GGMLType, ModuleType] = {
    GGMLType[m.__name__.rpartition(".")[2].upper()]: m
    for m in (f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k)
}

# Blocks per kernel call when a quantization is split over threads: big enough that the
# call overhead vanishes, small enough that two threads share a small tensor.
_BLOCKS_PER_TASK = 1024


def quantized_size(ggml_type: GGMLType, n_values: int) -> int:
    if ggml_type == GGMLType.F32:
        return 4 * n_values
    kern = QUANTIZERS[ggml_type]
    return n_values // kern.BLOCK_ELEMS * kern.BLOCK_BYTES


def quantize(values: np.ndarray, ggml_type: GGMLType, *, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
    """float32 values (any shape; whole blocks) as `ggml_type`'s bytes, flat uint8.

    With `pool`, runs of blocks are quantized on its threads: the bytes are the same."""
    x = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    gtype = GGMLType(int(ggml_type))
    if gtype == GGMLType.F32:
        return x.view(np.uint8).copy()
    kern = QUANTIZERS.get(gtype)
    if kern is None:
        raise UsageError(f"cannot quantize to {gtype.name} (known: {', '.join(t.name for t in QUANTIZERS)})")
    if x.size % kern.BLOCK_ELEMS:
        raise UsageError(f"{gtype.name} needs whole blocks of {kern.BLOCK_ELEMS} values, not {x.size}")
    n_blocks = x.size // kern.BLOCK_ELEMS
    out = np.empty(n_blocks * kern.BLOCK_BYTES, dtype=np.uint8)
    per_task = _BLOCKS_PER_TASK * (256 // kern.BLOCK_ELEMS if kern.BLOCK_ELEMS > 1 else 64)
    if pool is None or n_blocks <= per_task:
        kern.quantize_blocks(x, out)
        return out
    be, bb = kern.BLOCK_ELEMS, kern.BLOCK_BYTES
    spans = [(b, min(b + per_task, n_blocks)) for b in range(0, n_blocks, per_task)]
    # list() re-raises the first exception of any task.
    list(pool.map(lambda s: kern.quantize_blocks(x[s[0] * be : s[1] * be], out[s[0] * bb : s[1] * bb]), spans))
    return out


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


__all__ = ["QUANTIZERS", "default_threads", "quantize", "quantized_size"]
