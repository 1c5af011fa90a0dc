"""Benchmark: encoding 100 KB of Python source with each fixture vocabulary (and the default
model's), best of --reps. For information only, not a test.

    python tests/bench/bench_tokenizer.py [--reps 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from codeup_tui.engine.default_model import cached_default_model
from codeup_tui.engine.formats import open_model_file
from codeup_tui.engine.tokenizer import build_tokenizer

REPO = Path(__file__).resolve().parents[2]
VOCABS = REPO.parent / "shared" / "fixtures" / "vocab"


def source_text(n_chars: int = 100_000) -> str:
    text = "".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "engine").rglob("*.py")))
    return (text * (n_chars // len(text) + 1))[:n_chars]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    text = source_text()
    paths = sorted(VOCABS.glob("ggml-vocab-*.gguf")) if VOCABS.is_dir() else []
    default = cached_default_model()
    if default is not None:
        paths.append(default)
    for path in paths:
        with open_model_file(path) as mf:
            if mf.tokenizer is None:
                continue
            try:
                tok = build_tokenizer(mf.tokenizer)
            except Exception as e:  # a vocabulary kind the engine does not read
                print(f"{path.name:40} skipped: {e}")
                continue
        best = float("inf")
        for _ in range(args.reps):
            t0 = time.perf_counter()
            ids = tok.encode(text)
            best = min(best, time.perf_counter() - t0)
        print(f"{path.name:40} {len(ids):7d} tokens  {best * 1e3:7.1f} ms  {len(text) / best / 1e6:5.2f} MB/s")


if __name__ == "__main__":
    main()
