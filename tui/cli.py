"""``codeup-tui [PROJECT_DIR] [--model PATH | --endpoint URL] [--template NAME] [...]``: check the arguments
and the config file, then run the app.

Argument and config file problems print one line, ``codeup-tui: error: <message>``, to
stderr and exit with status 2, before the terminal is switched to the app. Textual is
imported only once the arguments and the settings are good (the key remapping is checked
against the app's bindings, so after that import). Flags win over the config file, which
wins over the defaults; the settings' flags, ranges and defaults are engine/settings.py's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__

if TYPE_CHECKING:
    from .config import Config, Settings

PROG = "codeup-tui"


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but every error is one line (no usage block) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        from codeup_tui.engine.terminal_text import printable

        self.exit(2, f"{self.prog}: error: {printable(' '.join(message.split()))}\n")


def build_parser() -> ArgumentParser:
    from codeup_tui.engine.settings import TUI, add_flags

    parser = ArgumentParser(
        prog=PROG,
        description="A keyboard-driven terminal coding assistant running a local model. "
        "Flags override the config file (--config).",
    )
    parser.add_argument(
        "project_dir",
        metavar="PROJECT_DIR",
        nargs="?",
        default=".",
        help="the project directory to work on (default: the current directory)",
    )
    parser.add_argument(
        "-m", "--model",
        metavar="PATH",
        help="a model file (GGUF, or GGML v3); default: the default model, "
        "downloaded once and cached",
    )
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        help="use the model of an OpenAI-compatible server (llama.cpp's, `codeup serve`) instead of a "
        "local file (default: the config's endpoint, else $OPENAI_BASE_URL, unless a model file is "
        "given); the API key comes from $CODEUP_API_KEY, else $OPENAI_API_KEY; $HTTPS_PROXY, "
        "$HTTP_PROXY and $NO_PROXY are honoured",
    )
    parser.add_argument("--remote-model", metavar="NAME",
                        help="the server's model to use (default: the config's remote_model, else the "
                        "first the server lists; F2 lists them)")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="with --endpoint: seconds the server may stay silent before the answer "
                        "fails (default: 300)")
    parser.add_argument(
        "--template", "--chat-template",
        metavar="NAME",
        help="prompt template (default: model, the model file's own chat template, alpaca for a file without "
        "one; see `codeup run --help` and templates/)",
    )
    parser.add_argument("--lora", action="append", dest="lora", metavar="FILE", type=lambda p: (p, 1.0),
                        help="apply a LoRA adapter (GGUF adapter file; repeatable; replaces the config's lora)")
    parser.add_argument("--lora-scaled", action="append", dest="lora", nargs=2, metavar=("FILE", "SCALE"),
                        help="apply a LoRA adapter at a scale (repeatable)")
    # context size, threads, sampling, max tokens, drafting: engine/settings.py's flags, checked
    # as they are parsed; None when not given (the config file's value, else the default)
    add_flags(parser, TUI, defaults=False)
    parser.add_argument("--config", metavar="PATH",
                        help="the config file (default: $CODEUP_TUI_CONFIG, else "
                        "$XDG_CONFIG_HOME/codeup-tui/config.toml)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def flag_fields() -> dict[str, str]:
    """argparse dest -> the setting it overrides (engine/settings.py's flags with a config key)."""
    from codeup_tui.engine.settings import SETTINGS, TUI

    return {s.dest: s.name for s in SETTINGS if TUI in s.commands and s.config_key}




def check_project_dir(raw: str) -> Path:
    """The project directory, resolved; raises ValueError with a one-line message."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise ValueError(f"project directory does not exist: {raw}")
    if not path.is_dir():
        raise ValueError(f"project path is not a directory: {raw}")
    return path.resolve()


def flag_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings given as flags (their values were checked as they were parsed).

    --model and --template are checked later, with the file and the template themselves.
    """
    overrides: dict[str, object] = {}
    for dest, name in flag_fields().items():
        value = getattr(args, dest)
        if value is not None:
            overrides[name] = Path(value) if name == "model" else value
    return overrides


def resolve_settings(args: argparse.Namespace, config: Config) -> tuple[Settings, Path | None]:
    """Flags over the config file over the defaults; and the model file, checked (not with
    --endpoint: the model is the server's)."""
    from codeup_tui.engine.errors import printable
    from .config import check_model_file

    overrides = flag_overrides(args)
    settings = config.settings.updated(overrides)
    model_path = None
    if settings.model is not None and not getattr(args, "endpoint", None):
        try:
            model_path = check_model_file(str(settings.model))
        except ValueError as exc:
            if "model" in overrides:
                raise
            raise ValueError(f"{printable(str(config.path))}: model: {exc}") from None
    return settings, model_path


def lora_adapters(args: argparse.Namespace, config: Config) -> tuple:
    """((file, scale), ...): the flags', else the config file's; ValueError for a bad scale."""
    if not getattr(args, "lora", None):
        return tuple(config.lora)
    out = []
    for path, scale in (entry if isinstance(entry, tuple) else tuple(entry) for entry in args.lora):
        try:
            out.append((Path(path).expanduser(), float(scale)))
        except ValueError:
            raise ValueError(f"--lora-scaled {path} {scale}: the scale must be a number") from None
    return tuple(out)


def check_generation_options(settings: Settings, seed: int | None):
    """The template and sampling settings; ValueError (one line) for a bad one."""
    from codeup_tui.engine.chat_template import MODEL_TEMPLATE
    from codeup_tui.engine.errors import CodeupError
    from codeup_tui.engine.templates import load_template

    try:
        # `model`: the model file's own template, resolved once the model is loaded
        template = settings.template if settings.template == MODEL_TEMPLATE else load_template(settings.template)
        return template, settings.sampling_params(seed)
    except CodeupError as exc:
        raise ValueError(" ".join(str(exc).split())) from exc


def choose_endpoint(args: argparse.Namespace, config, environ=None) -> str | None:
    """The server to use: --endpoint; else, without --model, the config's `endpoint`; else,
    with no model file in the config either, $OPENAI_BASE_URL. None: a local model."""
    if getattr(args, "endpoint", None) or getattr(args, "model", None) is not None:
        return getattr(args, "endpoint", None)
    if config is not None and config.remote.get("endpoint"):
        return config.remote["endpoint"]
    if config is not None and config.values.get("model") is not None:
        return None
    from codeup_tui.engine.remote import base_url_from_env

    return base_url_from_env(environ)


def remote_backend(args: argparse.Namespace, settings: Settings, config=None):
    """The backend for --endpoint (None without it); ValueError (one line) for bad flags."""
    if not getattr(args, "endpoint", None):
        if getattr(args, "timeout", None) is not None:
            raise ValueError("--timeout applies only with --endpoint")
        if getattr(args, "remote_model", None) is not None:
            raise ValueError("--remote-model applies only with --endpoint (a server)")
        return None
    if args.model is not None:
        raise ValueError("--model and --endpoint: give one (a model file here, or a server)")
    if args.timeout is not None and not 0 < args.timeout <= 86400:
        raise ValueError(f"--timeout {args.timeout:g}: give seconds, more than 0")
    from codeup_tui.engine.errors import CodeupError
    from codeup_tui.engine.remote import Endpoint, api_key_from_env
    from .remote_backend import RemoteBackend

    try:
        Endpoint.parse(args.endpoint)
    except CodeupError as exc:
        raise ValueError(str(exc)) from None
    remote_model = getattr(args, "remote_model", None) or (config.remote.get("remote_model") if config else None)
    return RemoteBackend(args.endpoint, api_key_from_env(), n_ctx=settings.n_ctx, read_timeout=args.timeout,
                         model=remote_model)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    from codeup_tui.engine.cli.options import normalize_options

    # `--ctx_size` is `--ctx-size`, as llama.cpp's 2023 spellings (and `codeup run`) have it
    args = parser.parse_args(normalize_options(list(sys.argv[1:] if argv is None else argv), parser))
    from .config import ConfigError, check_binding_ids, config_path, load_config

    try:
        project_dir = check_project_dir(args.project_dir)
        path, named = config_path(args.config)
        config = load_config(path, must_exist=named)
        args.endpoint = choose_endpoint(args, config)
        settings, model_path = resolve_settings(args, config)
        check_generation_options(settings, args.seed)  # a bad template or sampling value: one line, now
        backend = remote_backend(args, settings, config)
    except (ValueError, ConfigError) as exc:
        parser.error(str(exc))

    from .app import CodeupApp

    try:
        check_binding_ids(config, CodeupApp.binding_ids())
    except ConfigError as exc:
        parser.error(str(exc))
    try:
        lora = lora_adapters(args, config)
    except ValueError as exc:
        parser.error(str(exc))
    if lora and backend is not None:
        parser.error("--lora applies to a local model, not with --endpoint")
    app = CodeupApp(
        project_dir,
        lora=lora,
        model_path=None if backend is not None else model_path,
        backend=backend,
        settings=settings,
        seed=args.seed,
        config=config,
    )
    try:
        app.run()
    finally:
        app.close_model()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
