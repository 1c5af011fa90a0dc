"""Which order of float operations the kernels sum in: the engine's own, or llama.cpp's.

Float addition is not associative, so two correct engines give logits that differ in the
last bits unless they add in the same order. The engine has two orders:

- ENGINE (the default): every token summed as it would be alone, in a batch or not, so a
  token's logits are the same bits however the prompt was split and drafted tokens checked
  in one batch get the logits they would get one at a time (speculative decoding is
  lossless); attention with llama.cpp's operands (halves) summed along positions, sixteen
  positions' scores in one vector (attention.py: no sum across lanes); Q4_1 products as one exact integer
  sum per block of 32, scaled once (as llama.cpp's repacked Q4_0 kernels do): one conversion
  and one fused multiply-add per block where llama.cpp's eight lanes take eight of each.
- LLAMA_CPP: llama.cpp's own arithmetic, bit for bit where the kernels can: attention in its
  batch-dependent order (one token alone, tinyBLAS in a batch; one element at a time, slow), Q4_1 in
  ggml_vec_dot_q4_1_q8_1's eight float lanes. The parity tests check the kernels against
  llama.cpp's reference logits in this order.

The other products (Q4_0, Q5_0, Q5_1, Q8_0, the k-quants, the float types) take llama.cpp's
order in both. The choice is process-wide; `summation_order(LLAMA_CPP)` switches for a block.
"""

from __future__ import annotations

from contextlib import contextmanager

ENGINE = "engine"
LLAMA_CPP = "llama.cpp"
ORDERS = (ENGINE, LLAMA_CPP)

_order = ENGINE


def current() -> str:
    """The order the kernels sum in now."""
    return _order


@contextmanager
def summation_order(order: str):
    """Within the block, every kernel sums in `order` (ENGINE or LLAMA_CPP)."""
    global _order
    if order not in ORDERS:
        raise ValueError(f"unknown summation order {order!r} (known: {', '.join(ORDERS)})")
    before, _order = _order, order
    try:
        yield
    finally:
        _order = before
