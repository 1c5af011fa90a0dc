"""Building the prompt: the selected files become the template's input, the earlier turns of
the conversation come first, and the budget says whether it fits the model's context.

Plain Python, no Textual (unit-tested with golden strings in tests/tui/test_tui_prompt.py).
Nothing is ever truncated: a prompt that does not fit is refused with the files to drop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

LANGUAGES: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "jsx", ".ts": "typescript", ".tsx": "tsx", ".rs": "rust", ".go": "go", ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".java": "java",
    ".kt": "kotlin", ".swift": "swift", ".rb": "ruby", ".php": "php", ".cs": "csharp", ".scala": "scala",
    ".sh": "bash", ".bash": "bash", ".zsh": "zsh", ".fish": "fish", ".ps1": "powershell", ".lua": "lua",
    ".pl": "perl", ".r": "r", ".jl": "julia", ".hs": "haskell", ".ml": "ocaml", ".ex": "elixir",
    ".exs": "elixir", ".erl": "erlang", ".clj": "clojure", ".dart": "dart", ".zig": "zig", ".nim": "nim",
    ".sql": "sql", ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss", ".tcss": "css",
    ".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".xml": "xml", ".md": "markdown",
    ".rst": "rst", ".ini": "ini", ".cfg": "ini", ".txt": "text", ".csv": "csv", ".diff": "diff",
    ".patch": "diff", ".cmake": "cmake", ".gradle": "groovy", ".vue": "vue", ".svelte": "svelte",
}
NAMES: dict[str, str] = {
    "Makefile": "makefile", "makefile": "makefile", "GNUmakefile": "makefile", "Dockerfile": "dockerfile",
    "CMakeLists.txt": "cmake", "Gemfile": "ruby", "Rakefile": "ruby",
}


CODING_SYSTEM = "You are a helpful coding assistant."
"""The system message sent with a model's own chat template (when it takes one): the
TUI is for code, and the small default model answers a code request with code given it."""


def language_tag(path: str) -> str:
    """The fence's language tag for a path ("" when unknown)."""
    pure = PurePosixPath(path)
    return NAMES.get(pure.name) or LANGUAGES.get(pure.suffix.lower(), "")


def fence_for(text: str) -> str:
    """Three backticks, or more when the text itself holds a run of three or more."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def file_block(path: str, text: str) -> str:
    """One file as it appears in the input: its path, then its text in a fenced block."""
    fence = fence_for(text)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{path}\n{fence}{language_tag(path)}\n{body}{fence}"


def build_input(files: Sequence[tuple[str, str]]) -> str | None:
    """The ``### Input:`` text for (path, text) pairs; None for no files (the no-input form)."""
    if not files:
        return None
    return "\n\n".join(file_block(path, text) for path, text in files)


class TemplateLike(Protocol):
    def render_conversation(self, turns, instruction: str, input_text: str | None = None,
                            system: str | None = None) -> str: ...


def text_digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class PastTurn:
    """A finished turn: what was asked, the input text it carried, and the answer as shown.

    ``files`` are the (path, digest of the text) sent as its input: a file still selected
    and unchanged is not sent again in a later turn (the conversation already holds it).
    """

    instruction: str
    input_text: str | None
    response: str
    files: tuple[tuple[str, str], ...] = ()

    def as_template_turn(self) -> tuple[str, str | None, str]:
        return (self.instruction, self.input_text, self.response)


def already_sent(history: Sequence[PastTurn]) -> set[tuple[str, str]]:
    """(path, digest) of every file the conversation already carries."""
    return {item for turn in history for item in turn.files}


