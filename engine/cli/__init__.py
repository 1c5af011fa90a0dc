"""`codeup`: the engine's command line.

Each subcommand lives in its own module with `add_parser(subparsers)` and `run(args) -> int`.
Every user error becomes one line on stderr and exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import CodeupError, printable
from . import bench, convert, convert_lora, export_lora, fetch_model, info, quantize, run, serve, synth
from .options import normalize_options, unknown_option_message

SUBCOMMANDS = (run, serve, info, fetch_model, synth, bench, quantize, convert, convert_lora, export_lora)
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage block plus a line."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="codeup", description="The codeup engine: llama.cpp model files on your CPU.")
    parser.add_argument("--version", action="version", version=f"codeup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = normalize_options(list(sys.argv[1:] if argv is None else argv), parser)
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = _subparser(parser, getattr(args, "command", None)) or parser
        sub.error(unknown_option_message(sub, extras))
    try:
        return args.run(args)
    except CodeupError as e:
        print(f"codeup: error: {printable(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("codeup: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `codeup info x | head`: the reader went away; that is not an error of ours.
        sys.stderr.close()
        return 0


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    return None


def entry_point() -> None:
    sys.exit(main())
