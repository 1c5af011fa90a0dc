"""Which project files git sees as modified or untracked (``git status --porcelain``).

Read-only: nothing here stages or commits. Without git, or outside a repository, there is
no state (an empty map), never an error.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT_TIMEOUT = 10.0

MODIFIED = "M"
UNTRACKED = "U"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=GIT_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "surrogateescape")


def parse_porcelain(output: str, top: Path) -> dict[Path, str]:
    """``git status --porcelain=v1 -z`` output -> absolute path: "M" or "U".

    An untracked folder comes as ``dir/``: its key is the folder (files under it are
    untracked too: see ``state_of``). A rename's new name is the one marked.
    """
    states: dict[Path, str] = {}
    items = output.split("\0")
    i = 0
    while i < len(items):
        item = items[i]
        i += 1
        if len(item) < 4:
            continue
        code, path = item[:2], item[3:]
        if code[0] in "RC":
            i += 1  # the old name follows
        if code == "!!":
            continue
        state = UNTRACKED if code == "??" else MODIFIED
        states[top / path.rstrip("/")] = state
    return states


def git_states(root: Path) -> dict[Path, str]:
    """Modified/untracked files of the repository holding ``root`` (empty without git)."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None:
        return {}
    # --no-optional-locks: status must not rewrite .git/index (the watcher would see that as
    # a change, refresh again, and so on).
    output = _git(root, "--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=normal", "--", ".")
    if output is None:
        return {}
    states = parse_porcelain(output, Path(top.strip()))
    # git names resolved paths; the UI uses the project folder as given (maybe via a symlink).
    real = root.resolve()
    rebased = {}
    for path, state in states.items():
        try:
            rebased[root / path.relative_to(real)] = state
        except ValueError:
            continue
    return rebased


def state_of(states: dict[Path, str], path: Path) -> str | None:
    """The mark for ``path``: its own, or "U" inside an untracked folder."""
    own = states.get(path)
    if own is not None:
        return own
    for parent in path.parents:
        if states.get(parent) == UNTRACKED:
            return UNTRACKED
    return None
