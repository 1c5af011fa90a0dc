"""Keys Textual's terminal parser does not report on its own.

Over SSH and in tmux, alt+enter arrives as ESC followed by CR. Textual (8.x) reads that as
"escape pressed, then enter" folded into a plain `enter`, because its table maps CR to a
named key before the alt prefix is applied — so alt+enter would insert a newline instead of
sending. Registering the two-byte sequence makes it the key `alt+enter`, which the `send`
binding lists. (Terminals with the kitty keyboard protocol report alt+enter themselves.)
This reaches into a private table of Textual (no public API maps a key sequence); the tmux
test (tests/e2e/test_tui_e2e.py) sends a real alt+enter, so an upgrade that breaks it fails there.
"""

from __future__ import annotations

from types import SimpleNamespace

ALT_ENTER_SEQUENCE = "\x1b\r"


def register_terminal_keys() -> None:
    from textual import _ansi_sequences

    # The parser reads `.value` of each entry of a tuple as the key's name.
    _ansi_sequences.ANSI_SEQUENCES_KEYS.setdefault(ALT_ENTER_SEQUENCE, (SimpleNamespace(value="alt+enter"),))
