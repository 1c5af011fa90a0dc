"""Attention alone: one step of k tokens over a cache of `--depth` positions, every layer.

    python tests/bench/bench_attention.py [--shape smollm2|7b] [--depth 1700] [--layers 30]
        [--threads 2] [--rounds 7] [--flush-mb 0]

Times engine.attention.attention for k = 1, 2, 4, 8, 16 tokens on random half-precision keys
and values (each layer its own cache, as in a model), best of `--rounds`. `--flush-mb N`
writes N MB between layers, as a layer's weights streaming through the caches would. Run it
with another checkout's interpreter to compare (it reads keys in the tiles of engine.attention
where the checkout has them, a position per row where it does not).

Not a test: it is not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from codeup_tui.engine import attention as attn

SHAPES = {"smollm2": (9, 3, 64, 30), "7b": (32, 32, 128, 8)}  # heads, KV heads, head size, layers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2")
    ap.add_argument("--depth", type=int, default=1700)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--flush-mb", type=int, default=0)
    args = ap.parse_args()
    n_head, n_kv, hd, layers = SHAPES[args.shape]
    layers = args.layers or layers
    ks = (1, 2, 4, 8, 16)
    if args.depth < max(ks) or args.rounds < 1 or layers < 1:
        ap.error("--depth must be at least 16, --rounds and --layers at least 1")
    numba.set_num_threads(args.threads)
    n_ctx = args.depth + 16
    rng = np.random.default_rng(0)
    caches = []
    for _ in range(layers):
        keys = (rng.standard_normal((n_ctx, n_kv, hd)) * 0.5).astype(np.float16).view(np.uint16)
        values = rng.standard_normal((n_ctx, n_kv, hd)).astype(np.float16).view(np.uint16)
        if hasattr(attn, "store_keys"):  # keys in tiles
            tiles = np.zeros(attn.key_cache_shape(1, n_ctx, n_kv, hd)[1:], dtype=np.uint16)
            attn.store_keys(tiles, 0, keys)
            keys = tiles
        caches.append((keys, values))
    flush = np.ones(args.flush_mb * 2**18 + 1, dtype=np.float32)
    scale = np.float32(1.0 / np.sqrt(hd))
    best = {}
    for k in ks:
        q = rng.standard_normal((k, n_head, hd)).astype(np.float32)
        out = np.empty_like(q)
        attn.attention(q, *caches[0], args.depth - k, scale, out)  # compiled before timing
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for keys, values in caches:
                if args.flush_mb:
                    flush += 1.0
                attn.attention(q, keys, values, args.depth - k, scale, out)
            times.append(time.perf_counter() - t0)
        best[k] = min(times)
        print(f"k={k:2}  {1000 * best[k]:8.2f} ms  ({layers} layers, {args.depth} positions)", flush=True)
    print(f"a token beyond the first (k=16): {1000 * (best[16] - best[1]) / 15:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
