"""Prompt templates: plain TOML files in the project's templates/ folder.

They install as the data package `codeup_templates`; in a source checkout they are read
from templates/ beside engine/.
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

DEFAULT_TEMPLATE = "alpaca"


def templates_dir() -> Path:
    spec = importlib.util.find_spec("codeup_templates")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if Path(location, f"{DEFAULT_TEMPLATE}.toml").is_file():
                return Path(location)
    source_tree = Path(__file__).resolve().parent.parent / "templates"
    if (source_tree / f"{DEFAULT_TEMPLATE}.toml").is_file():
        return source_tree
    raise UsageError("the prompt templates are missing from this installation (reinstall codeup-tui)")


def template_names() -> list[str]:
    return sorted(p.stem for p in templates_dir().glob("*.toml"))


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    description: str
    prompt: str
    prompt_with_input: str
    stop: tuple[str, ...]

    def render(self, instruction: str, input_text: str | None = None) -> str:
        if input_text:
            return self.prompt_with_input.replace("{instruction}", instruction).replace("{input}", input_text)
        return self.prompt.replace("{instruction}", instruction)


def load_template(name: str = DEFAULT_TEMPLATE) -> PromptTemplate:
    path = templates_dir() / f"{name}.toml"
    if not path.is_file():
        raise UsageError(f"no prompt template named {name!r} (known: {', '.join(template_names())})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return PromptTemplate(
            name=data.get("name", name),
            description=data.get("description", ""),
            prompt=data["prompt"],
            prompt_with_input=data.get("prompt_with_input", data["prompt"]),
            stop=tuple(data.get("stop", ())),
        )
    except (tomllib.TOMLDecodeError, KeyError, UnicodeDecodeError) as e:
        raise UsageError(f"template {path} is malformed: {e}") from None
