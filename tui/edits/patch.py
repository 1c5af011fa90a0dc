"""Unified diffs: read one, and apply it to a file's lines or refuse it whole.

A hunk applies where its old lines (context and removals) are, exactly: at the line its
header names, else at the nearest place they match (the file moved on a little, as GNU
patch allows); with no line numbers in the header (``@@ ... @@``, as models often write
them) the old lines must match exactly one place. There is no fuzz: a hunk that matches
nowhere rejects the whole patch, naming the hunk and the first line that differs, and
nothing is changed. Models often get a header's line counts wrong, so the counts are not
trusted: a hunk is every hunk-shaped line up to the next header.

Lines keep their own endings: context lines are kept byte for byte, added lines get the
file's newline. ``\\ No newline at end of file`` is honoured; without it the file keeps its
final-newline convention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@+\s*(?:-(\d+)(?:,(\d+))?\s+\+(\d+)(?:,(\d+))?)?.*?(?:@@+.*)?$")
_SKIP = ("diff ", "index ", "new file mode", "deleted file mode", "old mode", "new mode", "similarity index",
         "rename from", "rename to", "Binary files")


class PatchError(ValueError):
    """Why a patch does not apply (one line)."""


@dataclass(frozen=True)
class Hunk:
    old_start: int | None
    """1-based line the header names (0 for an insertion into an empty file); None: no numbers."""
    old_count: int | None
    lines: tuple[tuple[str, str], ...]
    """(tag, text): tag is " " (context), "-" (removed) or "+" (added); text has no newline."""
    no_newline_old: bool = False
    no_newline_new: bool = False

    @property
    def old_lines(self) -> list[str]:
        return [text for tag, text in self.lines if tag != "+"]

    @property
    def new_lines(self) -> list[str]:
        return [text for tag, text in self.lines if tag != "-"]


@dataclass(frozen=True)
class FilePatch:
    old_path: str | None
    """As the header names it, ``a/`` stripped; None for /dev/null or no header."""
    new_path: str | None
    hunks: tuple[Hunk, ...] = field(default_factory=tuple)
    creates: bool = False
    """The old side is /dev/null: the diff makes a new file."""
    deletes: bool = False
    """The new side is /dev/null: the diff deletes the file."""

    @property
    def path(self) -> str | None:
        return self.new_path or self.old_path


def _header_path(line: str) -> tuple[str | None, bool]:
    """(path, is /dev/null) from a ``--- a/x`` or ``+++ b/x`` line."""
    name = line[4:].split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None, True
    if name.startswith(("a/", "b/")):
        name = name[2:]
    return (name or None), False


def _is_hunk_line(line: str) -> bool:
    return line == "" or line[0] in " +-\\"


def parse_patch(text: str) -> list[FilePatch]:
    """Every file's patch in ``text``; PatchError when there is no hunk at all."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    patches: list[FilePatch] = []
    old_path = new_path = None
    dev_null_old = deletes = False
    hunks: list[Hunk] = []
    started = False

    def close_file() -> None:
        nonlocal hunks, started
        if started and hunks:
            patches.append(FilePatch(old_path, new_path, tuple(hunks), dev_null_old, deletes))
        hunks = []
        started = False

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            close_file()
            old_path, dev_null_old = _header_path(line)
            new_path, deletes = _header_path(lines[i + 1])
            started = True
            i += 2
            continue
        match = _HUNK.match(line) if line.startswith("@@") else None
        if match is None:
            i += 1  # a header line (diff --git, index ...) or prose around the diff
            continue
        if not started:
            old_path = new_path = None
            dev_null_old = deletes = False
            started = True
        old_start = int(match[1]) if match[1] is not None else None
        old_count = (int(match[2]) if match[2] is not None else 1) if match[1] is not None else None
        body: list[tuple[str, str]] = []
        no_newline_old = no_newline_new = False
        i += 1
        while i < len(lines) and _is_hunk_line(lines[i]):
            line = lines[i]
            if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
                break  # the next file's header
            if line.startswith("\\"):
                if body and body[-1][0] == "-":
                    no_newline_old = True
                elif body and body[-1][0] == "+":
                    no_newline_new = True
                elif body:
                    no_newline_old = no_newline_new = True
            elif line == "":
                body.append((" ", ""))  # an empty context line whose space was stripped
            else:
                body.append((line[0], line[1:]))
            i += 1
        # Blank lines after the hunk (prose spacing) are not context: drop those beyond the
        # header's count, or all trailing ones when the header has no count.
        while body and body[-1] == (" ", ""):
            counted = sum(1 for tag, _ in body if tag != "+")
            if old_count is not None and counted <= old_count:
                break
            body.pop()
        if not body:
            raise PatchError(f"hunk {len(hunks) + 1} is empty")
        hunks.append(Hunk(old_start, old_count, tuple(body), no_newline_old, no_newline_new))
    close_file()
    if not patches:
        raise PatchError("not a unified diff: no hunk (@@ ... @@) found")
    return patches


