"""The user's settings and key remapping: one TOML file in the user's config folder.

``$XDG_CONFIG_HOME/codeup-tui/config.toml`` (``~/.config/codeup-tui/config.toml``), or the
file named by ``--config`` or ``$CODEUP_TUI_CONFIG``. Top-level keys are the settings
(``FIELDS``); the ``[keys]`` table maps binding ids (shown by F1) to key strings::

    model = "~/models/codeup-llama-2-13b.Q4_K_M.gguf"
    temperature = 0.2

    [keys]
    send = "ctrl+j,alt+enter"

Precedence: command-line flags, then this file, then the defaults. Every value is checked
on load (type, range, unknown keys, key names); a problem is one line naming the file and
the key. The settings screen writes the file back atomically (by hand: tomllib only reads).

Plain Python, no Textual: the command line loads the file before Textual is imported.
"""

from __future__ import annotations

import difflib
import math
import os
import stat
import string
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.atomic_file import atomic_write_bytes
from engine.errors import CodeupError, printable
from engine.sampling import SamplingParams
from engine.speculative import DraftParams
from engine.chat_template import MODEL_TEMPLATE
from engine.templates import load_template, template_names

CONFIG_ENV = "CODEUP_TUI_CONFIG"
"""An environment variable naming the config file (``--config`` wins over it)."""

KEYS_TABLE = "keys"


class ConfigError(ValueError):
    """A config file problem, as one line naming the file (and the key)."""


# -- where the file is -------------------------------------------------------------------


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/codeup-tui/config.toml`` (a relative XDG_CONFIG_HOME is ignored, as
    the XDG spec says), else ``~/.config/codeup-tui/config.toml``."""
    base = os.environ.get("XDG_CONFIG_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "codeup-tui" / "config.toml"


def config_path(flag: str | None = None) -> tuple[Path, bool]:
    """The config file and whether the user named it (``--config``, then ``$CODEUP_TUI_CONFIG``);
    a named file must exist, the default one may not (yet)."""
    named = flag or os.environ.get(CONFIG_ENV)
    if named:
        return Path(named).expanduser(), True
    return default_config_path(), False


# -- the settings ------------------------------------------------------------------------

_ENGINE = SamplingParams()  # the engine's sampling defaults (llama.cpp's)
SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty")
"""The SamplingParams fields a user sets (the others keep the engine's defaults)."""
RESTART_FIELDS = ("model", "n_ctx", "threads")
"""Fields read when the model is loaded: a change applies when codeup-tui restarts."""


@dataclass(frozen=True)
class Settings:
    """What a user can set. None means "the default the engine picks"."""

    model: Path | None = None
    """The model file (as written: ``~`` is kept); None: the default model."""
    n_ctx: int | None = None
    """Context size in tokens; None: the model's, at most 4096."""
    threads: int | None = None
    """CPU threads; None: all cores."""
    template: str = MODEL_TEMPLATE
    """The prompt format: `model` (the model file's chat template; alpaca without one) or a template's name."""
    temperature: float = _ENGINE.temperature
    top_k: int = _ENGINE.top_k
    top_p: float = _ENGINE.top_p
    min_p: float = _ENGINE.min_p
    repeat_penalty: float = _ENGINE.repeat_penalty
    max_tokens: int = -1
    """Most tokens per answer; -1: until the model stops or the context is full."""
    draft_max: int = DraftParams().draft_max
    """Speculative decoding: most tokens guessed from the prompt per step; 0: off."""

    def draft_params(self) -> DraftParams:
        return DraftParams(draft_max=self.draft_max)

    def sampling_params(self, seed: int | None = None) -> SamplingParams:
        return SamplingParams(seed=seed, **{name: getattr(self, name) for name in SAMPLING_FIELDS})

    def updated(self, values: Mapping[str, Any]) -> Settings:
        """These settings with ``values`` set (None for a defaulted field: its default)."""
        defaults = Settings()
        return replace(self, **{name: getattr(defaults, name) if value is None else value
                                for name, value in values.items()})


# -- checking one value ------------------------------------------------------------------


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, got {_show(value)}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {_show(value)}")
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    return float(value)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {_show(value)}")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(printable(value))
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def _check_model(value: object) -> Path:
    return Path(_text(value))


def check_model_file(raw: str) -> Path:
    """Open the model file once (instant: the header) so a bad model fails before it is loaded.

    The resolved path; ValueError with a one-line message.
    """
    path = Path(raw).expanduser()
    if not path.exists():
        raise ValueError(f"model file does not exist: {raw}")
    if path.is_dir():
        raise ValueError(f"model path is a directory, not a file: {raw}")

    from engine.formats import open_model_file

    try:
        with open_model_file(path):
            pass
    except (CodeupError, OSError) as exc:
        raise ValueError(" ".join(str(exc).split()) or type(exc).__name__) from exc
    return path.resolve()


def _check_n_ctx(value: object) -> int:
    n = _int(value)
    if n < 16:
        raise ValueError(f"must be at least 16, got {n}")
    return n


def _check_threads(value: object) -> int:
    n = _int(value)
    if n < 1:
        raise ValueError(f"must be at least 1, got {n}")
    return n


def _check_template(value: object) -> str:
    name = _text(value)
    if name == MODEL_TEMPLATE:
        return name
    known = [MODEL_TEMPLATE, *template_names()]
    if name not in known:
        raise ValueError(f"must be one of {', '.join(known)}, got {printable(name)!r}")
    try:
        load_template(name)
    except CodeupError as exc:
        raise ValueError(f"names a broken template: {' '.join(str(exc).split())}") from None
    return name


def _check_temperature(value: object) -> float:
    t = _number(value)
    if t < 0:
        raise ValueError(f"must be 0 (greedy) or more, got {value}")
    return t


def _check_top_k(value: object) -> int:
    k = _int(value)
    if k < 0:
        raise ValueError(f"must be 0 (off) or more, got {k}")
    return k


def _check_probability(value: object) -> float:
    p = _number(value)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value}")
    return p


