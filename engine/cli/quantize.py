"""`codeup quantize IN.gguf OUT.gguf TYPE`: llama-quantize's file types, byte for byte."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_parser(sub) -> None:
    from ..quantize.type_mix import FILE_TYPES

    p = sub.add_parser(
        "quantize",
        help="quantize a GGUF model to a llama.cpp file type (Q4_K_M, Q8_0, ...)",
        description=(
            "Write IN (a GGUF model in F32, F16 or BF16) as TYPE: llama.cpp's reference quantizers "
            "and its per-tensor type mix (llama-quantize without an importance matrix), so the "
            "output is the file llama-quantize writes. Metadata is copied; general.file_type is set. "
            "The output is written to a temporary file and renamed at the end."
        ),
    )
    p.add_argument("input", metavar="IN.gguf", help="the model to quantize (GGUF; convert GGML files first)")
    p.add_argument("output", metavar="OUT.gguf", help="the file to write")
    p.add_argument("file_type", metavar="TYPE", help=f"the file type: {', '.join(FILE_TYPES)}")
    p.add_argument("--allow-requantize", action="store_true",
                   help="allow tensors that are already quantized to be quantized again (loses quality)")
    p.add_argument("-t", "--threads", type=int, metavar="N", help="threads (default: every core)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=run)


class TensorProgress:
    """One progress line on stderr, rewritten in place, only when stderr is a terminal:
    tensors done/total, MB of input done/total, MB/s, ETA and the tensor at hand."""

    def __init__(self, label: str, stream=None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.label = label
        self.last = 0.0
        self.shown = False

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.2 and p.tensors_done < p.n_tensors:
            return
        self.last = now
        eta = p.eta_seconds
        line = (
            f"{self.label}: [{p.tensors_done}/{p.n_tensors}] {_mb(p.bytes_done)}/{_mb(p.bytes_total)} MB "
            f"{p.mb_per_second:,.1f} MB/s ETA {_duration(eta) if eta is not None else '?'}  {p.tensor}"
        )
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    from ..quantize.model import quantize_model

    progress = TensorProgress(f"quantizing {Path(args.input).name}", quiet=args.quiet)
    try:
        result = quantize_model(
            args.input, args.output, args.file_type, allow_requantize=args.allow_requantize,
            threads=args.threads, overwrite=args.force, progress=progress,
        )
    finally:
        progress.finish()
    mix = ", ".join(f"{n} {t}" for t, n in result.type_counts.items())
    print(
        f"wrote {result.path}: {result.file_type}, {len(result.jobs)} tensors ({mix}); "
        f"{_mb(result.input_bytes)} MB -> {_mb(result.output_bytes)} MB in {result.seconds:.1f} s "
        f"({result.mb_per_second:,.1f} MB/s of input)"
    )
    return 0


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f}" if n < 100e6 else f"{n / 1e6:,.0f}"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
