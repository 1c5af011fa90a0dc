"""Benchmark: `codeup serve` with 1, 4 and 8 concurrent streaming clients.

Starts `codeup serve` (on a free loopback port), warms it up, then for each client count
sends that many streaming completions at once (different prompts, greedy, the same number
of tokens each) and reports: aggregate generation tok/s (all clients' tokens over the
wall time from the first request to the last token), its ratio to one client's, p50/p95
time to first token, and the median per-client tok/s (after its first token).

Optionally, for comparison:
  --baseline-repo DIR    `codeup serve` of another checkout (e.g. the single-sequence one),
                         one client
  --llama-python PY      llama.cpp's own continuous batching of the same prompts, in process
                         through llama-cpp-python (llama_cpp_batched.py: what `llama-server
                         -np N` computes, less the HTTP; llama-cpp-python's own server runs
                         one request at a time, so it is not the comparison)

    python tests/bench/bench_server_concurrency.py [-m MODEL] [-n 32] [--clients 1,4,8] [-np 4]

The numbers are rough on a shared machine: run it on a quiet one for figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import http.client
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

START_SECONDS = 600  # a 7B model loads in well under this

WORDS = ("river", "window", "garden", "engine", "letter", "mountain", "signal", "pencil", "harbor", "violin")


def prompt_for(i: int) -> str:
    """A different prompt for each client (no shared prefix beyond the first word)."""
    words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(12)]
    return f"Story {i}: the " + " ".join(words) + " and then"


class Server:
    """A server subprocess on a free port, found from its first line of output."""

    def __init__(self, argv: list[str], cwd: Path, env: dict, pattern: str) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)
        self.port = 0
        lines: list[str] = []
        found = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                lines.append(line)
                match = re.search(pattern, line)
                if match and not found.is_set():
                    self.port = int(match[1])
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(START_SECONDS):
            self.stop()
            raise SystemExit(f"the server did not start: {''.join(lines[-5:])}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def stream_one(port: int, model: str, prompt: str, n: int, out: dict, start: threading.Barrier) -> None:
    """One streaming completion; records when it was sent, each token's arrival, the count."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    body = {"model": model, "prompt": prompt, "max_tokens": n, "temperature": 0, "stream": True}
    start.wait()
    out["sent"] = time.perf_counter()
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    arrivals = []
    while True:
        line = response.readline()
        if not line:
            break
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            break
        choice = json.loads(data).get("choices") or [{}]
        if choice[0].get("text"):
            arrivals.append(time.perf_counter())
    conn.close()
    out["arrivals"] = arrivals


