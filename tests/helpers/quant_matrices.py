"""Random weight matrices of every type for the kernel tests: random bytes in every block
(every bit pattern of values, scales and minimums), the half-precision scale fields kept
finite and small, of either sign as in real files (Q3_K and Q6_K scales are negative as
often as not)."""

from __future__ import annotations

import numpy as np

from codeup_tui.engine.ggml_types import TYPE_TRAITS, GGMLType
from codeup_tui.engine.quants import QuantMatrix

# byte offsets of the f16 scale fields (d, and dmin or m where the type has one) in a block
HALF_FIELDS = {
    GGMLType.Q4_0: (0,), GGMLType.Q4_1: (0, 2), GGMLType.Q5_0: (0,), GGMLType.Q5_1: (0, 2),
    GGMLType.Q8_0: (0,), GGMLType.Q2_K: (80, 82), GGMLType.Q3_K: (108,), GGMLType.Q4_K: (0, 2),
    GGMLType.Q5_K: (0, 2), GGMLType.Q6_K: (208,),
}


def random_matrix(t: GGMLType, n_out: int, n_in: int, rng, fill: int | None = None) -> QuantMatrix:
    """A random (n_out, n_in) matrix of type t; `fill`: every block byte that value instead
    (the scale fields still random)."""
    if t == GGMLType.F32:
        return QuantMatrix(t, n_in, n_out, rng.standard_normal((n_out, n_in), dtype=np.float32))
    if t == GGMLType.F16:
        return QuantMatrix(t, n_in, n_out, rng.standard_normal((n_out, n_in), dtype=np.float32).astype(np.float16))
    if t == GGMLType.BF16:
        bits = (rng.standard_normal((n_out, n_in), dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
        return QuantMatrix(t, n_in, n_out, bits)
    traits = TYPE_TRAITS[t]
    shape = (n_out, n_in // traits.block_size, traits.type_size)
    raw = rng.integers(0, 256, size=shape, dtype=np.uint8) if fill is None else np.full(shape, fill, np.uint8)
    for f in HALF_FIELDS[t]:
        d = rng.uniform(0.005, 0.015, size=shape[:2]) * rng.choice([-1.0, 1.0], size=shape[:2])
        raw[:, :, f : f + 2] = d.astype(np.float16).view(np.uint8).reshape(*shape[:2], 2)
    return QuantMatrix(t, n_in, n_out, raw.reshape(n_out, -1))
