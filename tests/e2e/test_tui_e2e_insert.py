"""codeup-tui in a real terminal (tmux, 80x24, TERM=screen-256color) with the real default
model: ask for a Python function, insert the answer's code block into a file of the demo
project with the keyboard only (alt+i, the finder, Enter, y), see the file changed on disk,
undo with alt+u, see it restored byte for byte.

The demo project is copied to a temporary folder first: the test writes into its files."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO
from tests.helpers.terminal import ANSWER_TIMEOUT, MODEL_LOADED_TIMEOUT, Tmux

def filtered(screen: str) -> bool:
    """The finder shows fewer files than it listed (its hint: "1 of 9 files")."""
    found = re.search(r"(\d+) of (\d+) files", screen)
    return found is not None and int(found[1]) < int(found[2]) and "textstats/counter.py" in screen


INSTRUCTION = "Write a Python function is_even(n) that returns True when n is even."


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_insert_a_generated_function_and_undo_in_tmux(default_model_file, tmp_path: Path):
    demo = tmp_path / "demo"
    shutil.copytree(REPO / "demo", demo, ignore=shutil.ignore_patterns(".codeup", "__pycache__"))
    target = demo / "textstats" / "counter.py"
    original = target.read_bytes()
    cmd = (f"cd {tmp_path} && TERM=screen-256color {sys.executable} -m codeup_tui.tui demo "
           f"--model {default_model_file} --temp 0 -n 150; sleep 60")
    tmux = Tmux(cmd, width=80, height=24)
    try:
        tmux.wait_for(lambda s: "Q4_1" in s and "ctx 0/" in s, timeout=MODEL_LOADED_TIMEOUT)  # model loaded
        tmux.keys(INSTRUCTION)
        tmux.wait_for(lambda s: "when n is even." in s)
        tmux.keys("C-j")
        screen = tmux.wait_for(lambda s: "done ·" in s or "token limit" in s, timeout=ANSWER_TIMEOUT)
        # The answer must hold a code block: alt+n selects it (a clear failure if none came).
        tmux.keys("M-n")
        screen = tmux.wait_for(lambda s: "block 1/" in s or "No code block" in s, timeout=10)
        assert "No code block" not in screen, f"the model's answer has no code block:\n{screen}"
        assert "python" in screen
        # Insert it: the dialog, ctrl+o to find the file, append (the default), preview, y.
        tmux.keys("M-i")
        tmux.wait_for(lambda s: "Insert into which file?" in s, timeout=10)
        tmux.keys("C-o")
        tmux.wait_for(lambda s: re.search(r"\d+ of \d+ files", s) is not None, timeout=10)  # listed
        tmux.keys("counter.py")
        tmux.wait_for(filtered, timeout=10)  # the list filtered, not only drawn
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "How should the block go into textstats/counter.py?" in s, timeout=10)
        tmux.keys("Enter")
        screen = tmux.wait_for(lambda s: "y: write" in s, timeout=10)
        assert "+++ b/textstats/counter.py" in screen and "+def " in screen
        tmux.keys("y")
        tmux.wait_for(lambda s: "Inserted" in s and "Wrote" in s, timeout=10)  # the toast
        written = target.read_bytes()
        assert written.startswith(original) and len(written) > len(original)
        assert b"def " in written[len(original):]
        # Undo: the file is back, byte for byte.
        tmux.keys("M-u")
        screen = tmux.wait_for(lambda s: "Undone" in s, timeout=10)  # the toast's title
        assert target.read_bytes() == original
        assert "Traceback" not in screen
    finally:
        tmux.kill()
