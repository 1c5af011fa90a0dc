"""Benchmark: every row of the speed targets, ours next to llama.cpp, in one table.

Each row is one `codeup bench --compare-llama-cpp --json` run (the two engines interleaved,
same file, threads and context); this script only chooses the rows and prints the ratios
next to their targets, so a run of it is one "quiet interleaved run" of the whole list.

    python tests/bench/bench_targets.py --llama-cpp-python PY --model-7b 7b.gguf \\
        --model-13b 13b.gguf --model-q4km smollm2-q4km.gguf [--json out.json]

The 7B and 13B files come from `codeup synth --shape 7b --type Q4_K_M` (and 13b), the
SmolLM2 Q4_K_M from `codeup quantize --allow-requantize <default model> OUT Q4_K_M`.
A row whose model is not given is left out (and said so).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# (label, which model, bench arguments)
ROWS = [
    ("default model (SmolLM2 Q4_1)", "default", ["-p", "512", "-n", "128", "-t", "1,2", "-r", "3"]),
    ("default model, 2,000 tokens in the cache", "default", ["-p", "0", "-n", "64", "-d", "2000", "-t", "2", "-r", "2"]),
    ("SmolLM2 Q4_K_M", "q4km", ["-p", "512", "-n", "128", "-t", "1,2", "-r", "3"]),
    ("7B-shape Q4_K_M", "7b", ["-p", "64,512", "-n", "16", "-t", "1,2", "-r", "1"]),
    ("13B-shape Q4_K_M", "13b", ["-p", "64", "-n", "8", "-t", "1,2", "-r", "1"]),
]


def run_row(args, model: str | None, bench_args: list[str]) -> list[dict]:
    argv = [sys.executable, "-m", "codeup_tui.engine.cli", "bench", *bench_args, "--compare-llama-cpp", "--json"]
    if args.llama_cpp_python:
        argv += ["--llama-cpp-python", args.llama_cpp_python]
    if model:
        argv += ["-m", model]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench failed: {' '.join(argv)}\n{proc.stderr.strip().splitlines()[-1:]}")
    out = json.loads(proc.stdout)
    return out["runs"] if "runs" in out else [out]


def table_rows(label: str, runs: list[dict]) -> list[str]:
    lines = []
    for run in runs:
        p, ours, theirs = run["params"], run["engines"]["codeup"], run["engines"]["llama.cpp"]
        depth = f" @ d{p['depth']}" if p.get("depth") else ""
        for test, n in (("pp", p["n_prompt"]), ("tg", p["n_gen"])):
            if test not in ours or not n:
                continue
            a, b = ours[test]["median"], theirs[test]["median"]
            ratio = a / b if b else float("nan")
            lines.append(f"| {label} | {p['threads']} | {test}{n}{depth} | {a:.2f} | {b:.2f} | {ratio:.2f} | {'yes' if ratio >= 1.0 else 'no'} |")
        rss = ours["peak_rss_bytes"] / 2**20
        lines.append(f"| {label} | {p['threads']} | load s / peak RSS MiB | {ours['load_s']:.2f} / {rss:.0f} "
                     f"| {theirs['load_s']:.2f} / {theirs['peak_rss_bytes'] / 2**20:.0f} | | |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-cpp-python", help="a Python interpreter that has llama_cpp (default: this one)")
    ap.add_argument("--model-7b")
    ap.add_argument("--model-13b")
    ap.add_argument("--model-q4km", help="SmolLM2 Q4_K_M")
    ap.add_argument("--only", help="comma-separated row models to run (default, q4km, 7b, 13b)")
    ap.add_argument("--json", help="also write every run's JSON here")
    args = ap.parse_args()
    models = {"default": None, "7b": args.model_7b, "13b": args.model_13b, "q4km": args.model_q4km}
    only = set(args.only.split(",")) if args.only else None
    lines = ["| workload | threads | test | codeup t/s | llama.cpp t/s | ratio | >= 1.0 |", "|---|---|---|---|---|---|---|"]
    everything = []
    start = time.monotonic()
    for label, which, bench_args in ROWS:
        if only and which not in only:
            continue
        if which != "default" and not models[which]:
            print(f"left out: {label} (no --model-{which})", file=sys.stderr)
            continue
        print(f"running: {label} ...", file=sys.stderr, flush=True)
        runs = run_row(args, models[which], bench_args)
        everything.append({"row": label, "runs": runs})
        lines += table_rows(label, runs)
    print("\n".join(lines))
    busy = [r["machine"].get("cpu_busy_before", 0) for row in everything for r in row["runs"]]
    print(f"\n{time.monotonic() - start:.0f} s; other work on the machine before each row: "
          f"{', '.join(f'{b:.0%}' for b in busy)}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
