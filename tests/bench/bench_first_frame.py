"""Benchmark: time from launching `codeup-tui` to its first frame on screen.

Starts the app in tmux (80x24) on demo/ and polls the pane until the layout is drawn (the
editor's border); the model loads afterwards, in the background. Reports the median of
several launches, and separately when the model's status line appears.

    python tests/bench/bench_first_frame.py [--model PATH] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def launch(model: str) -> tuple[float, float]:
    sock = f"bench-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", sock]
    # A throwaway data folder: the run must not restore (or save) the user's demo/ selection.
    data = tempfile.mkdtemp(prefix="codeup-bench-data-")
    cmd = (f"cd {REPO} && CODEUP_TUI_DATA={data} TERM=screen-256color {sys.executable} -m codeup_tui.tui demo "
           f"--model {model}; sleep 30")
    t0 = time.perf_counter()
    subprocess.run(tmux + ["new-session", "-d", "-s", "b", "-x", "80", "-y", "24", cmd], check=True)
    first = loaded = None
    try:
        while time.perf_counter() - t0 < 60 and loaded is None:
            screen = subprocess.run(tmux + ["capture-pane", "-p", "-t", "b"], capture_output=True, text=True).stdout
            now = time.perf_counter() - t0
            if first is None and "Instruction" in screen:
                first = now
            if "ctx 0/" in screen:
                loaded = now
            time.sleep(0.01)
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)
    return first or float("nan"), loaded or float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if args.model is None:
        from codeup_tui.engine.default_model import ensure_default_model

        args.model = str(ensure_default_model())
    load_before = os.getloadavg()[0]
    runs = [launch(args.model) for _ in range(args.runs)]
    firsts = sorted(r[0] for r in runs)
    loads = sorted(r[1] for r in runs)
    print(f"first frame: median {statistics.median(firsts):.2f} s (min {firsts[0]:.2f}, max {firsts[-1]:.2f}) over {len(runs)} launches")
    print(f"model ready: median {statistics.median(loads):.2f} s (min {loads[0]:.2f}, max {loads[-1]:.2f})")
    # Other programs' load slows both: a number is comparable only with one taken as idle.
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
