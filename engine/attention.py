"""Causal grouped-query attention over the KV cache, in numba.

One kernel: for each query head and each new token, scores against every cached key up to
the token's own position, a max-subtracted softmax (summed in float64, as ggml does), and
the weighted sum of the cached values. Heads run in parallel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, fastmath=True)
def attention(q, k_cache, v_cache, start_pos, scale, out):
    """q: (n_tok, n_head, hd) float32 for positions start_pos..start_pos+n_tok-1;
    k_cache, v_cache: (n_ctx, n_head_kv, hd) float32 holding positions 0..start_pos+n_tok-1;
    out: (n_tok, n_head, hd) float32."""
    n_tok, n_head, hd = q.shape
    n_head_kv = k_cache.shape[1]
    group = n_head // n_head_kv  # consecutive query heads share one KV head
    n_kv = start_pos + n_tok
    for h in prange(n_head):
        kvh = h // group
        scores = np.empty(n_kv, dtype=np.float32)
        for t in range(n_tok):
            last = start_pos + t  # causal: a token sees itself and what came before
            best = -np.inf
            for j in range(last + 1):
                s = np.float32(0.0)
                for d in range(hd):
                    s += q[t, h, d] * k_cache[j, kvh, d]
                s *= scale
                scores[j] = s
                if s > best:
                    best = s
            total = 0.0  # float64
            for j in range(last + 1):
                e = math.exp(scores[j] - best)
                scores[j] = e
                total += e
            inv = np.float32(1.0 / total)
            for d in range(hd):
                out[t, h, d] = 0.0
            for j in range(last + 1):
                p = scores[j] * inv
                for d in range(hd):
                    out[t, h, d] += p * v_cache[j, kvh, d]
