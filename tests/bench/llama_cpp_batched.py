"""llama.cpp's own continuous batching, in process, for bench_server_concurrency.py: what
`llama-server -np N` does for N clients, without the HTTP. Run by an interpreter that has
llama-cpp-python (not this project's): N sequences, each its prompt then `n` greedy tokens,
every step one llama_decode of all sequences' tokens. Prints one JSON line per client count.

    PY tests/bench/llama_cpp_batched.py MODEL --clients 1,4,8 -n 32 -c 2048 [-t THREADS] PROMPT...
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time

import llama_cpp as L
import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompts", nargs="+")
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-c", "--ctx", type=int, default=2048)
    ap.add_argument("-t", "--threads", type=int, default=0)
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    L.llama_backend_init()
    model = L.llama_model_load_from_file(args.model.encode(), L.llama_model_default_params())
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)

    def tokenize(text: str) -> list[int]:
        buf = (L.llama_token * 4096)()
        n = L.llama_tokenize(vocab, text.encode(), len(text.encode()), buf, 4096, True, False)
        return list(buf[:n])

    for k, clients in enumerate([1] + counts):  # the first: a warm-up, not reported
        params = L.llama_context_default_params()
        params.n_ctx = args.ctx
        params.n_seq_max = max(clients, 1)
        params.n_batch = 512
        if args.threads:
            params.n_threads = params.n_threads_batch = args.threads
        ctx = L.llama_init_from_model(model, params)
        prompts = [tokenize(args.prompts[i % len(args.prompts)]) for i in range(clients)]
        batch = L.llama_batch_init(512, 0, clients)
        n_past = [0] * clients
        generated = [0] * clients
        first = [0.0] * clients
        last = [0.0] * clients
        begin = time.perf_counter()
        pending = [None] * clients  # the token each sequence evaluates next
        # prompts: all in one batch (llama-server fills a batch with them the same way)
        while True:
            batch.n_tokens = 0
            rows = []
            for s in range(clients):
                if pending[s] is not None:
                    todo, want = [pending[s]], True
                elif n_past[s] < len(prompts[s]):
                    todo, want = prompts[s][n_past[s]:], True
                else:
                    continue
                for j, tok in enumerate(todo):
                    i = batch.n_tokens
                    batch.token[i] = tok
                    batch.pos[i] = n_past[s] + j
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = s
                    batch.logits[i] = want and j == len(todo) - 1
                    batch.n_tokens += 1
                rows.append((s, batch.n_tokens - 1))
                n_past[s] += len(todo)
            if not rows:
                break
            if L.llama_decode(ctx, batch) != 0:
                raise SystemExit("llama_decode failed")
            now = time.perf_counter()
            for s, i in rows:
                logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
                if generated[s] >= args.n:
                    pending[s] = None
                    continue
                pending[s] = int(np.argmax(logits))
                generated[s] += 1
                if generated[s] == 1:
                    first[s] = now
                last[s] = now
                if generated[s] >= args.n:
                    pending[s] = None  # its last token needs no evaluation
        end = max(last)
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        if k == 0:
            continue
        tokens = sum(generated)
        per_client = [(g - 1) / (b - a) for g, a, b in zip(generated, first, last) if g > 1 and b > a]
        ttft = sorted(f - begin for f in first)
        gen = sum(max(g - 1, 0) for g in generated) / (end - min(first)) if end > min(first) else 0.0
        print(json.dumps({"clients": clients, "tokens": tokens, "seconds": end - begin,
                          "aggregate": tokens / (end - begin), "generation": gen, "ttft_p50": float(np.median(ttft)),
                          "ttft_p95": ttft[min(len(ttft) - 1, int(0.95 * len(ttft)))],
                          "per_client": float(np.median(per_client)) if per_client else 0.0}), flush=True)
    L.llama_model_free(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
