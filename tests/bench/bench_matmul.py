"""Benchmark: GB/s of weight bytes for a 4096 x 11008 mat-vec (Llama-7B's FFN up/gate).

For information only, not a test. Weights are random blocks with sane scales; the number is
packed weight bytes read per second (the limit of a memory-bound token), best of --reps.
Timings on a shared machine vary from run to run: compare types within one run.

    python tests/bench/bench_matmul.py [--types Q4_0,Q4_K,Q6_K] [--tokens 1] [--reps 20]
    python tests/bench/bench_matmul.py --types all --tokens 1,64 --float

By default it times what the forward pass runs (llama.project: activations rounded to 8 bits
and the 8-bit integer kernel where the type has one, rounding included); --float times the
float product (quants.matmul: the float kernels of F32/F16/BF16, dequantize-then-multiply for
block types) instead; --tokens takes a list.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from codeup_tui.engine.ggml_types import GGMLType
from codeup_tui.engine.llama import project
from codeup_tui.engine.quants import KERNELS, QuantMatrix, matmul

# byte offsets of the f16 scale fields in each block type (kept sane in random blocks)
HALF_FIELDS = {
    GGMLType.Q4_0: (0,), GGMLType.Q4_1: (0, 2), GGMLType.Q5_0: (0,), GGMLType.Q5_1: (0, 2),
    GGMLType.Q8_0: (0,), GGMLType.Q2_K: (80, 82), GGMLType.Q3_K: (108,), GGMLType.Q4_K: (0, 2),
    GGMLType.Q5_K: (0, 2), GGMLType.Q6_K: (208,),
}


def random_matrix(t: GGMLType, n_out: int, n_in: int, rng) -> QuantMatrix:
    if t == GGMLType.F32:
        data = rng.standard_normal((n_out, n_in), dtype=np.float32)
    elif t == GGMLType.F16:
        data = rng.standard_normal((n_out, n_in), dtype=np.float32).astype(np.float16)
    elif t == GGMLType.BF16:
        data = (rng.standard_normal((n_out, n_in), dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    else:
        k = KERNELS[t]
        nb = n_in // k.BLOCK_ELEMS
        raw = rng.integers(0, 256, size=(n_out, nb, k.BLOCK_BYTES), dtype=np.uint8)
        for f in HALF_FIELDS[t]:
            d = rng.uniform(0.005, 0.015, size=(n_out, nb)).astype(np.float16)
            raw[:, :, f : f + 2] = d.view(np.uint8).reshape(n_out, nb, 2)
        data = raw.reshape(n_out, -1)
    return QuantMatrix(t, n_in, n_out, data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", default="Q4_0,Q4_K,Q6_K", help="comma-separated ggml type names, or 'all'")
    ap.add_argument("--n-in", type=int, default=4096)
    ap.add_argument("--n-out", type=int, default=11008)
    ap.add_argument("--tokens", default="1", help="token counts, comma-separated")
    ap.add_argument("--float", action="store_true", help="time the float kernels, not the forward pass's")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    names = [t.name for t in KERNELS] if args.types == "all" else args.types.split(",")
    threads = [int(n) for n in args.threads.split(",") if int(n) <= numba.config.NUMBA_NUM_THREADS]
    rng = np.random.default_rng(0)
    for n_tok in [int(n) for n in args.tokens.split(",")]:
        x = rng.standard_normal((n_tok, args.n_in), dtype=np.float32)
        print(f"{args.n_in} x {args.n_out}, {n_tok} token(s), best of {args.reps}" + (" (float kernels)" if args.float else ""))
        for name in names:
            w = random_matrix(GGMLType[name], args.n_out, args.n_in, rng)
            out = np.empty((n_tok, args.n_out), dtype=np.float32)
            if args.float:
                run = lambda: matmul(w, x, out)
            else:
                run = lambda: project(w, x)
            t0 = time.perf_counter()
            run()  # compile or load from the numba cache
            first = time.perf_counter() - t0
            cells = []
            for n in threads:
                numba.set_num_threads(n)
                best = float("inf")
                for _ in range(args.reps):
                    t0 = time.perf_counter()
                    run()
                    best = min(best, time.perf_counter() - t0)
                cells.append(f"{n} thr {best * 1e3:7.2f} ms {w.nbytes / best / 1e9:6.2f} GB/s")
            print(f"{name:6} {w.nbytes / 2**20:7.1f} MiB  first call {first:5.2f} s  |  " + "  |  ".join(cells))


if __name__ == "__main__":
    main()
