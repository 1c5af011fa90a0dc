"""`codeup convert IN OUT.gguf`: a Hugging Face model folder as llama.cpp's converter writes
it (--outtype), or a GGML v3 llama file as GGUF with its quantized bytes kept."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from .options import add_model_overrides

    p = sub.add_parser(
        "convert",
        help="convert a Hugging Face model folder, or a GGML v3 (ggjt v3) llama .bin, to GGUF",
        description=(
            "IN a Hugging Face model folder (config.json, tokenizer.model or tokenizer.json, weights as "
            "*.safetensors or PyTorch pytorch_model*.bin, sharded or not): write the GGUF llama.cpp's "
            "convert_hf_to_gguf.py writes, in --outtype (f32, f16, bf16, q8_0, or any file type of "
            "`codeup quantize`, quantized on the way); PyTorch files are read without PyTorch and "
            "without running pickled code. "
            "IN a GGML v3 .bin: write the legacy GGML v3 llama file as GGUF: the same tensors with their bytes unchanged, "
            "the vocabulary with scores and token types, and the hyperparameters GGML did not store "
            "from the options below. Their defaults are the 2023 ones (eps 5e-6, context 2048, RoPE "
            "base 10000), so the GGUF behaves as the .bin did; for Llama 2 and CodeUp-Llama-2 pass "
            "--eps 1e-5 -c 4096 (and --gqa 8 for Llama-2-70B). The output is written to a temporary "
            "file and renamed at the end."
        ),
    )
    p.add_argument("input", metavar="IN", help="a Hugging Face model folder, or a GGML v3 (ggjt v3) model file")
    p.add_argument("output", metavar="OUT.gguf", help="the GGUF file to write")
    p.add_argument("--name", help="general.name of the model (default: from the input's name)")
    p.add_argument("--outtype", metavar="TYPE",
                   help="for a Hugging Face folder: f32, f16 (default), bf16, q8_0, auto (the checkpoint's 16-bit type), "
                   "or a quantized file type (Q4_K_M, ...)")
    p.add_argument("-t", "--threads", type=int, metavar="N", help="threads for quantizing (default: every core)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    add_model_overrides(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if Path(args.input).is_dir():
        return _run_hf(args)
    from ..convert import convert_ggml_to_gguf
    from ..errors import UsageError
    from .quantize import TensorProgress

    if args.outtype is not None:
        raise UsageError("--outtype is for Hugging Face folders; a GGML file keeps its tensor types")
    try:
        with open(args.input, "rb") as f:
            head = f.read(16)
    except OSError:
        head = b""
    if head.startswith(b"PK\x03\x04") or (head[:4] != b"GGUF" and head[8:10] == b'{"'):
        raise UsageError(f"{args.input} looks like PyTorch or safetensors weights: give their folder "
                         "(with config.json and the tokenizer) to codeup convert")

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


def _run_hf(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..hf.convert import convert_hf_to_gguf
    from .quantize import TensorProgress, _mb

    given = [flag for flag, v in (("--gqa", args.gqa), ("--eps", args.rms_eps), ("--rope-freq-base", args.rope_freq_base),
                                  ("--rope-freq-scale", args.rope_freq_scale), ("-c", args.context_length)) if v is not None]
    if given:
        raise UsageError(f"{given[0]} is for GGML files; a Hugging Face folder's config.json gives the hyperparameters")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"the thread count must be at least 1, not {args.threads}")
    progress = TensorProgress(f"converting {Path(args.input).name}", quiet=args.quiet)
    try:
        r = convert_hf_to_gguf(args.input, args.output, outtype=args.outtype or "f16", name=args.name,
                               overwrite=args.force, threads=args.threads, progress=progress)
    finally:
        progress.finish()
    mix = ", ".join(f"{n} {t}" for t, n in r.type_counts.items())
    print(f"wrote {r.path}: {r.architecture} {r.outtype}, {r.n_tensors} tensors ({mix}) from {r.source_format}; "
          f"{_mb(r.input_bytes)} MB -> {_mb(r.output_bytes)} MB in {r.seconds:.1f} s ({r.mb_per_second:,.1f} MB/s)")
    for note in r.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
