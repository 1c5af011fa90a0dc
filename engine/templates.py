"""Prompt templates: plain TOML files that say how to turn an instruction (and the files
attached as input, and the earlier turns of a conversation) into the text a model expects.

The built-in ones live in the project's templates/ folder, which installs as the data
package `codeup_tui.templates` (in a source checkout they are read from templates/ beside
engine/). A user's own `.toml` files in `$XDG_CONFIG_HOME/codeup-tui/templates/` (default
`~/.config/codeup-tui/templates/`) are found by name too, and win over a built-in of the
same name. templates/README.md documents the keys and placeholders.

A conversation renders as

    [system block] turn_1 answer_1 answer_end turn_2 answer_2 answer_end ... turn_n

ending exactly where the model's answer starts, so the prompt of turn n plus its answer is
always the beginning of the prompt of turn n+1 (what a prompt cache needs).
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .errors import UsageError, printable

DEFAULT_TEMPLATE = "alpaca"
_PLACEHOLDER = re.compile(r"\{(system|instruction|input)\}")
_STRING_KEYS = ("description", "system", "system_with_input", "system_block", "turn", "turn_with_input",
                "answer_end")
_KEYS = frozenset(_STRING_KEYS + ("stop", "add_bos", "parse_special"))


def templates_dir() -> Path:
    """The folder of the built-in templates."""
    spec = importlib.util.find_spec("codeup_tui.templates")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if Path(location, f"{DEFAULT_TEMPLATE}.toml").is_file():
                return Path(location)
    source_tree = Path(__file__).resolve().parent.parent / "templates"
    if (source_tree / f"{DEFAULT_TEMPLATE}.toml").is_file():
        return source_tree
    raise UsageError("the prompt templates are missing from this installation (reinstall codeup-tui)")


def user_templates_dir() -> Path:
    """The folder of the user's own templates (XDG_CONFIG_HOME respected); it may not exist."""
    base = os.environ.get("XDG_CONFIG_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "codeup-tui" / "templates"


def template_files() -> dict[str, Path]:
    """Every template by name: the built-ins, then the user's, which override by name."""
    found = {p.stem: p for p in sorted(templates_dir().glob("*.toml"))}
    found.update({p.stem: p for p in sorted(user_templates_dir().glob("*.toml")) if p.is_file()})
    return found


def template_names() -> list[str]:
    return sorted(template_files())


def _fill(text: str, **values: str) -> str:
    """Replace the placeholders in one pass: text put in is never scanned again, and any other
    braces (in the template or the values) are left as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), text)


class Turn(NamedTuple):
    """An earlier turn of a conversation: what was asked, the files attached (None: none)
    and the model's answer, exactly as the model wrote it (less the stop string)."""

    instruction: str
    input_text: str | None
    response: str


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    description: str
    turn: str  # a user turn without input: {instruction}; {system} where the system block goes
    turn_with_input: str  # the same with files attached: {instruction}, {input}
    system: str  # the default system text ("" for none)
    system_with_input: str  # the default system text when the first turn has input
    system_block: str  # how a non-empty system text is written: {system}
    answer_end: str  # written after each earlier answer, before the next turn
    stop: tuple[str, ...]  # strings that end an answer
    add_bos: bool | None = None  # put BOS first? None: as the model file says
    parse_special: bool = False  # encode the prompt with special-token text (<|im_start|>) parsed
    path: Path | None = None

    def wants_bos(self, model_default: bool) -> bool:
        return model_default if self.add_bos is None else self.add_bos

    def render(self, instruction: str, input_text: str | None = None, system: str | None = None) -> str:
        """The prompt for a single instruction (with the attached files' text, if any)."""
        return self.render_conversation((), instruction, input_text, system)

    def render_conversation(self, turns: Sequence[Turn | tuple[str, str | None, str]], instruction: str,
                            input_text: str | None = None, system: str | None = None) -> str:
        """The prompt for `instruction` after the earlier `turns`, ending where the answer starts.

        `system`: None for the template's default, "" for none, or the text to use; pass the
        same one for every turn of a conversation (as with `turns`, so that each prompt
        begins with the one before it plus its answer).
        """
        first_has_input = bool(turns[0][1] if turns else input_text)
        if system is None:
            system = self.system_with_input if first_has_input else self.system
        block = _fill(self.system_block, system=system) if system else ""
        parts = []
        for i, (instr, inp, response) in enumerate(turns):
            parts += [self._turn(instr, inp, block if i == 0 else ""), response, self.answer_end]
        parts.append(self._turn(instruction, input_text, "" if turns else block))
        return "".join(parts)

    def _turn(self, instruction: str, input_text: str | None, block: str) -> str:
        text = self.turn_with_input if input_text else self.turn
        if "{system}" not in text:
            text = "{system}" + text
        return _fill(text, system=block, instruction=instruction, input=input_text or "")


def load_template(name: str = DEFAULT_TEMPLATE) -> PromptTemplate:
    files = template_files()
    if name not in files:
        known = ", ".join(printable(n) for n in sorted(files))
        raise UsageError(f"no prompt template named {printable(name)!r} (known: {known})")
    return read_template(files[name])


def read_template(path: Path) -> PromptTemplate:
    """A template from its file; the name is the file name without `.toml`."""

    def bad(problem: str) -> UsageError:
        return UsageError(f"prompt template {printable(str(path))}: {printable(problem)}")

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise bad(f"not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise bad(f"cannot be read: {e.strerror if isinstance(e, OSError) else e}") from None
    if unknown := sorted(set(data) - _KEYS):
        raise bad(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    if "turn" not in data:
        raise bad("missing key 'turn' (the text of a user turn, with {instruction})")
    for key in _STRING_KEYS:
        if key in data and not isinstance(data[key], str):
            raise bad(f"{key!r} must be a string")
    for key in ("add_bos", "parse_special"):
        if key in data and not isinstance(data[key], bool):
            raise bad(f"{key!r} must be true or false")
    stop = data.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise bad("'stop' must be a list of non-empty strings")
    turn = data["turn"]
    turn_with_input = data.get("turn_with_input", turn.replace("{instruction}", "{instruction}\n\n{input}", 1))
    system_block = data.get("system_block", "{system}\n\n")
    for key, text, placeholder in (("turn", turn, "{instruction}"), ("turn_with_input", turn_with_input, "{input}"),
                                   ("system_block", system_block, "{system}")):
        if placeholder not in text:
            raise bad(f"{key!r} has no {placeholder} placeholder")
    system = data.get("system", "")
    return PromptTemplate(
        name=path.stem,
        description=data.get("description", ""),
        turn=turn,
        turn_with_input=turn_with_input,
        system=system,
        system_with_input=data.get("system_with_input", system),
        system_block=system_block,
        answer_end=data.get("answer_end", "\n\n"),
        stop=tuple(stop),
        add_bos=data.get("add_bos"),
        parse_special=data.get("parse_special", False),
        path=path,
    )
