"""Inserting a code block into a file: plan it (the exact bytes, and the diff the user sees
before saying yes), then carry it out (snapshot for undo, atomic write).

A plan is made from the file as read at that moment; carrying it out first checks the file
still holds those bytes, so what is written is exactly what was previewed. Lines keep their
endings: the file's untouched lines are not rewritten, added lines get the file's dominant
newline (CRLF stays CRLF), and a file without a final newline keeps none.
"""

from __future__ import annotations

import difflib
import enum
from functools import cached_property
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .file_write import TextFile, WriteError, atomic_write, read_text, split_lines
from .patch import PatchError, apply_patch, parse_patch, pick_file_patch
from .target import InsertError, resolve_target
from .undo import UndoEntry, UndoStore


class InsertMode(enum.Enum):
    replace = "replace the whole file"
    append = "append at the end"
    at_line = "insert before a line"
    replace_lines = "replace a range of lines"
    patch = "apply as a patch"

    @property
    def needs_lines(self) -> bool:
        return self in (InsertMode.at_line, InsertMode.replace_lines)


@dataclass(frozen=True)
class InsertPlan:
    """What an insert will do, exactly."""

    rel: str
    path: Path
    mode: InsertMode
    before: TextFile | None
    """The file as the plan read it (None: the file is new)."""
    new_text: str
    edited: bool = False
    """The user changed the result in $EDITOR."""

    @property
    def new_bytes(self) -> bytes:
        return self.new_text.encode("utf-8")

    @cached_property
    def diff(self) -> str:
        """Computed once (difflib on a big file takes a moment: read it first in a worker)."""
        return preview_diff(self.rel, self.before.text if self.before is not None else None, self.new_text)

    @cached_property
    def summary(self) -> str:
        """"+5 -2 lines · CRLF kept" (one line for the preview's title)."""
        added = removed = 0
        for line in self.diff.splitlines():
            if line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
        parts = [f"+{added} -{removed} lines"]
        if self.before is None:
            parts.append("new file")
        elif self.before.newline == "\r\n":
            parts.append("CRLF kept")
        if self.edited:
            parts.append("edited")
        return " · ".join(parts)


def _display_lines(text: str | None) -> list[str]:
    """Lines for the diff: endings shown as "\\n", a missing final one marked as git does."""
    if not text:
        return []
    lines = [line.removesuffix("\n").removesuffix("\r") + "\n" for line in split_lines(text)]
    if not text.endswith("\n"):
        lines[-1] += "\\ No newline at end of file\n"
    return lines


def preview_diff(rel: str, old: str | None, new: str) -> str:
    """The unified diff from ``old`` (None: no file) to ``new``."""
    old_name = "/dev/null" if old is None else f"a/{rel}"
    lines = difflib.unified_diff(_display_lines(old), _display_lines(new), old_name, f"b/{rel}", n=3)
    return "".join(lines)


def _block_lines(block: str, newline: str) -> list[str]:
    return [line + newline for line in block.removesuffix("\n").split("\n")] if block else []


def _keep_final_newline(lines: list[str], final: bool) -> list[str]:
    if lines and not final:
        lines[-1] = lines[-1].removesuffix("\n").removesuffix("\r")
    return lines


def parse_line_range(text: str, mode: InsertMode) -> tuple[int, int | None]:
    """"12" or "12-20" (also "12:20", "12,20") as 1-based numbers; InsertError otherwise."""
    cleaned = text.strip().replace(" ", "")
    for sep in ("-", ":", ","):
        if sep in cleaned:
            first, _, last = cleaned.partition(sep)
            break
    else:
        first, last = cleaned, ""
    try:
        start = int(first)
        end = int(last) if last else None
    except ValueError:
        raise InsertError(f"not a line number: {text.strip()!r}" + (" (write 12-20)" if mode is InsertMode.replace_lines
                                                                    else " (write 12)")) from None
    if mode is InsertMode.replace_lines and end is None:
        end = start
    return start, end


