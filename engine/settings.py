"""The settings a user can give, defined once: ``SETTINGS``.

Each ``Setting`` says what a value is (type, allowed range, default, meaning) and every name
it goes by: the command-line flags (``codeup run``, ``codeup serve``, ``codeup-tui``), the
key in codeup-tui's config file (and the label of its F2 form), and the fields of an
OpenAI / llama.cpp server request. The command lines, the config file, the settings form,
the server's request parsing and the remote client's request building all read this table,
so a value means the same everywhere and a bad one is refused everywhere with the same
words: ``Setting.check`` raises ``SettingError`` with the problem ("must be between 0 and 1,
got 1.5") and each entry point puts the name the user wrote in front of it (``--top-p``,
``top_p`` in the file, ``'top_p'`` in a request).

The meanings are llama.cpp's: a temperature of 0 or below is greedy, a top_k of 0 or below
keeps every token, top_p = 1 and min_p = 0 are off, repeat_last_n -1 is the whole context,
a seed of -1 (or none) is random, max_tokens -1 is "until the end".

Adding a setting: add a ``Setting`` here; the flags, the request field and the client's
field follow from it. A new sampling setting also needs its ``SamplingParams`` field (and
its use in the sampler); one with a config key, its ``Settings`` field in the TUI.

Plain Python: this module imports neither numpy nor Textual itself.
"""

from __future__ import annotations

import argparse
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .terminal_text import printable

MAX_SAMPLING_MAGNITUDE = 1e6
"""Sampling numbers beyond this are refused: past it float32 arithmetic overflows, and no
useful setting is that large."""
MAX_CTX = 1 << 20
MIN_CTX = 16  # a chat template's framing alone takes about this many tokens
MAX_THREADS = 1024
MAX_DRAFT = 256  # speculative.DraftParams's bound on draft_max

# The command lines a setting can be given on.
RUN, SERVE, TUI = "codeup run", "codeup serve", "codeup-tui"


class SettingError(ValueError):
    """A value a setting does not take: the problem only ("must be ..., got ..."); the caller
    names the setting as the user wrote it."""


def show(value: object) -> str:
    """A value as a message quotes it: numbers as written (2.0 as 2), text quoted and made
    printable, other things by their type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(printable(value[:40] + ("..." if len(value) > 40 else "")))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return format_number(float(value))
    if value is None:
        return "none"
    return f"a {type(value).__name__}"


def format_number(value: float) -> str:
    """The shortest text that reads back as the same number (0.95, not 0.9500000000000001)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


