"""Benchmark: the second turn of a chat re-evaluates only its new tokens.

Turn 1 asks about a demo file (Alpaca with the file as ### Input:); turn 2 follows up in the
same conversation. Reports prompt tokens evaluated and prompt time for both turns.

    python tests/bench/bench_prompt_cache.py [-m MODEL] [-t THREADS]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

from codeup_tui import engine
from codeup_tui.engine.default_model import ensure_default_model
from codeup_tui.engine.generate import Generator
from codeup_tui.engine.sampling import SamplingParams
from codeup_tui.engine.templates import load_template


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model")
    ap.add_argument("-t", "--threads", type=int)
    ap.add_argument("-n", type=int, default=32, help="tokens generated per turn")
    args = ap.parse_args()
    model = engine.load_model(args.model or ensure_default_model(), n_threads=args.threads)
    gen = Generator(model)
    template = load_template("alpaca")
    source = (REPO / "demo" / "textstats" / "counter.py").read_text()
    files = f"demo/textstats/counter.py\n```python\n{source}```"
    greedy = SamplingParams(temperature=0)
    turns = []
    rows = []
    for i, instruction in enumerate(["Find the bug in average_word_length.", "Now write a test for the fix."]):
        prompt = template.render_conversation(turns, instruction, files if not turns else None)
        h = gen.start(prompt, greedy, max_tokens=args.n, stop=template.stop)
        answer = h.text()
        t = h.result.timings
        rows.append((i + 1, t.prompt_tokens, t.prompt_evaluated, t.prompt_seconds, t.generation_tokens_per_second))
        turns.append((instruction, files if not turns else None, answer))
    print(f"model: {model.info.name} ({model.info.file_type}), threads: {args.threads or 'all'}")
    print("turn  prompt tokens  evaluated  prompt time  gen tok/s")
    for turn, total, evaluated, seconds, tps in rows:
        print(f"{turn:>4}  {total:>13}  {evaluated:>9}  {seconds:>9.2f} s  {tps:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
