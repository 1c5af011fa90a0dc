"""Untrusted text (answers, file names and contents, model names, a server's messages) for
Textual widgets: through the engine's one sanitiser (``engine.terminal_text``), with the
escapes it puts in place of control characters dimmed, so they read as markers."""

from __future__ import annotations

from rich.text import Text
from textual.content import Content

from codeup_tui.engine.terminal_text import VisibleStream, printable, visible, visible_parts

__all__ = ["ESCAPE_STYLE", "VisibleStream", "printable", "visible", "visible_content", "visible_rich", "visible_text"]

ESCAPE_STYLE = "dim"


def visible_content(text: str, style: str = "") -> Content:
    """``text`` as Content for a Static: escapes dim, the rest in ``style``."""
    if visible(text) == text:
        return Content.styled(text, style) if style else Content(text)
    return Content.assemble(*[(part, ESCAPE_STYLE if escaped else style) if (escaped or style) else part
                              for part, escaped in visible_parts(text)])


def visible_text(text: str, style: str = "") -> Text:
    """``text`` as a Rich Text (tree labels, option lists, the diff): escapes dim."""
    out = Text(style=style)
    for part, escaped in visible_parts(text):
        out.append(part, style=ESCAPE_STYLE if escaped else None)
    return out


def visible_rich(text: Text) -> Text:
    """A Rich Text made safe: as it is when it needs no escape; else its plain text through
    ``visible_text`` (its inner styles dropped: only hostile text loses them)."""
    if visible(text.plain) == text.plain:
        return text
    return visible_text(text.plain, style=text.style if isinstance(text.style, str) else "")
