"""What codeup shows on a terminal never drives it (engine/terminal_text.py): the sanitiser
itself, `codeup run --endpoint` on a pty against a hostile server (and its exact text when
redirected to a file), and `codeup info` on a model file whose name holds escape sequences."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers.paths import REPO
from tests.helpers.fault_server import FaultServer, json_answer, stream
from tests.helpers.hostile_text import MODEL_ID, PAYLOAD, leaked, split_pieces

from codeup_tui.engine.formats.gguf_writer import GGUFWriter
from codeup_tui.engine.ggml_types import GGMLType
from codeup_tui.engine.terminal_text import VisibleStream, printable, visible, visible_parts


# -- the sanitiser ---------------------------------------------------------------------------


@pytest.mark.parametrize("sequence, shown", [
    ("\x1b]52;c;ZWNobw==\x07", "\\x1b]52;c;ZWNobw==\\x07"),  # OSC 52, BEL-terminated
    ("\x1b]0;title\x1b\\", "\\x1b]0;title\\x1b\\"),  # OSC 0, ST-terminated
    ("\x1b[2J", "\\x1b[2J"),  # CSI
    ("\x1b[201~", "\\x1b[201~"),  # bracketed paste end
    ("\x1bP1$r\x1b\\", "\\x1bP1$r\\x1b\\"),  # DCS
    ("\x1bX sos \x1b\\\x1b^pm\x1b\\\x1b_apc\x1b\\", "\\x1bX sos \\x1b\\\\x1b^pm\\x1b\\\\x1b_apc\\x1b\\"),
    ("\x1b", "\\x1b"),  # a lone ESC
    ("\x9b2J", "\\x9b2J"),  # the 8-bit CSI
    ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),  # 8-bit OSC and ST
    ("\x00\x07\x08\x0b\x0c\x7f", "\\x00\\x07\\x08\\x0b\\x0c\\x7f"),  # other C0 controls, DEL
    ("a\rb", "a\\x0db"),  # a lone CR could draw over the line
    ("\u202eabc\u202c \u2066x\u2069 \u200f", "\\u202eabc\\u202c \\u2066x\\u2069 \\u200f"),  # bidi
])
def test_every_control_is_shown_as_its_escape(sequence, shown):
    assert visible(sequence) == shown
    assert visible(f"before {sequence} after") == f"before {shown} after"


def test_text_tabs_newlines_and_any_script_are_kept():
    text = "def f():\n\treturn 'héllo wörld ✓ 日本語 🙂 مرحبا'\r\n\n"
    assert visible(text) == text
    assert visible_parts(text) == [(text, False)]


def test_the_parts_mark_the_escapes():
    assert visible_parts("a\x1b[2Jb") == [("a", False), ("\\x1b", True), ("[2Jb", False)]


def test_printable_is_one_line():
    assert printable("name\n\t\x1b]0;x\x07") == "name\\n\\t\\x1b]0;x\\x07"
    assert printable("plain name ✓") == "plain name ✓"


@pytest.mark.parametrize("cut", ["every character", "after every escape"])
def test_a_stream_cut_anywhere_shows_the_same(cut):
    """An ESC ending one piece and `]52;...` starting the next must not come back together."""
    text = PAYLOAD + "line\r\nlast\r"
    pieces = list(text) if cut == "every character" else split_pieces(text)
    stream_ = VisibleStream()
    shown = "".join(stream_.feed(p) for p in pieces) + stream_.end()
    assert shown == visible(text)
    assert leaked(shown) == [] and "\x1b" not in shown
    assert shown.endswith("line\r\nlast\\x0d")


# -- codeup run --endpoint -----------------------------------------------------------------


@pytest.fixture
def hostile_server():
    server = FaultServer()
    server.on("/v1/models", json_answer(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]}))
    server.on("/v1/completions", stream(split_pieces("answer " + PAYLOAD)))
    yield server
    server.close()


def codeup_args(server) -> list[str]:
    # --no-escape: the payload's ST (ESC and a backslash) must reach the prompt as it is, not
    # as llama.cpp's "\t" escape
    return [sys.executable, "-m", "codeup_tui.engine.cli", "run", "--endpoint", server.url, "--color", "--no-escape",
            "-p", "prompt " + PAYLOAD, "-n", "20"]


def run_on_pty(args: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """Run `args` with stdout and stderr on a pseudo-terminal; (exit status, all it wrote)."""
    controller, terminal = pty.openpty()
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, cwd=REPO, env=env)
    os.close(terminal)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # EIO: the program closed its side
                    break
                if not data:
                    break
                out += data
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=10), out.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)


def test_codeup_run_on_a_terminal_writes_no_hostile_sequence(hostile_server):
    status, written = run_on_pty(codeup_args(hostile_server))
    assert status == 0, written
    assert "evil-model\\x1b]52;c;" in written  # the model id, on stderr, shown as text
    assert "prompt plain \\x1b]52;c;" in written and "answer plain \\x1b]52;c;" in written
    assert leaked(written) == []
    assert "\x1b[33m" in written  # our own --color still works


def test_codeup_run_redirected_writes_the_exact_text(hostile_server, tmp_path):
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        env = dict(os.environ, NO_COLOR="1")
        proc = subprocess.run(codeup_args(hostile_server), stdout=f, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              cwd=REPO, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == "prompt " + PAYLOAD + "answer " + PAYLOAD + "\n"
    assert leaked(proc.stderr.decode()) == []  # stderr is for a person: the model id shown as text


# -- codeup info ---------------------------------------------------------------------------


def test_codeup_info_shows_a_hostile_name_as_text(tmp_path):
    path = tmp_path / "hostile.gguf"
    w = GGUFWriter(path)
    w.add_metadata("general.architecture", "llama")
    w.add_metadata("general.name", "name " + PAYLOAD)
    w.add_tensor_info("token_embd.weight", GGMLType.F32, (8, 4))
    w.write([np.zeros(32, np.float32)])
    status, written = run_on_pty([sys.executable, "-m", "codeup_tui.engine.cli", "info", str(path)])
    assert "name plain \\x1b]52;c;" in written, written
    assert leaked(written) == []
    assert status == 0


# -- the TUI's renderers ---------------------------------------------------------------------


def test_the_tui_shows_file_text_names_and_titles_through_the_sanitiser():
    from codeup_tui.tui.screens.history import summary_line
    from codeup_tui.tui.screens.insert_dialog import diff_text
    from codeup_tui.tui.history import ConversationSummary
    from codeup_tui.tui.visible import visible_content, visible_rich, visible_text
    from rich.text import Text

    diff = diff_text(f"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+{PAYLOAD}")
    assert leaked(diff.plain) == [] and "+plain \\x1b]52;c;" in diff.plain
    assert any(span.style == "green" for span in diff.spans)  # the added line keeps its colour
    assert any(span.style == "dim" for span in diff.spans)  # the escapes are dim
    content = visible_content(PAYLOAD)
    assert content.plain == visible(PAYLOAD) and leaked(content.plain) == []
    assert visible_text("a\x1bb").plain == "a\\x1bb"
    assert visible_rich(Text("name\x9b2J")).plain == "name\\x9b2J"
    plain = Text("plain", style="bold")
    assert visible_rich(plain) is plain
    line = summary_line(ConversationSummary("id", f"title {PAYLOAD}", 0.0, 0.0, 1), now=0.0)
    assert leaked(line.plain) == []