def _content(line: str) -> str:
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith("\n"):
        return line[:-1]
    return line


def _matches_at(contents: list[str], old: list[str], at: int) -> bool:
    return at >= 0 and at + len(old) <= len(contents) and contents[at:at + len(old)] == old


def _first_difference(contents: list[str], old: list[str], at: int) -> str:
    for k, expected in enumerate(old):
        found = contents[at + k] if at + k < len(contents) else None
        if found != expected:
            where = f"line {at + k + 1}"
            got = "the end of the file" if found is None else repr(found)
            return f"{where} should be {expected!r} but is {got}"
    return "it does not match"


def _locate(contents: list[str], hunk: Hunk, start: int, number: int) -> int:
    old = hunk.old_lines
    if hunk.old_start is not None:
        wanted = max(hunk.old_start - 1, 0) if old else hunk.old_start  # -N,0: insert after line N
        if not old:
            if wanted < start or wanted > len(contents):
                raise PatchError(f"hunk {number} inserts after line {hunk.old_start}, "
                                 f"but the file has {len(contents)} lines")
            return wanted
        if wanted >= start and _matches_at(contents, old, wanted):
            return wanted
        for offset in range(1, len(contents) + 1):
            for at in (wanted - offset, wanted + offset):
                if at >= start and _matches_at(contents, old, at):
                    return at
        detail = _first_difference(contents, old, wanted) if wanted < len(contents) else (
            f"the file has only {len(contents)} lines")
        raise PatchError(f"hunk {number} does not apply: {detail}, and its lines are nowhere else in the file")
    if not old:
        if contents:
            raise PatchError(f"hunk {number} only adds lines and gives no line number: where is unknown")
        return 0
    places = [at for at in range(start, len(contents) - len(old) + 1) if _matches_at(contents, old, at)]
    if not places:
        raise PatchError(f"hunk {number} does not apply: its lines (from {old[0]!r}) are not in the file")
    if len(places) > 1:
        raise PatchError(f"hunk {number} matches {len(places)} places (lines "
                         f"{', '.join(str(p + 1) for p in places[:5])}) and gives no line number")
    return places[0]


def apply_patch(lines: list[str], patch: FilePatch, newline: str = "\n") -> list[str]:
    """The lines after applying ``patch`` (lines keep their endings; added ones get
    ``newline``). PatchError, and nothing changed, when any hunk does not apply."""
    if patch.deletes:
        raise PatchError("the diff deletes the file; delete it yourself if that is meant")
    contents = [_content(line) for line in lines]
    had_final_newline = not lines or _content(lines[-1]) != lines[-1]
    out: list[str] = []
    pos = 0
    marker_old = marker_new = False
    for number, hunk in enumerate(patch.hunks, 1):
        at = _locate(contents, hunk, pos, number)
        out.extend(lines[pos:at])
        k = at
        for tag, text in hunk.lines:
            if tag == " ":
                out.append(lines[k])
                k += 1
            elif tag == "-":
                k += 1
            else:
                out.append(text + newline)
        pos = k
        marker_old |= hunk.no_newline_old
        marker_new |= hunk.no_newline_new
    out.extend(lines[pos:])
    # Every line but the last ends with a newline (a context line that was last may not be now).
    for n in range(len(out) - 1):
        if _content(out[n]) == out[n]:
            out[n] += newline
    if out:
        last = out[-1]
        keep_final = had_final_newline
        if marker_new:
            keep_final = False
        elif marker_old:
            keep_final = True
        if keep_final and _content(last) == last:
            out[-1] = last + newline
        elif not keep_final:
            out[-1] = _content(last)
    return out


def pick_file_patch(patches: list[FilePatch], target: str) -> FilePatch:
    """The patch for ``target`` (a relative POSIX path): the only one, or the one naming it."""
    if len(patches) == 1:
        return patches[0]
    for patch in patches:
        if patch.path is not None and (patch.path == target or target.endswith("/" + patch.path)):
            return patch
    names = ", ".join(p.path or "?" for p in patches)
    raise PatchError(f"the diff changes {len(patches)} files ({names}); {target} is not one of them")
