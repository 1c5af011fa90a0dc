"""codeup-tui in a real terminal (tmux, 80x24, TERM=screen-256color) with the real default
model: pick a file with the keyboard, send an instruction with ctrl+j, watch the answer
stream with tokens/s in the status line, send a second one with alt+enter and stop it with Esc."""

from __future__ import annotations

import shutil
import sys

import pytest

from tests.helpers.paths import REPO
from tests.helpers.terminal import ANSWER_TIMEOUT, MODEL_LOADED_TIMEOUT, Tmux


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_chat_over_a_file_in_tmux(default_model_file):
    cmd = (f"cd {REPO} && TERM=screen-256color {sys.executable} -m codeup_tui.tui demo "
           f"--model {default_model_file} --temp 0 -n 150; sleep 60")
    tmux = Tmux(cmd, width=80, height=24)
    try:
        tmux.wait_for(lambda s: "Q4_1" in s and "ctx 0/" in s, timeout=MODEL_LOADED_TIMEOUT)  # model loaded
        # pick demo/textstats/counter.py with the fuzzy finder
        tmux.keys("C-o")
        tmux.wait_for(lambda s: "counter" in s or "Find" in s)
        tmux.keys("counter")
        tmux.wait_for(lambda s: "counter.py" in s)
        tmux.keys("Enter")
        # the file is in the context (panel title) and the budget shows the files' share
        tmux.wait_for(lambda s: "files " in s and "Context: 1" in s)
        # an instruction, sent with ctrl+j
        tmux.keys("Explain what average_word_length does.")
        tmux.wait_for(lambda s: "average_word_length does." in s)  # typed, as a person would see
        tmux.keys("C-j")
        screen = tmux.wait_for(lambda s: "done ·" in s or "token limit" in s, timeout=ANSWER_TIMEOUT)
        assert "t/s" in screen.splitlines()[-2]  # the status line shows tokens/s
        assert "stopped ·" not in screen
        # a second, long answer, sent with alt+enter (tmux sends ESC CR, as terminals over SSH
        # do: tui/terminal_keys.py) and stopped with Esc while it streams
        tmux.keys("Now write a long tutorial about Python text processing.")
        tmux.wait_for(lambda s: "text processing." in s)
        tmux.keys("M-Enter")
        tmux.wait_for(lambda s: "answering…" in s or "processing the prompt" in s, timeout=60)
        tmux.keys("Escape")
        screen = tmux.wait_for(lambda s: "stopped ·" in s, timeout=30)
        assert "Traceback" not in screen
    finally:
        tmux.kill()
