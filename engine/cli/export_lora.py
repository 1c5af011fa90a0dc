"""`codeup export-lora -m BASE --lora A.gguf -o MERGED.gguf`: adapters merged into the weights."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from .options import add_lora_options

    p = sub.add_parser(
        "export-lora",
        help="merge LoRA adapters into a GGUF model's weights",
        description=(
            "Write BASE with each adapter's scale*(alpha/rank)*B*A added to the weights it adapts, every "
            "merged tensor stored in its original type (quantized ones re-quantized), everything else "
            "copied. The output is written to a temporary file and renamed at the end."
        ),
    )
    p.add_argument("-m", "--model", required=True, metavar="BASE", help="the base model (GGUF)")
    p.add_argument("-o", "--output", required=True, metavar="MERGED.gguf", help="the merged model to write")
    add_lora_options(p)
    p.add_argument("-t", "--threads", type=int, metavar="N", help="threads for re-quantizing (default: every core)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the output if it exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..lora_export import export_lora

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"the thread count must be at least 1, not {args.threads}")
    r = export_lora(args.model, args.lora, args.output, threads=args.threads, overwrite=args.force)
    print(f"wrote {r.path}: {r.detail} in {r.seconds:.1f} s")
    return 0