@dataclass(frozen=True)
class Setting:
    """One setting and every name it goes by (see the module docstring)."""

    name: str
    """The attribute (``SamplingParams``, the TUI's ``Settings``) and what messages call it."""
    kind: type
    """int, float, str or Path; an int may be given as an integral float (JSON's 40.0)."""
    default: Any
    """None: the engine picks (the model's context size, all cores, a random seed)."""
    meaning: str
    """What it does and its special values: the flags' help text, before the default."""
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False
    """The minimum itself is refused (repeat_penalty must be more than 0)."""
    range_text: str = ""
    """The allowed values as a message says them: "must be <range_text>, got ..."."""
    choices: Callable[[], Sequence[str]] | None = None
    """The allowed names (a template), when they are not numbers."""
    usable: Callable[[Any], None] | None = None
    """A last check of a name among the choices (SettingError: a broken template)."""
    optional: bool = False
    """None is a value: the default the engine picks."""
    flags: tuple[str, ...] = ()
    """Command-line spellings; the argparse dest comes from the first long one."""
    commands: frozenset[str] = frozenset()
    """The command lines that take the flags (RUN, SERVE, TUI)."""
    aliases: tuple[tuple[str, str], ...] = ()
    """(command, flag): a spelling only that command takes (codeup-tui's --ctx: in `codeup run`
    it would shadow --ctx-size in the suggestion for a misspelt --ctx-sise)."""
    by_hand: bool = False
    """The commands add these flags themselves (a model file, a template: checked once the
    file or the template is read); the others are added by ``add_flags``."""
    metavar: str | None = None
    config_key: str | None = None
    """The key in codeup-tui's config file (None: not a config setting)."""
    label: str = ""
    """The F2 form's label."""
    hint: str = ""
    """Beside the F2 form's field: the default, or what a value means."""
    sampling: bool = False
    """A ``SamplingParams`` field."""
    request: tuple[str, ...] = ()
    """The server request fields that give it, the first one found winning; the first is the
    one the remote client sends."""
    openai: bool = False
    """request[0] is an OpenAI field (else a llama.cpp one, sent until a server refuses it)."""
    send_default: bool = True
    """The remote client sends it even at its default (False: only when it differs)."""
    sent_as: Callable[[Any], Any] | None = None
    """How the remote client writes a value (None from it: the field is left out)."""

    @property
    def dest(self) -> str:
        """The argparse attribute of the flags (argparse's own rule)."""
        long = next((f for f in self.flags if f.startswith("--")), self.flags[0])
        return long.lstrip("-").replace("-", "_")

    def flags_for(self, command: str) -> tuple[str, ...]:
        """The spellings `command` takes (none if it does not take the setting)."""
        if command not in self.commands:
            return ()
        return self.flags + tuple(flag for where, flag in self.aliases if where == command)

    @property
    def flag(self) -> str:
        """The flag a message names when it cannot know which one was written."""
        return next((f for f in self.flags if f.startswith("--")), self.flags[0]) if self.flags else self.name

    def check(self, value: object) -> Any:
        """The value, as its kind; SettingError ("must be ..., got ...") when it is not one."""
        if value is None:
            if self.optional:
                return None
            raise SettingError(f"must be {_KIND_TEXT[self.kind]}, got none")
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
                    not isinstance(value, numbers.Integral)
                    and not (math.isfinite(value) and float(value).is_integer())):
                raise SettingError(f"must be a whole number, got {show(value)}")
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise SettingError(f"must be a number, got {show(value)}")
            if not math.isfinite(value):
                raise SettingError(f"must be a finite number, got {show(value)}")
            value = float(value)
        else:
            if not isinstance(value, (str, Path)):
                raise SettingError(f"must be a string, got {show(value)}")
            if not str(value).strip():
                raise SettingError("must not be empty")
            if self.choices is not None:
                known = list(self.choices())
                if value not in known:
                    raise SettingError(f"must be one of {', '.join(known)}, got {show(value)}")
            if self.usable is not None:
                self.usable(value)
            return Path(value) if self.kind is Path else str(value)
        low, high = self.minimum, self.maximum
        if (low is not None and (value < low or (self.above_minimum and value == low))) or (
                high is not None and value > high):
            raise SettingError(f"must be {self.range_text}, got {show(value)}")
        return value

    def parse_text(self, text: str) -> Any:
        """A value typed as text (a form field); empty: None (the default). SettingError
        otherwise."""
        text = text.strip()
        if not text:
            return None
        value: object = text
        if self.kind in (int, float):
            try:
                value = int(text) if self.kind is int else float(text)
            except ValueError:
                try:  # "40.0" is a whole number
                    value = float(text)
                except ValueError:
                    value = None
                if value is None or self.kind is int and not (math.isfinite(value) and value.is_integer()):
                    noun = "a whole number" if self.kind is int else "a number"
                    raise SettingError(f"must be {noun}, got {show(text)}") from None
        return self.check(value)

    @property
    def help(self) -> str:
        if self.default is None:
            return self.meaning
        shown = format_number(self.default) if isinstance(self.default, float) else self.default
        return f"{self.meaning} (default {shown})"


_KIND_TEXT = {int: "a whole number", float: "a number", str: "a string", Path: "a string"}


def _templates() -> list[str]:
    from .chat_template import MODEL_TEMPLATE
    from .templates import template_names

    return [MODEL_TEMPLATE, *template_names()]


def _template_loads(name: str) -> None:
    from .chat_template import MODEL_TEMPLATE
    from .errors import CodeupError
    from .templates import load_template

    if name != MODEL_TEMPLATE:  # the model file's own: read with the model
        try:
            load_template(name)
        except CodeupError as exc:
            raise SettingError(f"names a broken template: {' '.join(str(exc).split())}") from None


_M = MAX_SAMPLING_MAGNITUDE
_BOTH = frozenset({RUN, TUI})
_ALL = frozenset({RUN, SERVE, TUI})

