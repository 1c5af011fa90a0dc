"""The options several `codeup` subcommands share (llama.cpp's flags, model overrides, LoRA,
speculative decoding) and the command line's text handling. The subcommand modules import
these from here, and engine/cli/__init__.py imports the subcommands: no import circle."""

from __future__ import annotations

import argparse
import difflib
import re
import sys

from ..errors import CodeupError

LLAMA_CPP_TEMPLATE_NAMES = {"llama2": "llama-2-chat"}
"""llama.cpp's --chat-template names that are spelled differently here (`run`, `serve`)."""


def add_llama_cpp_options(p: argparse.ArgumentParser) -> None:
    """llama.cpp's flags for things this engine does by itself, accepted so that command
    lines written for llama.cpp (model cards) run unchanged."""
    g = p.add_argument_group("accepted for llama.cpp command lines")
    g.add_argument("-ngl", "--n-gpu-layers", "--gpu-layers", dest="n_gpu_layers", type=int, metavar="N",
                   help="layers to offload to a GPU: this engine computes on the CPU, so a notice only")
    g.add_argument("-b", "--batch-size", type=int, metavar="N",
                   help="prompt batch size (the whole prompt is evaluated at once here)")
    g.add_argument("--no-mmap", dest="mmap", action="store_false",
                   help="read the weights into memory (the default here: generation streams them faster)")
    g.add_argument("--mmap", dest="mmap", action="store_true", default=False,
                   help="keep the weights mapped from the file: opens at once and shares the page cache "
                        "between processes, but generates ~1.4x slower")
    g.add_argument("--mlock", action="store_true", help="(pages stay as the system decides)")


def llama_cpp_notices(args: argparse.Namespace) -> None:
    """One line on stderr for each llama.cpp flag that changes nothing here (never an error)."""
    if getattr(args, "n_gpu_layers", None) is not None:
        print(f"codeup: -ngl {args.n_gpu_layers}: this engine computes on the CPU; no layers are offloaded",
              file=sys.stderr, flush=True)
    batch = getattr(args, "batch_size", None)
    if batch is not None and batch < 1:
        raise CodeupError(f"-b {batch}: the batch size must be at least 1")


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b",
            "f": "\f", "v": "\v", "?": "?", "0": "\0"}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|.)", re.S)


def process_escapes(text: str) -> str:
    """llama.cpp's escape processing of -p, -r and --in-prefix text: \\n \\t \\r \\\\ \\' \\" \\xNN
    (and \\a \\b \\f \\v \\? \\0); any other backslash is kept as written."""

    def one(m: re.Match) -> str:
        code = m[1]
        if code[0] == "x" and len(code) > 1:
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, m[0])

    return _ESCAPE.sub(one, text)


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    found = {s for action in parser._actions for s in action.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _long_options(sub)
    return found


def normalize_options(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`--repeat_penalty` is `--repeat-penalty`: every long option accepts `_` for `-`, as
    llama.cpp's 2023 spellings have it. Values, and anything after `--`, are left alone."""
    known = _long_options(parser)
    out = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, eq, value = arg.partition("=")
            if name.replace("_", "-") in known:
                arg = name.replace("_", "-") + eq + value
        out.append(arg)
    return out


def unknown_option_message(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """One line naming the first unknown option and the closest known one."""
    flags = [a for a in extras if a.startswith("-") and len(a) > 1]
    if not flags:
        return f"unexpected argument {extras[0]!r}"
    flag = flags[0].split("=", 1)[0]
    known = sorted(s for action in parser._actions for s in action.option_strings)
    dashed = flag.replace("_", "-")
    # one spelling inside the other (--temperature, --temp) is closer than letters in common
    nested = [k for k in known if len(k) > 3 and (dashed.startswith(k) or k.startswith(dashed))]
    close = sorted(nested, key=lambda k: -difflib.SequenceMatcher(None, dashed, k).ratio())[:1]
    close = close or difflib.get_close_matches(dashed, known, n=1, cutoff=0.5)
    if not close:  # a short spelling: compare without the dashes
        bare = {s.lstrip("-"): s for s in known}
        close = [bare[m] for m in difflib.get_close_matches(flag.lstrip("-"), bare, n=1, cutoff=0.5)]
    return f"unknown option {flag}" + (f" (closest: {close[0]})" if close else "")


def add_model_overrides(p: argparse.ArgumentParser, context_length: bool = True,
                        context_help: str = "training context length (GGML default 2048)") -> None:
    """Options for what GGML v3 files did not store (llama.cpp's 2023 flags)."""
    g = p.add_argument_group("hyperparameter overrides (needed for GGML v3 files)")
    g.add_argument("--gqa", type=int, metavar="N", help="grouped-query factor n_head/n_head_kv (8 for Llama-2-70B)")
    g.add_argument("--eps", type=float, metavar="X", dest="rms_eps", help="RMS norm epsilon (GGML default 5e-6; Llama 2: 1e-5)")
    g.add_argument("--rope-freq-base", type=float, metavar="X", help="RoPE frequency base (default 10000)")
    g.add_argument("--rope-freq-scale", type=float, metavar="X", help="RoPE linear frequency scale (default 1)")
    if context_length:
        g.add_argument("-c", "--context-length", type=int, metavar="N", help=context_help)


def model_overrides(args: argparse.Namespace) -> dict:
    return {
        "gqa": args.gqa,
        "rms_eps": args.rms_eps,
        "rope_freq_base": args.rope_freq_base,
        "rope_freq_scale": args.rope_freq_scale,
        "context_length": getattr(args, "context_length", None),
    }


def load_options(args: argparse.Namespace) -> dict:
    """What `load_model` takes from a command line beyond the overrides: --mmap."""
    return {"mmap": bool(getattr(args, "mmap", False))}


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


def add_draft_options(p: argparse.ArgumentParser) -> None:
    """Speculative decoding from the prompt (engine/speculative.py), with llama.cpp's names."""
    from ..speculative import SPEC_TYPES, DraftParams

    d = DraftParams()
    g = p.add_argument_group("speculative decoding (guesses from the prompt, verified in one batch; same text)")
    g.add_argument("--spec-type", choices=SPEC_TYPES, default=d.spec_type,
                   help=f"how to guess: ngram (look the last tokens up in the prompt and earlier answers) "
                   f"or none (default {d.spec_type})")
    # --draft-max is a setting (engine/settings.py): the commands add it with the others
    g.add_argument("--draft-min", type=int, default=d.draft_min, metavar="N",
                   help=f"guess only when at least N tokens can be guessed (default {d.draft_min})")
    g.add_argument("--draft-ngram-min", type=int, default=d.ngram_min, metavar="N",
                   help=f"shortest n-gram looked up (default {d.ngram_min})")
    g.add_argument("--draft-ngram-max", type=int, default=d.ngram_max, metavar="N",
                   help=f"longest n-gram looked up, tried first (default {d.ngram_max})")


def draft_params(args: argparse.Namespace):
    """The DraftParams the draft options ask for (UsageError, one line, when out of range)."""
    from ..speculative import DraftParams

    return DraftParams(spec_type=args.spec_type, draft_max=args.draft_max, draft_min=args.draft_min,
                       ngram_min=args.draft_ngram_min, ngram_max=args.draft_ngram_max)
