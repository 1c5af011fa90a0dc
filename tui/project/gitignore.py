"""A small ``.gitignore`` matcher (no dependencies), following gitignore(5):

- blank lines and ``#`` comments are skipped; ``\\#`` and ``\\!`` escape a leading ``#``/``!``;
  trailing spaces are dropped unless escaped with a backslash;
- ``!pattern`` re-includes what an earlier pattern excluded (the last matching line wins);
- a trailing ``/`` matches directories only;
- a pattern with a ``/`` at its start or in its middle is anchored to the directory of the
  ``.gitignore`` that holds it; without one it matches a name at any depth below it;
- ``*`` and ``?`` never match ``/``; ``[...]`` is a character class (``[!...]`` negated);
- ``**/x`` matches x at any depth, ``x/**`` everything inside x, ``a/**/b`` zero or more
  directories between a and b;
- nested ``.gitignore`` files apply to their own directory and below, after (so over) the
  ones above them; and a file inside an ignored directory is ignored, whatever a negation
  says (git does not look inside an excluded directory).

Paths given to the matcher are POSIX-style and relative to the project root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ALWAYS_HIDDEN = frozenset({".git"})
"""Entry names hidden whatever the ignore files say."""


@dataclass(frozen=True)
class Rule:
    pattern: str  # the line as written (for messages and debugging)
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _glob_segment(segment: str) -> str:
    """Regex for one path segment of a glob (no ``/`` inside)."""
    out: list[str] = []
    i, n = 0, len(segment)
    while i < n:
        c = segment[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(segment[i + 1]))
            i += 2
            continue
        if c == "*":
            while i + 1 < n and segment[i + 1] == "*":  # "a**b" in one segment acts like "*"
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and segment[j] in "!^":
                j += 1
            if j < n and segment[j] == "]":
                j += 1
            while j < n and segment[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal "["
                out.append(re.escape(c))
            else:
                body = segment[i + 1 : j]
                negated = body[:1] in ("!", "^")
                if negated:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                out.append(f"[^{body}/]" if negated else f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_rule(line: str) -> Rule | None:
    """One line of a ``.gitignore``; None for blank lines and comments."""
    text = line.rstrip("\n").rstrip("\r")
    # Trailing spaces are dropped unless the last one is escaped.
    stripped = text.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(text):
        stripped += " "
    text = stripped
    if not text or text.startswith("#"):
        return None
    negate = False
    if text.startswith("!"):
        negate, text = True, text[1:]
    elif text.startswith(("\\!", "\\#")):
        text = text[1:]
    dir_only = text.endswith("/") and not text.endswith("\\/")
    text = text.rstrip("/") if dir_only else text
    if not text:
        return None
    anchored = "/" in text
    text = text.lstrip("/")
    parts = text.split("/")
    regex = "" if anchored else "(?:.*/)?"
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:.*/)?"
        else:
            regex += _glob_segment(part) + ("" if last else "/")
    return Rule(line.strip(), re.compile(regex + r"\Z", re.DOTALL), negate, dir_only)


@dataclass
class IgnoreRules:
    """The rules of one ignore file, matched against paths relative to its directory."""

    base: PurePosixPath  # the directory holding the file, relative to the root ("." for it)
    rules: list[Rule] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, base: PurePosixPath | str = ".") -> IgnoreRules:
        rules = [rule for line in text.splitlines() if (rule := compile_rule(line)) is not None]
        return cls(PurePosixPath(base), rules)

    def match(self, rel_path: str, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included by a negation, None: no rule says anything.

        ``rel_path`` is relative to ``base``.
        """
        verdict: bool | None = None
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(rel_path):
                verdict = not rule.negate
        return verdict


class ProjectIgnore:
    """Every ``.gitignore`` of a project (and ``.git/info/exclude``), read lazily and cached.

    Not thread-safe for concurrent first reads of the same directory, but the worst case is
    reading one file twice.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._rules: dict[PurePosixPath, IgnoreRules | None] = {}
        self._verdicts: dict[tuple[str, bool], bool] = {}

    def clear(self) -> None:
        """Forget what was read (an ignore file changed)."""
        self._rules.clear()
        self._verdicts.clear()

    def _rules_for(self, directory: PurePosixPath) -> IgnoreRules | None:
        if directory not in self._rules:
            texts = []
            if directory == PurePosixPath("."):
                texts.append(_read(self.root / ".git" / "info" / "exclude"))
            texts.append(_read(self.root / directory / ".gitignore"))
            text = "\n".join(t for t in texts if t)
            self._rules[directory] = IgnoreRules.parse(text, directory) if text else None
        return self._rules[directory]

    def is_ignored(self, rel_path: PurePosixPath | str, is_dir: bool = False) -> bool:
        """Whether a path (relative to the root) is hidden by the ignore files or is ``.git``."""
        path = PurePosixPath(rel_path)
        if path == PurePosixPath(".") or path.is_absolute() or ".." in path.parts:
            return False
        key = (path.as_posix(), is_dir)
        cached = self._verdicts.get(key)
        if cached is not None:
            return cached
        parent = path.parent
        if parent != PurePosixPath(".") and self.is_ignored(parent, is_dir=True):
            verdict = True
        elif path.name in ALWAYS_HIDDEN:
            verdict = True
        else:
            verdict = False
            # From the root down to the path's own directory; a deeper file has the last word.
            directories = [*reversed(parent.parents), parent] if parent != PurePosixPath(".") else [parent]
            for directory in directories:
                rules = self._rules_for(directory)
                if rules is None:
                    continue
                relative = path.relative_to(directory).as_posix()
                said = rules.match(relative, is_dir)
                if said is not None:
                    verdict = said
        self._verdicts[key] = verdict
        return verdict

    def is_path_ignored(self, path: Path) -> bool:
        """``is_ignored`` for an absolute (or root-relative) path on disk."""
        full = path if path.is_absolute() else self.root / path
        try:
            rel = full.relative_to(self.root)
        except ValueError:
            return False
        return self.is_ignored(PurePosixPath(rel.as_posix()), is_dir=_is_dir(full))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False