SETTINGS: tuple[Setting, ...] = (
    # The model (codeup-tui's config order: the F2 form shows them in this order).
    Setting("model", Path, None, "a model file (GGUF, or GGML v3); none: the default model", optional=True,
            flags=("-m", "--model"), commands=_ALL, by_hand=True, metavar="PATH",
            config_key="model", label="Model file", hint="empty: default model"),
    Setting("n_ctx", int, None, "context size in tokens; none: the model's, at most 4096", optional=True,
            minimum=MIN_CTX, maximum=MAX_CTX, range_text=f"between {MIN_CTX} and {MAX_CTX}",
            flags=("-c", "--ctx-size"), commands=_ALL, aliases=((TUI, "--ctx"),), metavar="N",
            config_key="n_ctx", label="Context size", hint="empty: model's, ≤ 4096"),
    Setting("threads", int, None, "CPU threads; none: all cores", optional=True,
            minimum=1, maximum=MAX_THREADS, range_text=f"between 1 and {MAX_THREADS}",
            flags=("-t", "--threads"), commands=_ALL, metavar="N",
            config_key="threads", label="Threads", hint="empty: all cores"),
    Setting("template", str, "model", "prompt template: model (the model file's own chat template, alpaca "
            "for a file without one), alpaca, chatml, llama-2-chat, or your own (templates/)",
            choices=_templates, usable=_template_loads, flags=("--template", "--chat-template"), commands=_ALL, by_hand=True,
            metavar="NAME", config_key="template", label="Template", hint="default model (its own)"),
    # Sampling: SamplingParams's fields, with llama.cpp's defaults (common_params_sampling).
    Setting("temperature", float, 0.8, "temperature; 0 or below = greedy",
            minimum=-_M, maximum=_M, range_text=f"between {-_M:g} and {_M:g}",
            flags=("--temp",), commands=_BOTH, metavar="T", config_key="temperature", label="Temperature",
            hint="0 = greedy; default 0.8", sampling=True, request=("temperature",), openai=True,
            sent_as=lambda t: max(t, 0.0)),  # greedy either way; OpenAI refuses a negative one
    Setting("top_k", int, 40, "keep the k most likely tokens; 0 or below = off",
            flags=("--top-k",), commands=_BOTH, metavar="K", config_key="top_k", label="Top-k",
            hint="0 = off; default 40", sampling=True, request=("top_k",)),
    Setting("top_p", float, 0.95, "keep the most likely tokens up to this probability, 0 to 1; 1 = off",
            minimum=0.0, maximum=1.0, range_text="between 0 and 1",
            flags=("--top-p",), commands=_BOTH, metavar="P", config_key="top_p", label="Top-p",
            hint="0 to 1; default 0.95", sampling=True, request=("top_p",), openai=True),
    Setting("min_p", float, 0.05, "keep the tokens at least this times as likely as the most likely, "
            "0 to 1; 0 = off", minimum=0.0, maximum=1.0, range_text="between 0 and 1",
            flags=("--min-p",), commands=_BOTH, metavar="P", config_key="min_p", label="Min-p",
            hint="0 to 1; default 0.05", sampling=True, request=("min_p",)),
    Setting("repeat_penalty", float, 1.0, "divide the logits of recent tokens by this; 1 = off",
            minimum=0.0, above_minimum=True, maximum=_M, range_text=f"between 0 (excluded) and {_M:g} (1 = off)",
            flags=("--repeat-penalty",), commands=_BOTH, metavar="R", config_key="repeat_penalty",
            label="Repeat penalty", hint="1 = off; default 1", sampling=True, request=("repeat_penalty",)),
    Setting("repeat_last_n", int, 64, "tokens the penalties look back over; -1 = the whole context, 0 = off",
            minimum=-1, range_text="-1 (the whole context), 0 (off) or more",
            flags=("--repeat-last-n",), commands=frozenset({RUN}), metavar="N",
            sampling=True, request=("repeat_last_n",)),
    Setting("frequency_penalty", float, 0.0, "lower a token's logit by this times its count; 0 = off",
            minimum=-_M, maximum=_M, range_text=f"between {-_M:g} and {_M:g}",
            flags=("--frequency-penalty",), commands=frozenset({RUN}), metavar="X",
            sampling=True, request=("frequency_penalty",), openai=True, send_default=False),
    Setting("presence_penalty", float, 0.0, "lower the logit of a token already present by this; 0 = off",
            minimum=-_M, maximum=_M, range_text=f"between {-_M:g} and {_M:g}",
            flags=("--presence-penalty",), commands=frozenset({RUN}), metavar="X",
            sampling=True, request=("presence_penalty",), openai=True, send_default=False),
    Setting("seed", int, None, "random seed; -1 or none = a random one", optional=True,
            minimum=-1, range_text="-1 (random) or more",
            flags=("-s", "--seed"), commands=_BOTH, metavar="N",
            sampling=True, request=("seed",), openai=True, send_default=False,
            sent_as=lambda seed: seed if seed >= 0 else None),  # -1: the server picks one
    # Generation.
    Setting("max_tokens", int, -1, "most tokens per answer; -1 = until the model stops or the context is full",
            minimum=-1, range_text="-1 (until the end) or more",
            flags=("-n", "--n-predict", "--max-tokens"), commands=_BOTH, metavar="N",
            config_key="max_tokens", label="Max tokens", hint="-1: until done",
            request=("max_tokens", "max_completion_tokens", "n_predict"), openai=True, send_default=False),
    Setting("draft_max", int, 16, "speculative decoding: most tokens guessed from the prompt and verified "
            "in one batch per step (the same text, faster); 0 = off",
            minimum=0, maximum=MAX_DRAFT, range_text=f"between 0 (off) and {MAX_DRAFT}",
            flags=("--draft-max", "--draft", "--draft-n"), commands=_ALL, metavar="N",
            config_key="draft_max", label="Draft tokens", hint="0 = off; default 16"),
)
SETTINGS_BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}
SAMPLING_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.sampling)
CONFIG_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.config_key)
REQUEST_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.request)