def plan_insert(project_dir: Path, rel: str, block: str, mode: InsertMode, line: int | None = None,
                end: int | None = None) -> InsertPlan:
    """The plan for putting ``block`` (a code block's text) into ``rel`` in ``mode``.

    ``line``/``end`` are 1-based: ``at_line`` inserts before ``line`` (one past the last line
    appends); ``replace_lines`` replaces ``line`` to ``end`` inclusive. InsertError (the file
    cannot be read, a bad line number, a patch that does not apply, nothing would change).
    """
    rel, path = resolve_target(project_dir, rel)
    try:
        before = read_text(path, rel)
    except WriteError as exc:
        raise InsertError(str(exc)) from None
    if before is None and mode is not InsertMode.patch:
        new_text = "".join(_block_lines(block, "\n"))
        if not new_text:
            raise InsertError("the block is empty: nothing to write")
        return InsertPlan(rel, path, mode, None, new_text)
    old_text = before.text if before is not None else ""
    newline = before.newline if before is not None else "\n"
    final = before.final_newline if before is not None else True
    lines = split_lines(old_text)
    count = len(lines)
    added = _block_lines(block, newline)
    if mode is InsertMode.replace:
        new_lines = _keep_final_newline(added, final)
    elif mode is InsertMode.append or mode is InsertMode.at_line:
        at = count + 1 if mode is InsertMode.append else line
        if at is None or not 1 <= at <= count + 1:
            raise InsertError(f"line {at} is not in {rel} (1 to {count + 1}: {count} lines, then the end)")
        head = lines[: at - 1]
        if head and not head[-1].endswith("\n"):
            head[-1] += newline  # the old last line gets its ending back: a line follows it now
        new_lines = head + added + lines[at - 1:]
        if at == count + 1:
            new_lines = _keep_final_newline(new_lines, final)
    elif mode is InsertMode.replace_lines:
        last = end if end is not None else line
        if line is None or last is None or not 1 <= line <= last <= count:
            raise InsertError(f"lines {line}-{last} are not in {rel} (it has {count} lines)")
        new_lines = lines[: line - 1] + added + lines[last:]
        if last == count:
            new_lines = _keep_final_newline(new_lines, final)
    else:
        try:
            patch = pick_file_patch(parse_patch(block), rel)
            if before is None and not patch.creates:
                raise InsertError(f"{rel} does not exist, and the diff does not create it")
            new_lines = apply_patch(lines, patch, newline)
        except PatchError as exc:
            raise InsertError(f"the diff does not apply to {rel}: {exc}; nothing written") from None
    new_text = "".join(new_lines)
    if before is not None and new_text == before.text:
        raise InsertError(f"{rel} already has this content: nothing would change")
    return InsertPlan(rel, path, mode, before, new_text)


def replan_with_text(plan: InsertPlan, new_text: str) -> InsertPlan:
    """The same insert with the result the user edited (in $EDITOR)."""
    return InsertPlan(plan.rel, plan.path, plan.mode, plan.before, new_text, edited=True)


def apply_plan(plan: InsertPlan, undo: UndoStore, before_write: Callable[[InsertPlan], None] | None = None,
               warn: Callable[[str], None] | None = None) -> UndoEntry:
    """Write the plan's bytes, having checked the file is still as the plan read it and
    saved an undo snapshot. ``before_write`` runs just before the write (the watcher is told
    to expect it). InsertError, with the file untouched, when it cannot be done. Once the file
    is written the insert is done and its snapshot kept: a problem after that (the folder's
    fsync) goes to ``warn``."""
    try:
        current = read_text(plan.path, plan.rel)
    except WriteError as exc:
        raise InsertError(str(exc)) from None
    if (current is None) != (plan.before is None) or (current is not None and plan.before is not None
                                                      and current.raw != plan.before.raw):
        raise InsertError(f"{plan.rel} changed on disk since the preview; nothing written (preview it again)")
    try:
        entry = undo.record(plan.rel, plan.before.raw if plan.before else None,
                            plan.before.mode if plan.before else None, plan.new_bytes)
    except WriteError as exc:
        raise InsertError(f"{exc}; nothing written") from None
    if before_write is not None:
        before_write(plan)
    try:
        warning = atomic_write(plan.path, plan.new_bytes, mode=plan.before.mode if plan.before else None,
                               display=plan.rel)
    except WriteError as exc:
        undo.discard(entry)
        raise InsertError(f"{exc}; {plan.rel} is unchanged") from None
    if warning is not None and warn is not None:
        warn(warning)
    return entry