def _check_repeat_penalty(value: object) -> float:
    r = _number(value)
    if r <= 0:
        raise ValueError(f"must be greater than 0 (1 = off), got {value}")
    return r


def _check_max_tokens(value: object) -> int:
    n = _int(value)
    if n == 0 or n < -1:
        raise ValueError(f"must be -1 or at least 1, got {n}")
    return n


def _check_draft_max(value: object) -> int:
    n = _int(value)
    if not 0 <= n <= 256:
        raise ValueError(f"must be between 0 (off) and 256, got {n}")
    return n


@dataclass(frozen=True)
class Field:
    """One setting: its TOML key (= the Settings attribute), how it is checked and shown."""

    name: str
    label: str
    flag: str
    """The command-line flag that overrides it (named in the flag's error messages)."""
    check: Callable[[object], Any]
    """Returns the value, or raises ValueError with the problem ("must be ..., got ...")."""
    kind: type
    hint: str
    """What the default is, or what a value means (shown beside the field)."""


FIELDS: tuple[Field, ...] = (
    Field("model", "Model file", "--model", _check_model, Path, "empty: default model"),
    Field("n_ctx", "Context size", "--ctx-size", _check_n_ctx, int, "empty: model's, ≤ 4096"),
    Field("threads", "Threads", "--threads", _check_threads, int, "empty: all cores"),
    Field("template", "Template", "--template", _check_template, str,
          f"default {MODEL_TEMPLATE} (its own)"),
    Field("temperature", "Temperature", "--temp", _check_temperature, float,
          f"0 = greedy; default {_ENGINE.temperature:g}"),
    Field("top_k", "Top-k", "--top-k", _check_top_k, int, f"0 = off; default {_ENGINE.top_k}"),
    Field("top_p", "Top-p", "--top-p", _check_probability, float, f"0 to 1; default {_ENGINE.top_p:g}"),
    Field("min_p", "Min-p", "--min-p", _check_probability, float, f"0 to 1; default {_ENGINE.min_p:g}"),
    Field("repeat_penalty", "Repeat penalty", "--repeat-penalty", _check_repeat_penalty, float,
          f"1 = off; default {_ENGINE.repeat_penalty:g}"),
    Field("max_tokens", "Max tokens", "--max-tokens", _check_max_tokens, int, "-1: until done"),
    Field("draft_max", "Draft tokens", "--draft-max", _check_draft_max, int,
          f"0 = off; default {DraftParams().draft_max}"),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}
_FLAG_NAMES = {f.flag.lstrip("-").replace("-", "_"): f.name for f in FIELDS} | {"ctx": "n_ctx"}
"""A flag's name written as a key ("temp", "ctx_size"): the key it means."""


def check_value(name: str, value: object) -> Any:
    """The checked value of setting ``name``; ValueError with the problem otherwise."""
    return FIELDS_BY_NAME[name].check(value)


def parse_text(name: str, text: str) -> Any:
    """A setting typed as text (the settings screen); empty: None (its default).

    ValueError with the problem for anything else that is not a valid value.
    """
    spec = FIELDS_BY_NAME[name]
    text = text.strip()
    if not text:
        return None
    value: object = text
    if spec.kind is int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be a whole number, got {printable(text)!r}") from None
    elif spec.kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be a number, got {printable(text)!r}") from None
    return spec.check(value)


