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

SUBCOMMANDS = (run, serve, info, fetch_model, synth, bench, quantize, convert, convert_lora, export_lora)
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage block plus a line."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_model_overrides(p: argparse.ArgumentParser, context_length: bool = True) -> None:
    """Options for what GGML v3 files did not store (llama.cpp's 2023 flags)."""
    g = p.add_argument_group("hyperparameter overrides (needed for GGML v3 files)")
    g.add_argument("--gqa", type=int, metavar="N", help="grouped-query factor n_head/n_head_kv (8 for Llama-2-70B)")
    g.add_argument("--eps", type=float, metavar="X", dest="rms_eps", help="RMS norm epsilon (GGML default 5e-6; Llama 2: 1e-5)")
    g.add_argument("--rope-freq-base", type=float, metavar="X", help="RoPE frequency base (default 10000)")
    g.add_argument("--rope-freq-scale", type=float, metavar="X", help="RoPE linear frequency scale (default 1)")
    if context_length:
        g.add_argument("-c", "--context-length", type=int, metavar="N", help="training context length (GGML default 2048)")


def model_overrides(args: argparse.Namespace) -> dict:
    return {
        "gqa": args.gqa,
        "rms_eps": args.rms_eps,
        "rope_freq_base": args.rope_freq_base,
        "rope_freq_scale": args.rope_freq_scale,
        "context_length": getattr(args, "context_length", None),
    }


class _LoraAction(argparse.Action):
    """--lora FILE and --lora-scaled FILE SCALE, kept in the order given."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string == "--lora-scaled":
            path, scale = values
            try:
                scale = float(scale)
            except ValueError:
                parser.error(f"--lora-scaled {path} {scale}: the scale must be a number")
        else:
            path, scale = values, 1.0
        adapters = list(getattr(namespace, self.dest, None) or [])
        adapters.append((path, scale))
        setattr(namespace, self.dest, adapters)


def add_lora_options(p: argparse.ArgumentParser) -> None:
    """LoRA adapters (llama.cpp's GGUF adapter format) applied at evaluation."""
    p.add_argument("--lora", action=_LoraAction, dest="lora", metavar="FILE",
                   help="apply a LoRA adapter (GGUF adapter file; repeatable)")
    p.add_argument("--lora-scaled", action=_LoraAction, dest="lora", nargs=2, metavar=("FILE", "SCALE"),
                   help="apply a LoRA adapter at a scale (repeatable)")


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
    args = parser.parse_args(argv)
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


def entry_point() -> None:
    sys.exit(main())
