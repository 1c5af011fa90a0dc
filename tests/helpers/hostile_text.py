"""Text that would drive a terminal if it reached one, for the escape-injection tests: what a
hostile repository, model file or server can put into what codeup shows."""

from __future__ import annotations

CLIPBOARD = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # OSC 52: the clipboard becomes "echo pwned"
TITLE = "\x1b]0;pwned title\x1b\\"  # OSC 0, ST-terminated: the window title
CLEAR = "\x1b[2J"  # CSI 2J: clear the screen (to draw a fake prompt)
PASTE_END = "\x1b[201~"  # ends a bracketed paste early: what follows runs as typed
CSI_8BIT = "\x9b2J"  # the one-character (C1) CSI
RTL_OVERRIDE = "\u202e"

PAYLOAD = f"plain {CLIPBOARD}one {TITLE}two {CLEAR}three {PASTE_END}four {CSI_8BIT}five {RTL_OVERRIDE}six\n"
"""Every kind at once, each between words; ends with a newline."""

MODEL_ID = f"evil-model{CLIPBOARD}"

SEQUENCES = {
    "OSC 52": "\x1b]52",
    "OSC 0": "\x1b]0;",
    "CSI 2J": "\x1b[2J",
    "bracketed paste end": "\x1b[201~",
    "8-bit CSI": "\x9b",
    "right-to-left override": RTL_OVERRIDE,
}


def leaked(written: str) -> list[str]:
    """The hostile sequences found in what a program wrote to its terminal."""
    return [name for name, seq in SEQUENCES.items() if seq in written]


def split_pieces(text: str) -> list[str]:
    """``text`` cut into streamed pieces so that every ESC ends a piece: a sequence split
    across pieces must not come back together on the screen."""
    pieces, at = [], 0
    for i, char in enumerate(text):
        if char in "\x1b\x9b":
            pieces.append(text[at:i + 1])
            at = i + 1
    pieces.append(text[at:])
    return [p for p in pieces if p]
