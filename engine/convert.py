"""Legacy GGML v3 ("ggjt" v3) llama files to GGUF, quantized bytes kept as they are.

(Older GGML files convert too where the reader accepts them: their unquantized tensors,
and ggjt v2's Q5_0/Q5_1, have today's layouts; the rest the reader refuses, saying why.)

    result = convert_ggml_to_gguf("codeup-13b.ggmlv3.q4_K_M.bin", "codeup-13b.Q4_K_M.gguf",
                                  rms_eps=1e-5, context_length=4096)

The GGML reader (engine/formats/ggml_reader.py) already describes a .bin file in GGUF
terms, the way llama.cpp's convert_llama_ggml_to_gguf.py does: tensor names, hyperparameter
keys, the vocabulary with its scores and token types (<unk> unknown, <s> and </s> control,
<0xXX> byte tokens, ▁ for spaces). This writes that description as GGUF v3 with
llama.cpp's value types, and every tensor's bytes unchanged (ggjt v3 blocks are GGUF's).

What GGML v3 did not store comes from the options, with the 2023 defaults (so that the
converted file behaves exactly as the .bin did): RMS epsilon 5e-6, context length 2048,
RoPE base 10000 and scale 1; n_head_kv is read from the K projection's shape. Llama 2 and
CodeUp-Llama-2 want `rms_eps=1e-5, context_length=4096`; Llama-2-70B also `gqa=8`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UsageError
from .formats import open_model_file
from .formats.gguf_writer import GGUFValueType, GGUFWriter
from .ggml_types import GGMLType, file_type_name
from .quantize.files import InputMap, check_free_space, check_output_path
from .quantize.progress import Progress

GGML_QNT_VERSION = 2  # the block layouts of ggjt v3 are those of quantization version 2

_COPY_BYTES = 8 << 20
_UNQUANTIZED = frozenset({GGMLType.F32, GGMLType.F16})


@dataclass(frozen=True)
class ConvertResult:
    path: Path
    source_format: str  # "GGML ggjt v3"
    file_type: str
    n_tensors: int
    rms_eps: float
    context_length: int
    rope_freq_base: float
    n_head_kv: int
    output_bytes: int
    seconds: float


def _typed(key: str, value) -> GGUFValueType | None:
    """The value type llama.cpp's converter gives a key (None: an array, inferred)."""
    if isinstance(value, str):
        return GGUFValueType.STRING
    if isinstance(value, bool):
        return GGUFValueType.BOOL
    if isinstance(value, (int, np.integer)):
        return GGUFValueType.U32
    if isinstance(value, (float, np.floating)):
        return GGUFValueType.F32
    return None


def convert_ggml_to_gguf(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    gqa: int | None = None,
    rms_eps: float | None = None,
    rope_freq_base: float | None = None,
    rope_freq_scale: float | None = None,
    context_length: int | None = None,
    name: str | None = None,
    overwrite: bool = False,
    progress: Callable[[QuantizeProgress], None] | None = None,
) -> ConvertResult:
    src, out = Path(in_path), Path(out_path)
    check_output_path(out, overwrite=overwrite, source=src)
    for label, value in (("--eps", rms_eps), ("--rope-freq-base", rope_freq_base), ("--rope-freq-scale", rope_freq_scale)):
        if value is not None and not (value > 0 and np.isfinite(value)):
            raise UsageError(f"{label} must be a positive number, not {value}")
    if context_length is not None and context_length < 1:
        raise UsageError(f"--context-length must be at least 1, not {context_length}")
    if gqa is not None and gqa < 1:
        raise UsageError(f"--gqa must be at least 1, not {gqa}")
    with open_model_file(
        src, gqa=gqa, rms_eps=rms_eps, rope_freq_base=rope_freq_base,
        rope_freq_scale=rope_freq_scale, context_length=context_length,
    ) as mf:
        if mf.format != "GGML":
            raise UsageError(f"{src} is already {mf.format_name}: nothing to convert")
        md = mf.metadata
        w = GGUFWriter(out)
        w.add_metadata("general.architecture", md["general.architecture"], type=GGUFValueType.STRING)
        w.add_metadata("general.name", name or _model_name(src), type=GGUFValueType.STRING)
        ftype = int(md["general.file_type"])
        w.add_metadata(
            "general.description",
            f"converted from {mf.format_name} ({file_type_name(ftype)}) by codeup convert",
            type=GGUFValueType.STRING,
        )
        w.add_metadata("general.file_type", ftype, type=GGUFValueType.U32)
        if any(t.ggml_type not in _UNQUANTIZED for t in mf.tensors.values()):
            w.add_metadata("general.quantization_version", GGML_QNT_VERSION, type=GGUFValueType.U32)
        for key, value in md.items():
            if key.startswith("general."):
                continue
            w.add_metadata(key, value, type=_typed(key, value))
        for t in mf.tensors.values():  # the .bin's order
            w.add_tensor_info(t.name, t.ggml_type, t.shape)
        check_free_space(out, w.file_size)

        jobs = list(mf.tensors.values())
        total = sum(t.nbytes for t in jobs)
        start = time.perf_counter()
        state = {"bytes": 0, "tensors": 0}

        def report(name: str) -> None:
            if progress is not None:
                progress(Progress(state["tensors"], len(jobs), state["bytes"], total, name, time.perf_counter() - start))

        def source(t):
            def chunks():
                raw = data.view(t.offset, t.nbytes)
                for o in range(0, t.nbytes, _COPY_BYTES):
                    piece = raw[o : o + _COPY_BYTES]
                    yield piece
                    state["bytes"] += piece.size
                    report(t.name)
                data.release(t.offset, t.nbytes)
                state["tensors"] += 1
                report(t.name)

            return chunks

        data = InputMap(src)
        try:
            w.write([source(t) for t in jobs])
        finally:
            data.close()
        hp = mf.hparams
        return ConvertResult(
            path=out, source_format=mf.format_name, file_type=file_type_name(ftype), n_tensors=len(jobs),
            rms_eps=hp.rms_eps, context_length=hp.n_ctx_train, rope_freq_base=hp.rope_freq_base,
            n_head_kv=hp.n_head_kv, output_bytes=out.stat().st_size, seconds=time.perf_counter() - start,
        )


def _model_name(path: Path) -> str:
    """codeup-llama-2-13b.ggmlv3.q4_K_M.bin -> codeup-llama-2-13b.ggmlv3.q4_K_M"""
    return path.name[: -len(".bin")] if path.name.endswith(".bin") else path.name


__all__ = ["ConvertResult", "convert_ggml_to_gguf"]
