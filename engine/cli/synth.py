"""`codeup synth`: write a random-weight llama GGUF with real model shapes (for benchmarks)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..errors import UsageError


def add_parser(sub) -> None:
    from ..synth import FILE_TYPES, SHAPES

    p = sub.add_parser(
        "synth",
        help="write a random-weight GGUF with Llama-2 or Qwen shapes (for benchmarks)",
        description=(
            "Write a GGUF with random weights: Llama-2 or Qwen2.5/Qwen3 shapes, llama.cpp's per-tensor type "
            "mix for --type, valid block scales (weights ~N(0, 0.02)-like, norms 1). It runs in "
            "this engine and in llama.cpp, and says nonsense. Same seed, same file."
        ),
    )
    p.add_argument("output", metavar="OUT.gguf", help="the file to write (written to a temporary file, then renamed)")
    p.add_argument("--shape", default="tiny", choices=sorted(SHAPES), help="model shape (default tiny)")
    p.add_argument("--type", dest="file_type", default="Q4_K_M", metavar="TYPE",
                   help=f"file type, as llama-quantize names it (default Q4_K_M): {', '.join(FILE_TYPES)}")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--vocab", metavar="PATH",
                   help="copy the tokenizer from this GGUF file (e.g. llama.cpp's ggml-vocab-llama-spm.gguf "
                        "for the Llama shapes), or 'generated' (the default: a generated SPM vocabulary of "
                        "the shape's size)")
    p.add_argument("--layers", type=int, metavar="N", help="override the layer count (a quicker, shallower model)")
    p.add_argument("--weight-std", type=float, default=0.02, metavar="X", help="target weight std (default 0.02)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(run=run)


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, every 10% otherwise."""

    def __init__(self, label: str, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.label = label
        self.start = time.perf_counter()
        self.last_time = 0.0
        self.last_decile = -1

    def __call__(self, done: int, total: int, tensor: str) -> None:
        now = time.perf_counter() - self.start
        frac = done / total if total else 1.0
        decile = int(frac * 10)
        if self.tty:
            if now - self.last_time < 0.25 and done < total:
                return
        elif decile == self.last_decile:
            return
        self.last_time, self.last_decile = now, decile
        rate = done / 1e6 / now if now > 0 else 0.0
        line = f"{self.label}: {_mb(done)}/{_mb(total)} MB ({100 * frac:.0f}%) {rate:,.0f} MB/s  {tensor}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    from ..synth import get_file_type, get_shape, plan_bytes, resolve_vocabulary, synth_model, tensor_plan

    out = Path(args.output)
    shape = get_shape(args.shape, args.layers)
    ft = get_file_type(args.file_type)
    if out.is_dir():
        raise UsageError(f"{out} is a directory: give a file name")
    if not out.parent.is_dir() and str(out.parent):
        raise UsageError(f"folder {out.parent} does not exist")
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists (use --force to overwrite it)")
    if args.vocab is not None and args.vocab != "generated" and not Path(args.vocab).is_file():
        raise UsageError(f"vocabulary file {args.vocab} not found")
    # Size the file first: refuse early when the disk cannot hold it.
    vocab = resolve_vocabulary(args.vocab, shape)
    need = plan_bytes(tensor_plan(replace(shape, n_vocab=vocab.n_vocab), ft))
    free = shutil.disk_usage(out.parent if str(out.parent) else Path(".")).free
    if need > free:
        raise UsageError(f"{out}: needs {need / 1e9:.2f} GB, only {free / 1e9:.2f} GB free in {out.parent or '.'}")
    progress = Progress(f"writing {out.name}")
    try:
        result = synth_model(
            out, shape, ft.name, seed=args.seed, vocab=vocab, weight_std=args.weight_std,
            progress=progress,
        )
    finally:
        progress.finish()
    counts: dict[str, int] = {}
    for t in result.tensor_types.values():
        counts[t] = counts.get(t, 0) + 1
    mix = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
    print(
        f"wrote {out}: {_mb(result.file_bytes)} MB, {_params(result.n_params)} params, "
        f"shape {result.shape.name} ({result.shape.n_layer} layers), {result.file_type} ({mix}), "
        f"vocab {os.path.basename(result.vocabulary)} ({result.shape.n_vocab} tokens), seed {args.seed}; "
        f"{result.seconds:.1f} s ({result.mb_per_second:,.0f} MB/s)"
    )
    return 0


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f}" if n < 100e6 else f"{n / 1e6:,.0f}"


def _params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"
