"""The user's settings and key remapping: one TOML file in the user's config folder.

``$XDG_CONFIG_HOME/codeup-tui/config.toml`` (``~/.config/codeup-tui/config.toml``), or the
file named by ``--config`` or ``$CODEUP_TUI_CONFIG``. Top-level keys are the settings
(``FIELDS``, from engine/settings.py); the ``[keys]`` table maps binding ids (shown by F1) to key strings::

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
import os
import stat
import string
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from codeup_tui.engine.atomic_file import atomic_write_bytes
from codeup_tui.engine.errors import CodeupError, printable
from codeup_tui.engine.sampling import SamplingParams
from codeup_tui.engine.settings import CONFIG_SETTINGS, Setting, format_number, show
from codeup_tui.engine.speculative import DraftParams

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

# The settings, their ranges, defaults and flags are engine/settings.py's (one table for
# the command lines, this file, the F2 form, the server and the remote client).
FIELDS: tuple[Setting, ...] = CONFIG_SETTINGS
"""The settings of the file (its keys), in the order the F2 form shows them."""
FIELDS_BY_NAME = {spec.config_key: spec for spec in FIELDS}
_DEFAULTS = {spec.name: spec.default for spec in FIELDS}
SAMPLING_FIELDS = tuple(spec.name for spec in FIELDS if spec.sampling)
"""The SamplingParams fields a user sets (the others keep the engine's defaults)."""
RESTART_FIELDS = ("model", "n_ctx", "threads")
"""Fields read when the model is loaded: a change applies when codeup-tui restarts."""


@dataclass(frozen=True)
class Settings:
    """What a user can set (a field per config setting of engine/settings.py). None means
    "the default the engine picks"."""

    model: Path | None = _DEFAULTS["model"]
    """The model file (as written: ``~`` is kept); None: the default model."""
    n_ctx: int | None = _DEFAULTS["n_ctx"]
    """Context size in tokens; None: the model's, at most 4096."""
    threads: int | None = _DEFAULTS["threads"]
    """CPU threads; None: all cores."""
    template: str = _DEFAULTS["template"]
    """The prompt format: `model` (the model file's chat template; alpaca without one) or a template's name."""
    temperature: float = _DEFAULTS["temperature"]
    top_k: int = _DEFAULTS["top_k"]
    top_p: float = _DEFAULTS["top_p"]
    min_p: float = _DEFAULTS["min_p"]
    repeat_penalty: float = _DEFAULTS["repeat_penalty"]
    max_tokens: int = _DEFAULTS["max_tokens"]
    """Most tokens per answer; -1: until the model stops or the context is full."""
    draft_max: int = _DEFAULTS["draft_max"]
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


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {_show(value)}")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


_show = show


def check_model_file(raw: str) -> Path:
    """Open the model file once (instant: the header) so a bad model fails before it is loaded.

    The resolved path; ValueError with a one-line message.
    """
    path = Path(raw).expanduser()
    if not path.exists():
        raise ValueError(f"model file does not exist: {raw}")
    if path.is_dir():
        raise ValueError(f"model path is a directory, not a file: {raw}")

    from codeup_tui.engine.formats import open_model_file

    try:
        with open_model_file(path):
            pass
    except (CodeupError, OSError) as exc:
        raise ValueError(" ".join(str(exc).split()) or type(exc).__name__) from exc
    return path.resolve()


_FLAG_NAMES = {flag.lstrip("-").replace("-", "_"): spec.config_key
               for spec in FIELDS for flag in (*spec.flags, *(a for _, a in spec.aliases)) if flag.startswith("--")}
"""A flag's name written as a key ("temp", "ctx_size"): the key it means."""


def check_value(name: str, value: object) -> Any:
    """The checked value of setting ``name``; ValueError (SettingError) with the problem otherwise."""
    return FIELDS_BY_NAME[name].check(value)


def parse_text(name: str, text: str) -> Any:
    """A setting typed as text (the settings screen); empty: None (its default).

    ValueError (SettingError) with the problem for anything else that is not a valid value.
    """
    return FIELDS_BY_NAME[name].parse_text(text)


def format_value(value: object) -> str:
    """A setting as the settings screen shows it (and as parse_text reads it back)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format_number(value)
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
        from codeup_tui.engine.errors import CodeupError
        from codeup_tui.engine.remote import Endpoint

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
