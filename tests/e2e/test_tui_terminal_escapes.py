"""codeup-tui in tmux against a hostile server and a hostile repository: the bytes the app
writes to its terminal (``tmux pipe-pane``) hold none of the sequences in the streamed
answer, the model id, a context file shown with ctrl+r, or a file name."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.fault_server import FaultServer, json_answer, stream
from tests.helpers.hostile_text import MODEL_ID, PAYLOAD, TITLE, leaked, split_pieces
from tests.helpers.terminal import ANSWER_TIMEOUT, MODEL_LOADED_TIMEOUT, Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def written(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace")


def test_tui_writes_no_hostile_sequence_to_the_terminal(tmp_path):
    project = tmp_path / "repo"
    project.mkdir()
    (project / "notes.txt").write_text("the notes\n" + PAYLOAD)
    (project / f"name{TITLE}.txt").write_text("x\n")
    capture = tmp_path / "terminal-bytes"
    server = FaultServer()
    server.on("/v1/models", json_answer(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]}))
    server.on("/v1/completions", stream(split_pieces("Here:\n" + PAYLOAD + "```sh\n" + PAYLOAD + "```\n")))
    server.on("/v1/chat/completions", stream(split_pieces("Here:\n" + PAYLOAD), chat=True))
    command = (f"cd {shlex.quote(str(project))} && env TERM=screen-256color {shlex.quote(sys.executable)} "
               f"-m codeup_tui.tui . --endpoint {server.url}; sleep 30")
    tmux = Tmux(f"sh -c {shlex.quote(command)}", width=100, height=30)
    try:
        tmux.run("pipe-pane", "-t", "t", "-o", f"cat >> {shlex.quote(str(capture))}")
        tmux.wait_for(lambda s: "evil-model" in s and "ctx" in s, timeout=MODEL_LOADED_TIMEOUT)
        tmux.keys("C-o")
        tmux.wait_for(lambda s: "Find a file" in s)
        tmux.keys("notes")
        tmux.wait_for(lambda s: "notes.txt" in s)
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "Context: 1" in s)
        tmux.keys("C-r")  # the prompt, the file's text in it
        # the file's text in the prompt view, its sequences shown as text
        tmux.wait_for(lambda s: "Prompt (exactly as sent)" in s and "the notes" in s and "plain \\x1b]52;c;" in s)
        tmux.keys("Escape")
        tmux.wait_for(lambda s: "Prompt (exactly as sent)" not in s)
        tmux.keys("Explain the notes.")
        tmux.wait_for(lambda s: "the notes." in s)
        tmux.keys("C-j")
        screen = tmux.wait_for(lambda s: "done ·" in s, timeout=ANSWER_TIMEOUT)
        assert "six" in screen and "Traceback" not in screen
        assert "name\\x1b]0;pwned" in screen  # the file name, in the tree, shown as text
        time.sleep(0.5)
    finally:
        tmux.kill()
        server.close()
    text = written(capture)
    assert "plain" in text and "five" in text  # the capture holds the answer's words
    assert "\\x1b]52;c;" in text and "\\x9b2J" in text  # the sequences shown as text
    assert leaked(text) == []
