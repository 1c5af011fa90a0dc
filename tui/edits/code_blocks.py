"""The fenced code blocks of a Markdown answer, with their language.

Follows CommonMark's fence rules, which the answer's renderer (Textual's Markdown) follows
too, so block N here is fence N on screen:

- a fence is a run of at least three backticks or tildes; the closing fence uses the same
  character, is at least as long, and has nothing but spaces after it;
- a backtick fence's info string has no backtick (```` ``x`` ```` is inline code, not a fence);
- inside a block, a shorter fence or a fence with an info string is content: a four-backtick
  block can hold a whole three-backtick one ("nested" blocks come out as one block);
- a block the answer never closes (a stream still running, a model that stopped early)
  runs to the end of the text and says so (``closed`` is False).

The content's lines lose the opening fence's indentation (a fence inside a list item).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_PATH_LINE = re.compile(r"^[\w.\-/\\]+\.[\w]+$|^[\w.\-]+/[\w.\-/]+$")
DIFF_LANGUAGES = frozenset({"diff", "patch", "udiff"})


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block of an answer."""

    index: int
    """0-based position among the answer's blocks."""
    language: str
    """The info string's first word, lower case ("" when none)."""
    text: str
    """The content, each line ending in a newline (empty for an empty block)."""
    first_line: int
    """0-based line of the opening fence in the answer."""
    closed: bool
    path_hint: str | None = None
    """A file path the answer gives for the block (in the info string, or alone on the line
    before the fence), for the insert dialog's first guess."""

    @property
    def line_count(self) -> int:
        return self.text.count("\n")

    @property
    def is_diff(self) -> bool:
        """A unified diff: labelled so, or shaped like one (file headers and a hunk)."""
        if self.language in DIFF_LANGUAGES:
            return True
        lines = self.text.splitlines()
        return (any(line.startswith("--- ") for line in lines) and any(line.startswith("+++ ") for line in lines)
                and any(line.startswith("@@") for line in lines))

    def label(self) -> str:
        """"python, 12 lines" (for the block bar and the insert dialog)."""
        lines = self.line_count
        what = self.language or "text"
        return f"{what}, {lines} line{'' if lines == 1 else 's'}" + ("" if self.closed else ", unfinished")


def _opening(line: str) -> tuple[int, str, str] | None:
    """(indent, fence, info) when ``line`` opens a block."""
    match = _FENCE.match(line)
    if match is None:
        return None
    fence, info = match["fence"], match["info"].strip()
    if fence[0] == "`" and "`" in info:
        return None
    return len(match["indent"]), fence, info


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip(" ")
    if not stripped.startswith(fence):
        return False
    run = len(stripped) - len(stripped.lstrip(fence[0]))
    return run >= len(fence) and not stripped[run:].strip()


def _dedent(line: str, indent: int) -> str:
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent):]


def _hint_from_info(info: str) -> str | None:
    """``python:src/app.py`` or ``python src/app.py`` or ``title="src/app.py"``."""
    rest = info.split(None, 1)[1] if " " in info else ""
    head = info.split(None, 1)[0] if info else ""
    if ":" in head:
        rest = head.split(":", 1)[1]
    rest = rest.strip().removeprefix("title=").strip("\"'")
    return rest if rest and _PATH_LINE.match(rest) else None


def _hint_from_line(line: str) -> str | None:
    """A path alone on a line: ``src/app.py``, ``**src/app.py**:``, `` `app.py` ``."""
    text = line.strip().rstrip(":").strip("*`_ ").rstrip(":")
    return text if text and " " not in text and _PATH_LINE.match(text) else None


def find_code_blocks(answer: str) -> list[CodeBlock]:
    """Every fenced block of ``answer``, in order (see the module's rules)."""
    lines = answer.split("\n")
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        opened = _opening(lines[i])
        if opened is None:
            i += 1
            continue
        indent, fence, info = opened
        start = i
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            if _closes(lines[i], fence):
                closed = True
                i += 1
                break
            body.append(_dedent(lines[i], indent))
            i += 1
        if not closed and body and body[-1] == "":
            body.pop()  # the answer's own final newline is not a line of the block
        language = info.split(None, 1)[0].split(":", 1)[0].strip("{}.").lower() if info else ""
        hint = _hint_from_info(info)
        if hint is None:
            before = next((line for line in reversed(lines[:start]) if line.strip()), "")
            hint = _hint_from_line(before)
        text = "".join(line + "\n" for line in body)
        blocks.append(CodeBlock(len(blocks), language, text, start, closed, hint))
    return blocks
