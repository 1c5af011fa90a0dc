"""Text from elsewhere, made safe to show in a terminal: the one place that decides it.

Model output, file contents, model names and a server's ids or error text are untrusted: an
escape sequence in them would drive the user's terminal (set its title, clear the screen to
draw a fake prompt, write the clipboard with OSC 52, end a bracketed paste). Every character
that a terminal acts on instead of drawing is shown as its Python escape instead (ESC as
``\\x1b``, the 8-bit CSI as ``\\x9b``, a right-to-left override as ``\\u202e``), so the user
sees that something was there and nothing reaches the terminal:

- C0 controls (U+0000-U+001F) except tab and newline; a carriage return is kept only right
  before a newline (CRLF text), a lone one could move the cursor back over a line;
- DEL (U+007F) and the C1 controls (U+0080-U+009F, among them the 8-bit CSI, OSC and DCS);
- the bidirectional embedding, override and isolate characters, and the direction marks.

Every sequence starts with one of these characters (ESC or a C1 control), and each of them is
replaced wherever it stands, so the rest of a sequence is inert text; that also holds for
streamed text cut anywhere (``VisibleStream`` only holds back a final carriage return, to see
whether a newline follows). ``printable`` is the one-line form for messages and names in a
table: it also escapes newline, tab and everything else ``str.isprintable`` refuses.

What is written to a file, copied on purpose or sent to the model stays the exact text: this
is for display only (``codeup run > out.py`` writes the model's text unchanged).
"""

from __future__ import annotations

import re
from typing import TextIO

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + BIDI_CONTROLS + "]|\r(?!\n)")
"""What a terminal would act on; a CR is safe only before a newline."""


def escape(char: str) -> str:
    """``\\x1b``, ``\\x9b``, ``\\u202e``: the character as Python writes it in a string."""
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every terminal-controlling character shown as its escape (see the
    module's doc); tabs, newlines and all other text, any script, are kept."""
    return _UNSAFE.sub(lambda m: escape(m.group()), text)


def visible_parts(text: str) -> list[tuple[str, bool]]:
    """``visible(text)`` in pieces: (text, True) for an escape put in place of a character,
    (text, False) for text as it was; for showing the escapes in their own (dim) style."""
    parts: list[tuple[str, bool]] = []
    at = 0
    for match in _UNSAFE.finditer(text):
        if match.start() > at:
            parts.append((text[at:match.start()], False))
        parts.append((escape(match.group()), True))
        at = match.end()
    if at < len(text):
        parts.append((text[at:], False))
    return parts


def printable(text: str) -> str:
    """``text`` for one line (a message, a name in a table): every character that is not
    printable (newline and tab too, besides everything ``visible`` escapes) as its escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class VisibleStream:
    """``visible`` for text that comes in pieces (a streamed answer): what ``feed`` returns,
    joined, is ``visible`` of the whole text. Only a piece's final CR is held back until the
    next piece (or ``end``) says whether a newline follows it."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        if text.endswith("\r"):
            text, self._held = text[:-1], "\r"
        else:
            self._held = ""
        return visible(text)

    def end(self) -> str:
        text, self._held = self._held, ""
        return visible(text)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (text written there is shown, not stored)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
