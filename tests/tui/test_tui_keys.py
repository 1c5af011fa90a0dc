"""Terminal key sequences the app relies on, through Textual's own parser."""

from __future__ import annotations

from textual._xterm_parser import XTermParser

from codeup_tui.tui.terminal_keys import ALT_ENTER_SEQUENCE, register_terminal_keys


def parse(data: str) -> list[str]:
    parser = XTermParser()
    return [e.key for e in list(parser.feed(data)) + list(parser.feed("")) if hasattr(e, "key")]


def test_alt_enter_from_tmux_is_alt_enter():
    register_terminal_keys()
    assert parse(ALT_ENTER_SEQUENCE) == ["alt+enter"]


def test_enter_ctrl_j_and_escape_are_unchanged():
    register_terminal_keys()
    assert parse("\r") == ["enter"]
    assert parse("\n") == ["ctrl+j"]
    assert parse("\x1b") == ["escape"]
    assert parse("a\rb") == ["a", "enter", "b"]
