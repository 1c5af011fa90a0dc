"""codeup-tui in a real terminal (tmux, 80x24) with the real default model, fresh config and
cache folders, prompted in the model's own chat template (SmolLM2's ChatML): with
textstats/counter.py attached, a request for a function gets a fenced Python block that
defines it, and the answer ends by itself (at the end-of-turn token, not a token limit)."""

from __future__ import annotations

import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO
from tests.helpers.terminal import MODEL_LOADED_TIMEOUT, Tmux

def filtered(screen: str) -> bool:
    """The finder shows fewer files than it listed (its hint: "1 of 9 files")."""
    found = re.search(r"(\d+) of (\d+) files", screen)
    return found is not None and int(found[1]) < int(found[2]) and "textstats/counter.py" in screen


INSTRUCTION = "Add a function sentence_count(text) that returns the number of sentences."


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_function_request_gets_a_python_block_in_the_models_format(default_model_file, isolated_cache,
                                                                       isolated_data):
    cmd = (f"cd {REPO} && TERM=screen-256color {sys.executable} -m codeup_tui.tui demo "
           f"--model {default_model_file} --temp 0 -n 1000; sleep 60")
    tmux = Tmux(cmd, width=80, height=24)
    try:
        # loaded, and the status line names the format: the model's own (ChatML)
        tmux.wait_for(lambda s: "Q4_1" in s and "ctx 0/" in s and "model: ChatML" in s, timeout=MODEL_LOADED_TIMEOUT)
        tmux.keys("C-o")
        tmux.wait_for(lambda s: re.search(r"\d+ of \d+ files", s) is not None, timeout=15)  # the finder listed
        tmux.keys("counter.py")
        tmux.wait_for(filtered, timeout=15)
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "files " in s and "Context: 1" in s and "textstats/counter" in s)
        tmux.keys(INSTRUCTION)
        tmux.wait_for(lambda s: "number of sentences." in s)
        tmux.keys("C-j")
        screen = tmux.wait_for(lambda s: "done ·" in s or "token limit" in s or "stopped ·" in s, timeout=300)
        assert "done ·" in screen, f"the answer did not end by itself:\n{screen}"
        assert "Traceback" not in screen
    finally:
        tmux.kill()
    with sqlite3.connect(isolated_data / "history.sqlite3") as db:
        answers = [row[0] for row in db.execute("SELECT answer FROM turns")]
    assert len(answers) == 1
    block = re.search(r"```python\n(.*?)```", answers[0], re.S)
    assert block is not None, f"no fenced Python block in the answer:\n{answers[0]}"
    assert re.search(r"^def sentence_count\(", block[1], re.M), f"no sentence_count in the block:\n{answers[0]}"