def run_clients(port: int, model: str, clients: int, n: int, offset: int) -> dict:
    results = [dict() for _ in range(clients)]
    barrier = threading.Barrier(clients)
    threads = [threading.Thread(target=stream_one, args=(port, model, prompt_for(offset + i), n, results[i], barrier))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    begin = min(r["sent"] for r in results)
    end = max(r["arrivals"][-1] for r in results if r["arrivals"])
    tokens = sum(len(r["arrivals"]) for r in results)
    ttft = sorted(r["arrivals"][0] - r["sent"] for r in results if r["arrivals"])
    per_client = [(len(r["arrivals"]) - 1) / (r["arrivals"][-1] - r["arrivals"][0])
                  for r in results if len(r["arrivals"]) > 1 and r["arrivals"][-1] > r["arrivals"][0]]
    first = min(r["arrivals"][0] for r in results if r["arrivals"])
    after_first = sum(max(len(r["arrivals"]) - 1, 0) for r in results)
    return {"clients": clients, "tokens": tokens, "seconds": end - begin, "aggregate": tokens / (end - begin),
            "generation": after_first / (end - first) if end > first else 0.0,
            "ttft_p50": statistics.median(ttft), "ttft_p95": ttft[min(len(ttft) - 1, int(0.95 * len(ttft)))],
            "per_client": statistics.median(per_client) if per_client else 0.0}


def bench(name: str, port: int, model: str, counts: list[int], n: int) -> list[dict]:
    run_clients(port, model, 1, 4, offset=100)  # warm-up: first compiles, first touch of the weights
    rows = []
    for k, clients in enumerate(counts):
        row = run_clients(port, model, clients, n, offset=10 * k)
        row["name"] = name
        rows.append(row)
        print(f"  {name}: {clients} client(s): {row['aggregate']:.2f} tok/s aggregate", flush=True)
    return rows


def print_table(rows: list[dict]) -> None:
    print("all tok/s: every token over the wall time from the requests to the last token (prompts included);")
    print("gen tok/s: tokens after each client's first one, from the first first token to the last token")
    print(f"{'server':<16} {'clients':>7} {'tokens':>6} {'wall s':>7} {'all tok/s':>9} {'x one':>6} "
          f"{'gen tok/s':>9} {'x one':>6} {'TTFT p50':>8} {'TTFT p95':>8} {'client tok/s':>12}")
    one = {r["name"]: r for r in rows if r["clients"] == 1}
    for r in rows:
        base = one.get(r["name"])
        ratio = r["aggregate"] / base["aggregate"] if base else float("nan")
        gen_ratio = r["generation"] / base["generation"] if base and base["generation"] else float("nan")
        print(f"{r['name']:<16} {r['clients']:>7} {r['tokens']:>6} {r['seconds']:>7.1f} {r['aggregate']:>9.2f} "
              f"{ratio:>6.2f} {r['generation']:>9.2f} {gen_ratio:>6.2f} {r['ttft_p50']:>7.2f}s "
              f"{r['ttft_p95']:>7.2f}s {r['per_client']:>12.2f}")


def codeup_serve(repo: Path, args, np_slots: int | None) -> Server:
    from codeup_tui.engine.default_model import ensure_default_model

    model = args.model or str(ensure_default_model())
    argv = [sys.executable, "-m", "codeup_tui.engine.cli", "serve", "-m", model, "--port", "0", "-c", str(args.ctx)]
    if np_slots is not None:
        argv += ["-np", str(np_slots)]
    if args.threads:
        argv += ["-t", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(repo))
    return Server(argv, repo, env, r"http://127\.0\.0\.1:(\d+)/v1")


def llama_cpp_rows(args, counts: list[int]) -> list[dict]:
    """llama.cpp's own batched decoding of the same prompts (llama_cpp_batched.py, run by the
    interpreter that has llama-cpp-python): what `llama-server -np N` computes, without HTTP."""
    from codeup_tui.engine.default_model import ensure_default_model
    from codeup_tui.engine.openmp_env import environ_for_other_programs

    model = args.model or str(ensure_default_model())
    argv = [args.llama_python, str(Path(__file__).with_name("llama_cpp_batched.py")), model,
            "--clients", ",".join(map(str, counts)), "-n", str(args.n), "-c", str(args.ctx)]
    if args.threads:
        argv += ["-t", str(args.threads)]
    argv += [prompt_for(i) for i in range(max(counts))]
    proc = subprocess.run(argv, capture_output=True, text=True, env=environ_for_other_programs())
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"llama.cpp comparison skipped: {reason}")
        return []
    rows = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            row["name"] = "llama.cpp batch"
            print(f"  llama.cpp batch: {row['clients']} client(s): {row['aggregate']:.2f} tok/s aggregate", flush=True)
            rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", help="model file (default: the default model)")
    ap.add_argument("-n", type=int, default=32, help="tokens each client generates (default 32)")
    ap.add_argument("-t", "--threads", type=int)
    ap.add_argument("-c", "--ctx", type=int, default=2048, help="context of the server (default 2048)")
    ap.add_argument("-np", "--parallel", type=int, default=4, help="codeup serve's slots (default 4)")
    ap.add_argument("--clients", default="1,4,8", help="client counts (default 1,4,8)")
    ap.add_argument("--baseline-repo", type=Path, help="also run this checkout's `codeup serve` (1 client)")
    ap.add_argument("--llama-python", help="an interpreter with llama-cpp-python: compare with llama.cpp")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    rows: list[dict] = []
    server = codeup_serve(REPO, args, args.parallel)
    try:
        rows += bench(f"codeup -np {args.parallel}", server.port, "m", counts, args.n)
    finally:
        server.stop()
    if args.baseline_repo:
        base = codeup_serve(args.baseline_repo.resolve(), args, None)
        try:
            rows += bench("baseline", base.port, "m", [1], args.n)
        finally:
            base.stop()
    if args.llama_python:
        rows += llama_cpp_rows(args, counts)
    print(f"model: {args.model or 'default'}, {args.n} tokens per client, context {args.ctx}, "
          f"threads {args.threads or 'all'}")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
