"""Where codeup-tui may write: the one check of a target path, shared by inserts and undos
(its own module so that ``insert`` and ``undo`` need not import each other)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class InsertError(Exception):
    """Why an insert cannot be planned or carried out (one line)."""


def resolve_target(project_dir: Path, rel: str) -> tuple[str, Path]:
    """(the relative POSIX path, the absolute path): the one check of a path codeup-tui writes
    (an insert's target, an undo snapshot's file). InsertError for a path outside the project
    (symlinks resolved: a link out of it is outside), the project itself, or a folder."""
    raw = rel.strip()
    if not raw:
        raise InsertError("no file named")
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else project_dir / path
    root = project_dir.resolve()
    try:
        relative = path.resolve().relative_to(root)
    except ValueError:
        raise InsertError(f"{raw} is outside the project; not written") from None
    if not relative.parts:
        raise InsertError(f"{raw} is the project folder, not a file")
    if (root / relative).is_dir():
        raise InsertError(f"{raw} is a folder, not a file")
    return PurePosixPath(*relative.parts).as_posix(), root / relative
