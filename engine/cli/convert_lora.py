"""`codeup convert-lora PEFT_DIR OUT.gguf [--base MODEL]`: a PEFT LoRA adapter as llama.cpp's
GGUF adapter file."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert-lora",
        help="convert a PEFT LoRA adapter (adapter_config.json + adapter_model.*) to a GGUF adapter",
        description=(
            "Write a PEFT LoRA adapter folder (adapter_config.json and adapter_model.safetensors or .bin, "
            "read without PyTorch) as llama.cpp's GGUF adapter format, for --lora of codeup run/serve "
            "and codeup export-lora. An adapter of the attention Q/K projections needs --base: llama.cpp "
            "reorders those rows by head."
        ),
    )
    p.add_argument("input", metavar="PEFT_DIR", help="the PEFT adapter folder")
    p.add_argument("output", metavar="OUT.gguf", help="the adapter file to write")
    p.add_argument("--base", metavar="MODEL", help="the base model: a GGUF file or a Hugging Face folder")
    p.add_argument("--outtype", default="f16", metavar="TYPE", help="f32, f16 (default), bf16 or q8_0")
    p.add_argument("--name", help="general.name of the adapter (default: the folder name)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..lora_export import convert_peft_lora

    r = convert_peft_lora(args.input, args.output, base=args.base, outtype=args.outtype, name=args.name,
                          overwrite=args.force)
    print(f"wrote {r.path}: LoRA adapter, {r.n_tensors} tensors ({r.detail}) in {r.seconds:.1f} s")
    return 0
