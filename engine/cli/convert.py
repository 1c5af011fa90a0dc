"""`codeup convert IN.bin OUT.gguf`: a GGML v3 llama file as GGUF, quantized bytes kept."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from . import add_model_overrides

    p = sub.add_parser(
        "convert",
        help="convert a GGML v3 (ggjt v3) llama .bin to GGUF",
        description=(
            "Write a legacy GGML v3 llama file as GGUF: the same tensors with their bytes unchanged, "
            "the vocabulary with scores and token types, and the hyperparameters GGML did not store "
            "from the options below. Their defaults are the 2023 ones (eps 5e-6, context 2048, RoPE "
            "base 10000), so the GGUF behaves as the .bin did; for Llama 2 and CodeUp-Llama-2 pass "
            "--eps 1e-5 -c 4096 (and --gqa 8 for Llama-2-70B). The output is written to a temporary "
            "file and renamed at the end."
        ),
    )
    p.add_argument("input", metavar="IN.bin", help="the GGML v3 (ggjt v3) model file")
    p.add_argument("output", metavar="OUT.gguf", help="the GGUF file to write")
    p.add_argument("--name", help="general.name of the model (default: the input file name)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    add_model_overrides(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..convert import convert_ggml_to_gguf
    from .quantize import TensorProgress

    progress = TensorProgress(f"converting {Path(args.input).name}", quiet=args.quiet)
    try:
        r = convert_ggml_to_gguf(
            args.input, args.output, gqa=args.gqa, rms_eps=args.rms_eps, rope_freq_base=args.rope_freq_base,
            rope_freq_scale=args.rope_freq_scale, context_length=args.context_length, name=args.name,
            overwrite=args.force, progress=progress,
        )
    finally:
        progress.finish()
    print(
        f"wrote {r.path}: {r.file_type}, {r.n_tensors} tensors from {r.source_format}, "
        f"{r.output_bytes / 1e6:,.1f} MB; rms eps {r.rms_eps:g}, context {r.context_length}, "
        f"rope base {r.rope_freq_base:g}, {r.n_head_kv} KV heads"
    )
    if args.rms_eps is None and args.context_length is None:
        print("note: eps and context are the GGML defaults; for Llama 2 / CodeUp-Llama-2 convert with "
              "--eps 1e-5 -c 4096", file=sys.stderr)
    return 0