def files_to_send(history: Sequence[PastTurn], files: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The selected (path, text) pairs minus those sent before with the same text."""
    sent = already_sent(history)
    return [(path, text) for path, text in files if (path, text_digest(text)) not in sent]


def render_prompt(template: TemplateLike, history: Sequence[PastTurn], instruction: str,
                  files: Sequence[tuple[str, str]]) -> tuple[str, str | None]:
    """(the exact prompt, the input text it carries) for ``instruction`` after ``history``.

    Earlier turns are rendered with the input they had when asked (their files are not
    re-read), so each prompt begins with the one before it: the prompt cache is reused.
    """
    input_text = build_input(files)
    turns = [turn.as_template_turn() for turn in history]
    return template.render_conversation(turns, instruction, input_text), input_text


def conversation_messages(template, history: Sequence[PastTurn], instruction: str,
                          input_text: str | None) -> list[dict[str, str]]:
    """The same conversation as ``render_prompt``'s, as chat messages for a server that renders
    its own template: the template's system text, each turn's user message (the instruction,
    then the files it carried) and answer, and the new user message."""
    first_input = history[0].input_text if history else input_text
    system = getattr(template, "system_with_input" if first_input else "system", "") or ""
    messages = [{"role": "system", "content": system}] if system else []

    def user(instruction: str, files: str | None) -> dict[str, str]:
        return {"role": "user", "content": instruction + (f"\n\n{files}" if files else "")}

    for turn in history:
        messages += [user(turn.instruction, turn.input_text), {"role": "assistant", "content": turn.response}]
    messages.append(user(instruction, input_text))
    return messages


def answer_reserve(n_ctx: int, max_tokens: int) -> int:
    """Tokens kept free for the answer: ``max_tokens`` when set, else a quarter of the context."""
    if max_tokens > 0:
        return min(max_tokens, n_ctx)
    return max(1, n_ctx // 4)


def short_count(n: int) -> str:
    """1234 → "1.2k"; below 1000 as is."""
    return str(n) if n < 1000 else f"{n / 1000:.1f}k"


@dataclass(frozen=True)
class Budget:
    """How the context would be used by a prompt, and whether the answer still has room."""

    prompt_tokens: int
    n_ctx: int
    reserve: int
    file_tokens: dict[str, int] = field(default_factory=dict)
    has_history: bool = False

    @property
    def files_total(self) -> int:
        return sum(self.file_tokens.values())

    @property
    def overflow(self) -> int:
        """Tokens over the limit (0 or less: it fits)."""
        return self.prompt_tokens + self.reserve - self.n_ctx

    @property
    def fits(self) -> bool:
        return self.overflow <= 0

    def line(self) -> str:
        parts = [f"prompt {short_count(self.prompt_tokens)}/{short_count(self.n_ctx)}"]
        if self.file_tokens:
            parts.append(f"files {short_count(self.files_total)}")
        parts.append(f"answer {short_count(self.reserve)}")
        return " · ".join(parts)

    def files_to_drop(self) -> list[tuple[str, int]]:
        """The largest files, biggest first, until dropping them would make room (all of
        them when even that is not enough)."""
        need = self.overflow
        chosen: list[tuple[str, int]] = []
        for path, tokens in sorted(self.file_tokens.items(), key=lambda item: (-item[1], item[0])):
            if need <= 0:
                break
            chosen.append((path, tokens))
            need -= tokens
        return chosen

    def refusal(self) -> str:
        """One message saying why the prompt is not sent and what to drop."""
        head = (
            f"Not sent: the prompt is {self.prompt_tokens:,} tokens and {self.reserve:,} are kept for "
            f"the answer, {self.overflow:,} over the context of {self.n_ctx:,}."
        )
        drop = self.files_to_drop()
        freed = sum(tokens for _path, tokens in drop)
        advice = []
        if drop:
            names = ", ".join(f"{path} ({tokens:,} tokens)" for path, tokens in drop)
            advice.append(f"Drop {names}.")
        if freed < self.overflow:
            if self.has_history:
                advice.append("Start a new conversation (ctrl+n) or shorten the instruction.")
            else:
                advice.append("Shorten the instruction.")
        return " ".join([head, *advice])
