"""``codeup-tui [PROJECT_DIR] [--model PATH] [--template NAME] [...]``: check the arguments,
then run the app.

Argument problems print one line, ``codeup-tui: error: <message>``, to stderr and exit
with status 2, before the terminal is switched to the app. Textual is imported only once
the arguments are good.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from tui import __version__

PROG = "codeup-tui"


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but every error is one line (no usage block) and exits with 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="A keyboard-driven terminal coding assistant running a local model.",
    )
    parser.add_argument(
        "project_dir",
        metavar="PROJECT_DIR",
        nargs="?",
        default=".",
        help="the project directory to work on (default: the current directory)",
    )
    parser.add_argument(
        "--model",
        metavar="PATH",
        help="a model file (GGUF, or GGML v3); default: the default model, "
        "downloaded once and cached",
    )
    parser.add_argument(
        "--template",
        metavar="NAME",
        default="alpaca",
        help="prompt template (default: alpaca; see `codeup run --help` and templates/)",
    )
    parser.add_argument("-c", "--ctx-size", type=int, metavar="N", help="context size in tokens "
                        "(default: the model's, at most 4096)")
    parser.add_argument("-t", "--threads", type=int, metavar="N", help="CPU threads (default: all)")
    parser.add_argument("-n", "--max-tokens", type=int, default=-1, metavar="N",
                        help="most tokens per answer (default: -1, until the model stops; a quarter "
                        "of the context is then kept free for the answer)")
    parser.add_argument("--temp", type=float, metavar="T", help="sampling temperature (default: 0.8)")
    parser.add_argument("--seed", type=int, metavar="N", help="sampling seed (default: random)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def check_project_dir(raw: str) -> Path:
    """The project directory, resolved; raises ValueError with a one-line message."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise ValueError(f"project directory does not exist: {raw}")
    if not path.is_dir():
        raise ValueError(f"project path is not a directory: {raw}")
    return path.resolve()


def check_model_file(raw: str) -> Path:
    """Open the model file once (instant) so a bad --model fails before the app starts."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise ValueError(f"model file does not exist: {raw}")
    if path.is_dir():
        raise ValueError(f"model path is a directory, not a file: {raw}")

    from engine.errors import CodeupError
    from engine.formats import open_model_file

    try:
        with open_model_file(path):
            pass
    except (CodeupError, OSError) as exc:
        raise ValueError(" ".join(str(exc).split()) or type(exc).__name__) from exc
    return path.resolve()


def check_generation_options(args: argparse.Namespace):
    """The template and sampling settings; ValueError (one line) for a bad one."""
    from engine.errors import CodeupError
    from engine.sampling import SamplingParams
    from engine.templates import load_template

    if args.ctx_size is not None and args.ctx_size < 16:
        raise ValueError(f"--ctx-size must be at least 16, got {args.ctx_size}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.max_tokens == 0 or args.max_tokens < -1:
        raise ValueError(f"--max-tokens must be -1 or at least 1, got {args.max_tokens}")
    try:
        template = load_template(args.template)
        options = {"seed": args.seed} if args.seed is not None else {}
        if args.temp is not None:
            options["temperature"] = args.temp
        sampling = SamplingParams(**options)
    except CodeupError as exc:
        raise ValueError(" ".join(str(exc).split())) from exc
    return template, sampling


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        project_dir = check_project_dir(args.project_dir)
        model_path = None if args.model is None else check_model_file(args.model)
        template, sampling = check_generation_options(args)
    except ValueError as exc:
        parser.error(str(exc))

    from tui.app import CodeupApp

    app = CodeupApp(
        project_dir,
        model_path=model_path,
        template=template,
        sampling=sampling,
        max_tokens=args.max_tokens,
        n_ctx=args.ctx_size,
        n_threads=args.threads,
    )
    try:
        app.run()
    finally:
        app.close_model()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