def format_value(value: object) -> str:
    """A setting as the settings screen shows it (and as parse_text reads it back)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return str(value)


# -- key strings -------------------------------------------------------------------------

MODIFIERS = ("alt", "ctrl", "hyper", "meta", "shift", "super")
_NAMED_KEYS = {
    "escape", "enter", "tab", "space", "backspace", "delete", "insert", "home", "end",
    "pageup", "pagedown", "up", "down", "left", "right",
} | {f"f{n}" for n in range(1, 25)}


def _punctuation_name(char: str) -> str:
    """The key name Textual gives a punctuation character (e.g. '/' -> 'slash')."""
    name = unicodedata.name(char).lower().replace("-", "_").replace(" ", "_")
    return {
        "solidus": "slash", "reverse_solidus": "backslash", "commercial_at": "at",
        "hyphen_minus": "minus", "plus_sign": "plus", "low_line": "underscore",
    }.get(name, name)


_PUNCTUATION = {char: _punctuation_name(char) for char in string.punctuation}
_KEY_NAMES = _NAMED_KEYS | set(_PUNCTUATION.values()) | set(string.ascii_letters) | set(string.digits)


def normalize_keys(text: str) -> str:
    """A key string, checked and in Textual's spelling: ``"Ctrl+/ , F2"`` -> ``"ctrl+slash,f2"``.

    Modifiers are sorted as Textual reports them; ValueError names the first bad key.
    """
    keys = [key.strip() for key in text.split(",")]
    if not text.strip() or not all(keys):
        raise ValueError(f"has an empty key in {printable(text)!r} (keys are separated by commas)")
    return ",".join(_normalize_key(key) for key in keys)


def _normalize_key(key: str) -> str:
    *modifiers, base = key.split("+")
    if base == "" and key.endswith("+"):  # "ctrl++": the plus key itself
        raise ValueError(f"has a bad key {printable(key)!r} (write the + key as 'plus')")
    mods = [m.lower() for m in modifiers]
    bad = [m for m in mods if m not in MODIFIERS]
    if bad:
        raise ValueError(f"has an unknown modifier {printable(bad[0])!r} in {printable(key)!r} "
                         f"(known: {', '.join(MODIFIERS)})")
    if len(base) == 1 and base in _PUNCTUATION:
        base = _PUNCTUATION[base]
    elif len(base) > 1 or mods:  # "F2", "ctrl+J": Textual's names are lower case
        base = base.lower()
    if base not in _KEY_NAMES:
        raise ValueError(f"has an unknown key {printable(key)!r} (write keys like ctrl+j, alt+enter, f2)")
    return "+".join(sorted(set(mods)) + [base])


# -- the file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A loaded config file: the settings it sets, and its key remapping."""

    path: Path
    values: Mapping[str, Any] = field(default_factory=dict)
    """The settings the file sets (checked), by field name; unset ones are absent."""
    keys: Mapping[str, str] = field(default_factory=dict)
    """Binding id -> key string (normalized: see ``normalize_keys``)."""
    lora: tuple[tuple[Path, float], ...] = ()
    """LoRA adapters applied to the local model: (adapter file, scale), from ``lora``."""
    remote: Mapping[str, str] = field(default_factory=dict)
    """The server to use (``endpoint``) and its model (``remote_model``), when set (see REMOTE_KEYS)."""

    @property
    def settings(self) -> Settings:
        return Settings().updated(self.values)


def _where(path: Path) -> str:
    return printable(str(path))