# -- the command lines ----------------------------------------------------------------------


class _CheckedFlag(argparse.Action):
    """Stores the flag's value once the table's check passes; a bad value is argparse's one-line
    error naming the flag as written: "--top-p must be between 0 and 1, got 2"."""

    def __init__(self, *args, setting: Setting, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setting = setting

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            value = self.setting.check(values)
        except SettingError as exc:
            parser.error(f"{option_string or self.setting.flag} {exc}")
        setattr(namespace, self.dest, value)


def add_flags(parser: argparse.ArgumentParser | Any, command: str, defaults: bool = True,
              skip: Iterable[str] = ()) -> None:
    """The table's flags for `command` (RUN, SERVE or TUI), but those added by hand and those
    in `skip`. `defaults`: the table's defaults (False: None, for a command whose flags
    override a config file)."""
    for setting in SETTINGS:
        if command not in setting.commands or setting.by_hand or setting.name in skip:
            continue
        kind = int if setting.kind is int else float
        parser.add_argument(*setting.flags_for(command), dest=setting.dest, type=kind, metavar=setting.metavar,
                            default=setting.default if defaults else None, action=_CheckedFlag,
                            setting=setting, help=setting.help)


def flag_values(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """{setting name: value} of the table's flags `command` takes (None: not given and no default)."""
    return {s.name: getattr(args, s.dest, None) for s in SETTINGS if command in s.commands and not s.by_hand}


def sampling_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling settings among `values` that are set (for SamplingParams(**...))."""
    return {s.name: values[s.name] for s in SAMPLING_SETTINGS if values.get(s.name) is not None}


# -- a request to an OpenAI / llama.cpp server -----------------------------------------------


def request_values(body: Mapping[str, Any], settings: Iterable[Setting] = REQUEST_SETTINGS
                   ) -> dict[str, Any]:
    """{setting name: value} from a request's fields (a field absent or null: the default).
    SettingError names the field as the request wrote it: "'top_p' must be between 0 and 1, got 2"."""
    values: dict[str, Any] = {}
    for setting in settings:
        values[setting.name] = setting.default
        for field in setting.request:
            if body.get(field) is None:
                continue
            try:
                values[setting.name] = setting.check(body[field])
            except SettingError as exc:
                raise SettingError(f"'{field}' {exc}") from None
            break
    return values


def request_fields(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a client sends for these settings: (OpenAI's fields, llama.cpp's own ones)."""
    standard: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for setting in REQUEST_SETTINGS:
        if setting.name not in values:
            continue
        value = values[setting.name]
        if value is None or (not setting.send_default and value == setting.default):
            continue
        value = setting.kind(value)
        if setting.sent_as is not None:
            value = setting.sent_as(value)
            if value is None:
                continue
        (standard if setting.openai else extra)[setting.request[0]] = value
    return standard, extra


def extra_request_fields() -> tuple[str, ...]:
    """The llama.cpp fields (not OpenAI's) that request_fields may send."""
    return tuple(s.request[0] for s in REQUEST_SETTINGS if not s.openai)
