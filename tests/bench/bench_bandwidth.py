"""Benchmark: generation as memory bandwidth, next to what this machine can stream at all.

Decoding one token reads every weight once (and the KV cache so far), so tokens/s times the
bytes read per token is the bandwidth an engine reaches; the machine's plain streaming read
(a parallel sum over an array far larger than the caches, one contiguous stretch per thread)
is the ceiling. Both go in one table, per thread count, for this engine and (with
--compare-llama-cpp) llama.cpp through llama-cpp-python, measured by `codeup bench`'s own
code (engine/bench.py: interleaved repetitions, medians).

For information only, not a test (pytest collects test_*.py; this file is not one).

    python tests/bench/bench_bandwidth.py [-m MODEL] [--threads 1,2] [-n 64] [-d 0]
                                          [--mib 2048] [--compare-llama-cpp]

Bytes per token: every tensor of the file, except that the token embedding contributes one
row (a lookup) unless it is also the output matrix (tied embeddings: read whole), plus the
half-precision keys and values of the cached positions (on average over the measured
tokens). Timings on a shared machine vary from run to run: compare rows within one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

import numba
import numpy as np
from numba import njit, prange

from codeup_tui.engine.bench import BenchParams, parse_int_list, run_bench
from codeup_tui.engine.formats import open_model_file


@njit(parallel=True, cache=False)
def _stream_sum(a, n_parts):
    """Sum of a (uint64), each of n_parts threads reading one contiguous stretch in order."""
    per = (a.size + n_parts - 1) // n_parts
    parts = np.zeros(n_parts, dtype=np.uint64)
    for p in prange(n_parts):
        s = np.uint64(0)
        for i in range(p * per, min(a.size, (p + 1) * per)):
            s += a[i]
        parts[p] = s
    return parts.sum()


def streaming_read_gbs(mib: int, threads: int, reps: int) -> float:
    """Best GB/s of a plain parallel read of `mib` MiB with `threads` threads."""
    a = np.ones(mib * 2**20 // 8, dtype=np.uint64)  # written once: every page is resident
    numba.set_num_threads(threads)
    _stream_sum(a, threads)  # compile
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        total = _stream_sum(a, threads)
        best = min(best, time.perf_counter() - t0)
    assert total == a.size  # the sum was really taken
    return a.nbytes / best / 1e9


def bytes_per_token(path: str, kv_positions: float) -> tuple[int, int]:
    """(weight bytes, KV-cache bytes) read to generate one token with `kv_positions` cached."""
    with open_model_file(path) as mf:
        hp = mf.hparams
        weights = 0
        for name, t in mf.tensors.items():
            if name == "token_embd.weight" and "output.weight" in mf.tensors:
                weights += t.nbytes // max(hp.n_vocab, 1)  # one row looked up
            else:
                weights += t.nbytes
        kv = int(2 * hp.n_layer * kv_positions * hp.n_head_kv * hp.head_dim * 2)  # K and V, half
    return weights, kv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", help="model file (default: the default model)")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    ap.add_argument("-n", "--n-gen", type=int, default=64, help="generated tokens per repetition (default 64)")
    ap.add_argument("-d", "--depth", type=int, default=0, help="tokens already in the cache (default 0)")
    ap.add_argument("-r", "--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--mib", type=int, default=2048, help="size of the streaming-read array in MiB (default 2048)")
    ap.add_argument("--compare-llama-cpp", action="store_true", help="also measure llama.cpp (llama-cpp-python)")
    ap.add_argument("--llama-cpp-python", metavar="PYTHON", help="a Python interpreter that has llama_cpp")
    args = ap.parse_args()
    threads = parse_int_list("--threads", args.threads)
    if args.model is None:
        from codeup_tui.engine.default_model import ensure_default_model

        args.model = str(ensure_default_model())

    print(f"streaming read: parallel sum over {args.mib} MiB, best of {args.reps}")
    stream = {t: streaming_read_gbs(args.mib, t, args.reps) for t in threads}

    rows = []
    kv_positions = 0.0
    for t in threads:
        p = BenchParams(args.model, n_prompt=0, n_gen=args.n_gen, threads=t, reps=args.reps, depth=args.depth)
        report = run_bench(p, compare_llama_cpp=args.compare_llama_cpp, llama_python=args.llama_cpp_python,
                           log=lambda text: print(f"  {text}", file=sys.stderr, flush=True))
        kv_positions = p.tg_prefix + (args.n_gen - 1) / 2  # cached positions, on average
        for r in report.results:
            rows.append((r.engine, t, r.tg.median))
    weights, kv = bytes_per_token(args.model, kv_positions)
    per_token = weights + kv

    print(f"\nmodel: {args.model}")
    print(f"bytes read per generated token: {per_token / 2**20:.1f} MiB "
          f"({weights / 2**20:.1f} MiB weights + {kv / 2**20:.1f} MiB KV cache at {kv_positions:.0f} positions)")
    print(f"\n{'what':<22} {'threads':>7} {'tok/s':>9} {'GB/s':>8} {'of streaming read':>18}")
    for t in threads:
        print(f"{'streaming read':<22} {t:>7} {'':>9} {stream[t]:>8.2f} {'100%':>18}")
    for engine, t, tps in rows:
        gbs = per_token * tps / 1e9
        print(f"{engine + ' generation':<22} {t:>7} {tps:>9.2f} {gbs:>8.2f} {100 * gbs / stream[t]:>17.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
