"""A whole GGUF model to another file type, as llama-quantize does it.

    result = quantize_model("model-F16.gguf", "model-Q4_K_M.gguf", "Q4_K_M")

What llama-quantize (no imatrix, default options) does, and so this does too:
- metadata: every key copied with its value type, except general.file_type,
  general.quantization_version and the split.* keys; then quantization_version 2 and the
  new file_type are appended;
- tensors in llama.cpp's order (those of no layer first, then layer by layer; by name
  within each), each with the type `type_mix.plan_tensor_types` gives it;
- a tensor whose type does not change is copied byte for byte; F32, F16 and BF16 tensors
  are widened to float32 and quantized; a tensor in another block type only when
  requantizing is allowed (it is dequantized first, which loses what the first
  quantization lost).
With the same input, the output is the file llama-quantize writes, byte for byte.

The input is read from its memory map one batch of rows at a time and the output streamed
to the GGUF writer, which writes a temporary file and renames it at the end: a failed or
interrupted run leaves nothing under the output name.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import ModelFileError, UsageError
from ..formats import ModelFile, open_model_file
from ..formats.gguf_reader import GGUFParser
from ..formats.gguf_writer import GGUFValueType, GGUFWriter
from ..ggml_types import TYPE_TRAITS, GGMLType
from ..quants import SUPPORTED_TYPES as DEQUANTIZABLE
from ..quants import dequantize
from .files import InputMap, check_free_space, check_output_path
from .progress import Progress
from .quantizers import QUANTIZERS, default_threads, quantize
from .type_mix import FileType, get_file_type, plan_tensor_types

GGML_QNT_VERSION = 2
# Keys llama-quantize drops (it writes one file) or sets itself.
_DROPPED_KEYS = ("general.file_type", "general.quantization_version", "split.no", "split.count", "split.tensors.count")
_PLAIN_INPUT = frozenset({GGMLType.F32, GGMLType.F16, GGMLType.BF16})
_BATCH_VALUES = 1 << 22  # values converted and quantized per batch (16 MB of float32)
_COPY_BYTES = 8 << 20
_LAYER = re.compile(r"blk\.\s*([+-]?\d+)")


@dataclass(frozen=True)
class TensorJob:
    name: str
    shape: tuple[int, ...]  # ggml order
    src_type: GGMLType
    dst_type: GGMLType
    src_bytes: int
    dst_bytes: int

    @property
    def converts(self) -> bool:
        return self.src_type != self.dst_type


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    file_type: str
    jobs: tuple[TensorJob, ...]
    input_bytes: int  # tensor data read
    output_bytes: int  # the file written
    seconds: float

    @property
    def mb_per_second(self) -> float:
        return self.input_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job.dst_type.name] = counts.get(job.dst_type.name, 0) + 1
        return dict(sorted(counts.items()))


def llama_cpp_order(names) -> list[str]:
    """llama.cpp's weights_map order: tensors of no layer first, then by layer number
    (sscanf "blk.%d."), by name (bytewise) within each."""
    def key(name: str):
        m = _LAYER.match(name)
        return (int(m.group(1)) if m else -1, name.encode("utf-8", "surrogateescape"))

    return sorted(names, key=key)


def _value_types(buf, path: Path) -> dict[str, int]:
    """The GGUF value type of every metadata key (the reader's values lose u32 vs i64...)."""
    return GGUFParser(buf, str(path)).parse()[2]


def plan_quantization(mf: ModelFile, file_type: FileType | str, *, allow_requantize: bool = False) -> list[TensorJob]:
    """Every tensor with its new type, in output order. Raises UsageError (before anything
    is written) when a tensor cannot be converted."""
    ft = get_file_type(file_type) if isinstance(file_type, str) else file_type
    hp = mf.hparams
    if hp is None:
        raise ModelFileError(mf.path, "has no model hyperparameters (general.architecture, block_count, head_count)")
    arch = hp.architecture
    n_expert = mf.metadata.get(f"{arch}.expert_count", 0)
    n_expert = int(n_expert) if isinstance(n_expert, (int, np.integer)) else 0
    names = llama_cpp_order(mf.tensors)
    infos = [mf.tensors[n] for n in names]
    types = plan_tensor_types(
        [(t.name, t.shape, t.ggml_type) for t in infos], ft, n_layer=hp.n_layer, n_head=hp.n_head,
        n_head_kv=hp.n_head_kv, n_expert=n_expert, architecture=arch,
    )
    jobs = []
    for t, dst in zip(infos, types):
        traits = TYPE_TRAITS[dst]
        jobs.append(TensorJob(t.name, tuple(t.shape), t.ggml_type, dst, t.nbytes,
                              t.n_elements // traits.block_size * traits.type_size))
    for job in jobs:
        if not job.converts:
            continue
        if job.dst_type not in QUANTIZERS and job.dst_type != GGMLType.F32:
            raise UsageError(f"tensor {job.name}: cannot write {job.dst_type.name}")
        if job.src_type in _PLAIN_INPUT:
            continue
        if job.src_type not in DEQUANTIZABLE:
            raise UsageError(f"tensor {job.name} is {job.src_type.name}, which cannot be converted to {job.dst_type.name}")
        if not allow_requantize:
            raise UsageError(
                f"tensor {job.name} is already quantized ({job.src_type.name}); requantizing loses quality: "
                "quantize from the F32/F16/BF16 original, or pass --allow-requantize"
            )
    return jobs


def _float32_rows(raw: np.ndarray, src: GGMLType, n_values: int) -> np.ndarray:
    """A writable float32 copy of `n_values` values stored as `src`."""
    if src == GGMLType.F32:
        return raw.view(np.float32).copy()
    if src == GGMLType.F16:
        return raw.view(np.float16).astype(np.float32)
    if src == GGMLType.BF16:
        return (raw.view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
    return dequantize(raw, src, n_values)


def quantize_model(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    file_type: str,
    *,
    allow_requantize: bool = False,
    threads: int | None = None,
    overwrite: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> QuantizeResult:
    """Write `in_path` (a GGUF model) as `file_type` to `out_path`. See the module docstring."""
    ft = get_file_type(file_type)
    src, out = Path(in_path), Path(out_path)
    check_output_path(out, overwrite=overwrite, source=src)
    if threads is not None and threads < 1:
        raise UsageError(f"the thread count must be at least 1, not {threads}")
    with open_model_file(src) as mf:
        if mf.format != "GGUF":
            raise UsageError(f"{src} is a {mf.format_name} file: convert it to GGUF first (codeup convert {src} OUT.gguf)")
        jobs = plan_quantization(mf, ft, allow_requantize=allow_requantize)
        data = InputMap(src)
        try:
            w = GGUFWriter(out)
            copy_metadata(w, mf.metadata, _value_types(data.mm, src))
            w.add_metadata("general.quantization_version", GGML_QNT_VERSION, type=GGUFValueType.U32)
            w.add_metadata("general.file_type", ft.ftype, type=GGUFValueType.U32)
            for job in jobs:
                w.add_tensor_info(job.name, job.dst_type, job.shape)
            check_free_space(out, w.file_size)

            total_in = sum(j.src_bytes for j in jobs)
            start = time.perf_counter()
            state = {"bytes": 0, "tensors": 0}

            def report(name: str) -> None:
                if progress is not None:
                    progress(Progress(state["tensors"], len(jobs), state["bytes"], total_in, name,
                                              time.perf_counter() - start))

            with ThreadPoolExecutor(max_workers=threads or default_threads(), thread_name_prefix="quantize") as pool:
                w.write([_tensor_source(data, mf.tensors[j.name].offset, j, pool, state, report) for j in jobs])
            seconds = time.perf_counter() - start
        finally:
            data.close()
    return QuantizeResult(out, ft.name, tuple(jobs), total_in, out.stat().st_size, seconds)


def _tensor_source(data: InputMap, offset: int, job: TensorJob, pool, state, report) -> Callable[[], Iterator]:
    def chunks() -> Iterator:
        raw = data.view(offset, job.src_bytes)
        if not job.converts:
            for o in range(0, job.src_bytes, _COPY_BYTES):
                piece = raw[o : o + _COPY_BYTES]
                yield piece
                state["bytes"] += piece.size
                report(job.name)
        else:
            row = job.shape[0]
            n_rows = int(np.prod(job.shape[1:], dtype=np.int64))
            row_bytes = job.src_bytes // n_rows
            per_batch = max(1, _BATCH_VALUES // row)
            for r in range(0, n_rows, per_batch):
                n = min(per_batch, n_rows - r)
                piece = raw[r * row_bytes : (r + n) * row_bytes]
                yield quantize(_float32_rows(piece, job.src_type, n * row), job.dst_type, pool=pool)
                state["bytes"] += piece.size
                report(job.name)
        data.release(offset, job.src_bytes)
        state["tensors"] += 1
        report(job.name)

    return chunks


def copy_metadata(w: GGUFWriter, metadata: dict, value_types: dict[str, int]) -> None:
    """Every key but the ones llama-quantize replaces, with its own value type."""
    for key, value in metadata.items():
        if key in _DROPPED_KEYS:
            continue
        vtype = GGUFValueType(value_types[key])
        if vtype == GGUFValueType.ARRAY:
            # numpy arrays carry their element type; a list is strings or nested arrays.
            etype = None
            if isinstance(value, list) and not value:
                etype = GGUFValueType.STRING
            w.add_metadata(key, value, type=vtype, element_type=etype)
        else:
            w.add_metadata(key, value, type=vtype)