def _unknown(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_config(path: Path, *, must_exist: bool = False) -> Config:
    """Read and check a config file; a missing one is empty unless ``must_exist``.

    Raises ConfigError with one line: ``<file>: <key> <problem>``.
    """
    where = _where(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if must_exist:
            raise ConfigError(f"config file does not exist: {where}") from None
        return Config(path)
    except IsADirectoryError:
        raise ConfigError(f"config path is a directory, not a file: {where}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {' '.join(str(exc).split())}") from None
    values: dict[str, Any] = {}
    remote: dict[str, str] = {}
    for name, value in data.items():
        if name in (KEYS_TABLE, LORA_KEY):
            continue
        if name in REMOTE_KEYS:
            try:
                remote[name] = check_remote(name, value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {name} {exc}") from None
            continue
        if name not in FIELDS_BY_NAME:
            known = [*FIELDS_BY_NAME, *REMOTE_KEYS, LORA_KEY, f"[{KEYS_TABLE}]"]
            alias = _FLAG_NAMES.get(name.replace("-", "_"))
            hint = f" (did you mean {alias!r}?)" if alias else _unknown(name, known)
            raise ConfigError(f"{where}: unknown key {printable(name)!r}{hint} (known: {', '.join(known)})")
        try:
            values[name] = check_value(name, value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {name} {exc}") from None
    return Config(path, values, _load_keys(data.get(KEYS_TABLE, {}), where), _load_lora(data.get(LORA_KEY, []), where),
                  remote)


LORA_KEY = "lora"
REMOTE_KEYS = ("endpoint", "remote_model")
"""Keys for a model on a server: its URL (used unless a model file is given), the model there."""


def check_remote(name: str, value: object) -> str:
    """``endpoint`` (an http(s) URL) or ``remote_model`` (a name); ValueError otherwise."""
    text = _text(value).strip()
    if name == "endpoint":
        from engine.errors import CodeupError
        from engine.remote import Endpoint

        try:
            Endpoint.parse(text)
        except CodeupError as exc:
            raise ValueError(f"is not usable: {exc}") from None
    return text


def _load_lora(value: object, where: str) -> tuple[tuple[Path, float], ...]:
    """``lora = "a.gguf"``, ``lora = ["a.gguf", ...]`` or ``lora = [{path = "a.gguf", scale = 0.5}]``."""
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list):
        raise ConfigError(f"{where}: lora must be an adapter file or a list of them, got {_show(value)}")
    out = []
    for item in items:
        path, scale = (item.get("path"), item.get("scale", 1.0)) if isinstance(item, dict) else (item, 1.0)
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(f"{where}: lora entries are \"file.gguf\" or {{path = \"file.gguf\", scale = 0.5}}, "
                              f"got {_show(item)}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale != scale:
            raise ConfigError(f"{where}: lora scale of {printable(path)} must be a number, got {_show(scale)}")
        out.append((Path(path).expanduser(), float(scale)))
    return tuple(out)


def _load_keys(table: object, where: str) -> dict[str, str]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {KEYS_TABLE} must be a table ([{KEYS_TABLE}]) of binding id = \"keys\"")
    keys: dict[str, str] = {}
    for binding_id, value in table.items():
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {KEYS_TABLE}.{printable(binding_id)} must be a key string like "
                              f"\"ctrl+j,alt+enter\", got {_show(value)}")
        try:
            keys[binding_id] = normalize_keys(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {KEYS_TABLE}.{printable(binding_id)} {exc}") from None
    return keys


def check_binding_ids(config: Config, known: Iterable[str]) -> None:
    """ConfigError for a binding id in ``[keys]`` that no binding has."""
    known = sorted(set(known))
    for binding_id in config.keys:
        if binding_id not in known:
            close = difflib.get_close_matches(binding_id, known, n=1)
            hint = f"did you mean {close[0]!r}? F1 lists every id" if close else f"known: {', '.join(known)}"
            raise ConfigError(f"{_where(config.path)}: {KEYS_TABLE}: unknown binding id "
                              f"{printable(binding_id)!r} ({hint})")


# -- writing it back ---------------------------------------------------------------------

HEADER = "# codeup-tui settings; the settings screen (F2) rewrites this file. See the README.\n"


def toml_string(text: str) -> str:
    """A TOML basic string (quotes, backslashes and control characters escaped)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # always has a "." or an exponent: a TOML float
    return toml_string(str(value))


def _toml_key(key: str) -> str:
    bare = key and all(c in string.ascii_letters + string.digits + "_-" for c in key)
    return key if bare else toml_string(key)


def render_config(values: Mapping[str, Any], keys: Mapping[str, str], lora=(), remote=None) -> str:
    """The TOML text of a config: the settings in FIELDS order, the server, the LoRA
    adapters, then the [keys] table."""
    lines = [HEADER]
    for spec in FIELDS:
        if values.get(spec.name) is not None:
            lines.append(f"{spec.name} = {_toml_value(values[spec.name])}\n")
    for name in REMOTE_KEYS:
        if (remote or {}).get(name):
            lines.append(f"{name} = {toml_string(remote[name])}\n")
    if lora:
        entries = ", ".join(f"{{ path = {toml_string(str(path))}, scale = {float(scale)!r} }}" for path, scale in lora)
        lines.append(f"{LORA_KEY} = [{entries}]\n")
    if keys:
        lines.append(f"\n[{KEYS_TABLE}]\n")
        lines.extend(f"{_toml_key(binding_id)} = {toml_string(key)}\n" for binding_id, key in keys.items())
    return "".join(lines)


def save_config(config: Config) -> None:
    """Write the file atomically: a temporary file beside it, fsync, then rename over it.

    A symlinked config (dotfiles) is written through to its target. ConfigError (one line)
    when it cannot be written; the old file is then untouched.
    """
    text = render_config(config.values, config.keys, config.lora, config.remote)
    target = config.path.resolve() if config.path.is_symlink() else config.path
    try:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)  # keep the file's permissions
        except FileNotFoundError:
            mode = 0o600  # a new file: private, as a settings file should be
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, text.encode("utf-8"), mode)
    except OSError as exc:
        raise ConfigError(f"cannot write {_where(config.path)}: {exc.strerror or exc}") from None
